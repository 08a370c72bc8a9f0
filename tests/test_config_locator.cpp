// find_config: names through $TRECVIT_CONFIG_DIR and the build tree, paths as given, and an
// error that says where it looked.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "models/config.h"
#include "models/config_locator.h"
#include "tests/test_util.h"

using namespace trecvit;
namespace fs = std::filesystem;

namespace {

// Each test starts with TRECVIT_CONFIG_DIR unset and leaves it as it found it.
class ConfigLocator : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("TRECVIT_CONFIG_DIR")) saved_ = v, had_ = true;
    unsetenv("TRECVIT_CONFIG_DIR");
    dir_ = test::temp_dir();
  }
  void TearDown() override {
    if (had_) setenv("TRECVIT_CONFIG_DIR", saved_.c_str(), 1);
    else unsetenv("TRECVIT_CONFIG_DIR");
    fs::remove_all(dir_);
  }
  std::string dir_, saved_;
  bool had_ = false;
};

TEST_F(ConfigLocator, NameResolvesThroughEnvironmentDirectory) {
  std::ofstream(dir_ + "/mine.json") << "{}";
  setenv("TRECVIT_CONFIG_DIR", dir_.c_str(), 1);
  EXPECT_EQ(config_search_path().front(), dir_);
  EXPECT_EQ(find_config("mine"), dir_ + "/mine.json");
  EXPECT_EQ(find_config("mine.json"), dir_ + "/mine.json");
}

TEST_F(ConfigLocator, ExistingPathIsReturnedAsIs) {
  const std::string path = std::string(TRECVIT_CONFIG_DIR) + "/tiny.json";
  EXPECT_EQ(find_config(path), path);
  EXPECT_EQ(load_config(find_config(path)).name, "tiny");
}

TEST_F(ConfigLocator, NameResolvesFromBuildTree) {
  // The exe-relative build-tree directory is always searched; in the scripts' layout
  // (build/tests/<test>, two levels under the repository) it is the source configs.
  const fs::path build_tree = fs::read_symlink("/proc/self/exe").parent_path() / "../../configs";
  const auto dirs = config_search_path();
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), build_tree.lexically_normal().string()), dirs.end());
  std::error_code ec;
  if (fs::equivalent(build_tree, TRECVIT_CONFIG_DIR, ec))
    EXPECT_TRUE(fs::equivalent(find_config("tiny"), std::string(TRECVIT_CONFIG_DIR) + "/tiny.json"));
}

TEST_F(ConfigLocator, MissingConfigNamesItAndEverySearchedDirectory) {
  setenv("TRECVIT_CONFIG_DIR", dir_.c_str(), 1);
  try {
    find_config("no-such-config");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no-such-config"), std::string::npos) << msg;
    const auto dirs = config_search_path();
    ASSERT_EQ(dirs.size(), 4u);
    for (const auto& d : dirs) EXPECT_NE(msg.find(d), std::string::npos) << d << " missing from: " << msg;
  }
  EXPECT_THROW(find_config(""), ConfigError);
}

}  // namespace

#include "models/config_locator.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "blocks/file_safety.h"
#include "models/config.h"

namespace trecvit {
namespace fs = std::filesystem;

std::vector<std::string> config_search_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("TRECVIT_CONFIG_DIR"); env && *env) dirs.push_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path exe_dir = exe.parent_path();
    dirs.push_back((exe_dir / "../share/trecvit/configs").lexically_normal().string());
    dirs.push_back((exe_dir / "../../configs").lexically_normal().string());
  }
  dirs.push_back("./configs");
  return dirs;
}

std::string find_config(const std::string& name_or_path) {
  if (name_or_path.empty()) throw ConfigError("find_config: empty config name");
  std::error_code ec;
  if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
  if (fs::exists(name_or_path, ec))  // a pipe, a device or a folder: say so, do not search on
    throw ConfigError("config " + name_or_path + ": " + unreadable_reason(name_or_path));
  fs::path name(name_or_path);
  if (!name.has_extension()) name += ".json";
  const auto dirs = config_search_path();
  for (const auto& dir : dirs) {
    const fs::path candidate = fs::path(dir) / name;
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
  }
  std::string msg = "config '" + name_or_path + "' not found: no such file, and no " + name.string() + " in";
  for (size_t i = 0; i < dirs.size(); ++i) msg += (i ? ", " : " ") + dirs[i];
  msg += " (set TRECVIT_CONFIG_DIR to add a directory)";
  throw ConfigError(msg);
}

}  // namespace trecvit

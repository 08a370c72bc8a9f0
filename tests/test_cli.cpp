// The `trecvit` command line end to end: info, init, synth-clip, predict (offline and
// streamed), import/export, and clear failures on bad input.
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/checkpoint.h"
#include "models/flax_io.h"
#include "models/npz.h"
#include "tests/test_util.h"

using trecvit::test::run_command;
using trecvit::test::temp_dir;

namespace {

const std::string kBin = TRECVIT_BIN;
const std::string kTiny = std::string(TRECVIT_CONFIG_DIR) + "/tiny.json";

std::string must_run(const std::string& args) {
  std::string out;
  const int rc = run_command(kBin + " --threads 1 " + args, &out);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  return out;
}

}  // namespace

TEST(Cli, InfoJsonHasTheAccountingFields) {
  auto j = nlohmann::json::parse(must_run("info --config " + kTiny + " --json"));
  for (auto key : {"params_total", "params_backbone", "flops_per_frame", "state_bytes_per_stream"})
    EXPECT_GT(j.at(key).get<int64_t>(), 0) << key;
  EXPECT_EQ(j["params_total"].get<int64_t>() - j["params_backbone"].get<int64_t>(), 64 * 5 + 5);
  EXPECT_EQ(j["runtime"]["threads"].get<int>(), 1);
  EXPECT_EQ(j["runtime"]["blas"].get<std::string>(), "openblas");
}

TEST(Cli, BaseInfoMatchesReleasedParameterCount) {
  auto j = nlohmann::json::parse(must_run("info --config " + std::string(TRECVIT_CONFIG_DIR) + "/base.json --json"));
  EXPECT_EQ(j["params_total"].get<int64_t>(), 136778128);
  EXPECT_EQ(j["params_backbone"].get<int64_t>(), 135548928);
}

TEST(Cli, PredictPerFrameStreamsAndEndsAtTheClipLogits) {
  auto dir = temp_dir();
  must_run("init --config " + kTiny + " --out " + dir + "/m.ckpt --seed 3");
  must_run("synth-clip --frames 6 --size 32 --out " + dir + "/clip.npy");
  auto offline = nlohmann::json::parse(must_run("predict --checkpoint " + dir + "/m.ckpt " + dir + "/clip.npy --json"));
  auto streamed = nlohmann::json::parse(
      must_run("predict --checkpoint " + dir + "/m.ckpt " + dir + "/clip.npy --per-frame --json"));
  ASSERT_EQ(streamed["per_frame"].size(), 6u);
  const auto& last = streamed["per_frame"][5];
  ASSERT_EQ(last.size(), offline["logits"].size());
  for (size_t i = 0; i < last.size(); ++i) {
    EXPECT_NEAR(last[i].get<double>(), offline["logits"][i].get<double>(), 1e-5);
    EXPECT_NEAR(streamed["logits"][i].get<double>(), offline["logits"][i].get<double>(), 1e-5);
  }
  auto text = must_run("predict --checkpoint " + dir + "/m.ckpt " + dir + "/clip.npy --per-frame");
  EXPECT_NE(text.find("frame    5:"), std::string::npos) << text;
}

TEST(Cli, ImportExportRoundTrip) {
  auto dir = temp_dir();
  must_run("init --config " + kTiny + " --out " + dir + "/a.ckpt --seed 4");
  must_run("export --checkpoint " + dir + "/a.ckpt --npz " + dir + "/a.npz");
  auto out = must_run("import --npz " + dir + "/a.npz --out " + dir + "/b.ckpt");
  EXPECT_NE(out.find("width 32, depth 2, heads 2"), std::string::npos) << out;
  auto a = trecvit::load_checkpoint(dir + "/a.ckpt");
  auto b = trecvit::load_checkpoint(dir + "/b.ckpt");
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

TEST(Cli, BadInputsFailWithTheReason) {
  auto dir = temp_dir();
  std::string out;
  must_run("init --config " + kTiny + " --out " + dir + "/m.ckpt");
  trecvit::write_npy(dir + "/wrong.npy", torch::zeros({4, 16, 16}, torch::kByte));
  EXPECT_NE(run_command(kBin + " predict --checkpoint " + dir + "/m.ckpt " + dir + "/wrong.npy", &out), 0);
  EXPECT_NE(out.find("wrong.npy"), std::string::npos) << out;
  trecvit::write_npy(dir + "/small.npy", torch::zeros({4, 16, 16, 3}, torch::kByte));
  EXPECT_NE(run_command(kBin + " predict --checkpoint " + dir + "/m.ckpt " + dir + "/small.npy", &out), 0);
  EXPECT_NE(out.find("32x32"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " predict --checkpoint " + dir + "/m.npz " + dir + "/small.npy", &out), 0);
  EXPECT_NE(out.find("m.npz"), std::string::npos) << out;
  std::ofstream(dir + "/bad.json") << "{\"width\": -1, \"depth\": 2}";
  EXPECT_NE(run_command(kBin + " info --config " + dir + "/bad.json", &out), 0);
  EXPECT_NE(out.find("'width'"), std::string::npos) << out;
  EXPECT_NE(run_command(kBin + " import --npz " + dir + "/m.ckpt --out " + dir + "/x.ckpt", &out), 0);
  EXPECT_NE(out.find("m.ckpt"), std::string::npos) << out;
}

TEST(Cli, BenchQuickRuns) {
  for (auto name : {"scan", "model", "stream", "nevis", "allreduce"}) {
    auto j = nlohmann::json::parse(must_run(std::string("bench ") + name + " --quick --repeats 1 --json"));
    EXPECT_EQ(j["benchmark"].get<std::string>(), name);
  }
}

// trecvit compare: the quick run end to end (report files, costs equal `trecvit info`, accuracies
// equal `trecvit eval`, the same batches for every arm), resume after a kill, bad specs.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "jobs/compare_job.h"
#include "tests/test_util.h"

using namespace trecvit;
namespace fs = std::filesystem;

namespace {

const std::string kBin = TRECVIT_BIN;
const std::string kSpec = std::string(TRECVIT_CONFIG_DIR) + "/compare/ssf.json";

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json must_json(const std::string& cmd) {
  std::string out;
  EXPECT_EQ(test::run_command(cmd + " 2>/dev/null", &out), 0) << cmd << "\n" << out;
  return nlohmann::json::parse(out);
}

const nlohmann::json& arm(const nlohmann::json& report, const std::string& name) {
  for (const auto& a : report["arms"])
    if (a["name"] == name) return a;
  throw std::runtime_error("no arm " + name);
}

// A two-arm spec on the quick data with checkpoints every 10 steps, for the resume test.
std::string small_spec(const std::string& dir) {
  std::ofstream(dir + "/train.json") << R"({"steps": 40, "lr": 0.002, "warmup_steps": 4, "log_every": 5, "checkpoint_every": 10})";
  std::ofstream(dir + "/spec.json") << R"({"name": "small", "data": {"root": "data", "generate": "ssf"},
    "model": "demo-peer", "train": ")" + dir + R"(/train.json",
    "quick": {"steps": 40, "batch_size": 2, "train_clips": 20, "validation_clips": 10},
    "arms": [{"name": "mlp", "model": {"layer_channel_mixers": null}}, {"name": "peer"}]})";
  return dir + "/spec.json";
}

}  // namespace

TEST(Compare, QuickRunReportsCostsAccuraciesAndTheSameBatchesForEveryArm) {
  const auto dir = test::temp_dir();
  const fs::path out = dir + "/cmp";
  std::string log;
  ASSERT_EQ(test::run_command(kBin + " compare --spec " + kSpec + " --out " + out.string() +
                                  " --quick --seeds 2 --sweep layer_channel_mixers.1.topk=4,16",
                              &log),
            0)
      << log;
  for (auto f : {"report.json", "report.md", "report.html"}) ASSERT_TRUE(fs::exists(out / f)) << f;
  const auto report = read_json(out / "report.json");
  ASSERT_EQ(report["arms"].size(), 8u);  // six arms and a two-value sweep
  EXPECT_EQ(report["sweeps"].size(), 1u);
  for (const auto& a : report["arms"]) {
    const std::string name = a["name"];
    for (auto key : {"top1_mean", "top1_std", "top1_per_seed", "params_total", "params_active_per_token", "flops_per_clip",
                     "train_clips_per_s", "stream_ms_per_frame", "peak_rss_train_bytes", "routing"})
      EXPECT_TRUE(a.contains(key)) << name << " " << key;
    EXPECT_EQ(a["top1_per_seed"].size(), 2u) << name;
    // The costs are the ones `trecvit info` prints for the arm's resolved config.
    const auto info = must_json(kBin + " info --json --config '" + (out / "runs" / name / "seed0" / "arm.json").string() + "'");
    EXPECT_EQ(a["params_total"], info["params_total"]) << name;
    EXPECT_EQ(a["flops_per_clip"].get<int64_t>(), info["flops_per_frame"].get<int64_t>() * info["config"]["num_frames"].get<int64_t>())
        << name;
    // Seed s gave every arm the same batches, in the same order.
    for (int s = 0; s < 2; ++s) {
      const auto mine = slurp(out / "runs" / name / ("seed" + std::to_string(s)) / "samples.txt");
      EXPECT_FALSE(mine.empty());
      EXPECT_EQ(mine, slurp(out / "runs" / "mlp" / ("seed" + std::to_string(s)) / "samples.txt")) << name << " seed " << s;
    }
    const bool sparse = name.rfind("mlp", 0) != 0;
    EXPECT_EQ(!a["routing"].empty(), sparse) << name;
  }
  EXPECT_NE(slurp(out / "runs/mlp/seed0/samples.txt"), slurp(out / "runs/mlp/seed1/samples.txt"));
  // The matches hold their cost equal (to the nearest allowed value of the solved field).
  const double param_ratio = arm(report, "peer-param-matched")["params_total"].get<double>() / arm(report, "mlp")["params_total"].get<double>();
  EXPECT_NEAR(param_ratio, 1.0, 0.02);
  const double active_ratio = arm(report, "mlp-active-matched")["params_active_per_token"].get<double>() /
                              arm(report, "peer")["params_active_per_token"].get<double>();
  EXPECT_NEAR(active_ratio, 1.0, 0.01);
  EXPECT_NE(arm(report, "peer-param-matched")["matching"].get<std::string>().find("num_experts = "), std::string::npos);
  // Per-seed accuracies are those of a plain `trecvit eval` of the arm's checkpoint.
  for (const std::string name : {"peer", "sigma-moe"}) {
    const auto& a = arm(report, name);
    for (int s = 0; s < 2; ++s) {
      const auto result = read_json(out / "runs" / name / ("seed" + std::to_string(s)) / "result.json");
      const auto e = must_json(kBin + " eval --json --checkpoint " + result["checkpoint"].get<std::string>() + " --data " +
                               (out / "quick-data").string() + " --sampler segments");
      EXPECT_DOUBLE_EQ(a["top1_per_seed"][s].get<double>(), e["top1"].get<double>()) << name << " seed " << s;
    }
  }
  const auto html = slurp(out / "report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos) << "the page must be self-contained";
  EXPECT_NE(slurp(out / "report.md").find("| peer-param-matched |"), std::string::npos);
  // A second call keeps every finished run.
  ASSERT_EQ(test::run_command(kBin + " compare --spec " + kSpec + " --out " + out.string() + " --quick --seeds 2 --resume --sweep "
                                  "peer:layer_channel_mixers.1.topk=4,16", &log), 0) << log;
  EXPECT_NE(log.find("0 runs trained, 16 kept"), std::string::npos) << log;
}

TEST(Compare, AKilledCallResumesToTheSameNumbers) {
  const auto dir = test::temp_dir();
  const auto spec = small_spec(dir);
  const std::string base = kBin + " --threads 1 compare --quick --spec " + spec;
  std::string log;
  ASSERT_EQ(test::run_command(base + " --out " + dir + "/whole", &log), 0) << log;
  // Killed once the second arm has written a checkpoint mid-training.
  const std::string marker = dir + "/cut/runs/peer/seed0/checkpoint.pt";
  ASSERT_EQ(test::run_command("bash -c '" + base + " --out " + dir + "/cut > " + dir + "/cut.log 2>&1 & p=$!; for i in $(seq 600); do "
                                  "[ -e " + marker + " ] && break; sleep 0.05; done; kill -9 $p; wait $p; true'", &log),
            0)
      << log;
  ASSERT_TRUE(fs::exists(marker)) << slurp(dir + "/cut.log");
  ASSERT_FALSE(fs::exists(dir + "/cut/runs/peer/seed0/result.json")) << "killed too late to test a mid-arm resume";
  ASSERT_EQ(test::run_command(base + " --out " + dir + "/cut --resume", &log), 0) << log;
  const auto whole = read_json(dir + "/whole/report.json"), cut = read_json(dir + "/cut/report.json");
  for (const std::string name : {"mlp", "peer"}) {
    EXPECT_EQ(arm(whole, name)["top1_per_seed"], arm(cut, name)["top1_per_seed"]) << name;
    EXPECT_EQ(arm(whole, name)["last_top1_per_seed"], arm(cut, name)["last_top1_per_seed"]) << name;
    EXPECT_EQ(arm(whole, name)["top5_per_seed"], arm(cut, name)["top5_per_seed"]) << name;
    EXPECT_EQ(slurp(dir + "/whole/runs/" + name + "/seed0/samples.txt"), slurp(dir + "/cut/runs/" + name + "/seed0/samples.txt"))
        << name << ": the resumed run's batches";
    EXPECT_GT(arm(cut, name)["train_clips_per_s"].get<double>(), 0) << name;
  }
}

TEST(Compare, BadSpecsAreClearErrorsBeforeAnyTraining) {
  const auto dir = test::temp_dir();
  auto fails = [&](const std::string& arms, const std::string& expect, const std::vector<std::string>& sweeps = {},
                   const std::string& data = R"({"root": "data", "generate": "ssf"})") {
    const std::string path = dir + "/bad.json";
    std::ofstream(path) << R"({"name": "bad", "data": )" + data + R"(, "model": "demo-peer", "arms": )" + arms + "}";
    CompareJob job;
    job.spec = path;
    job.out_dir = dir + "/out";
    job.quick = true;
    job.sweeps = sweeps;
    try {
      run_compare(job);
      ADD_FAILURE() << "accepted: " << arms;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir + "/out/runs")) << "training started for " << arms;
  };
  fails(R"([{"name": "a", "modle": {}}])", "unknown field 'modle'");
  fails(R"([{"name": "a"}, {"name": "b", "model": {"width": 64}}])", "arms 'a' and 'b' do not differ");
  // The same dense model spelled out (the default mixer given explicitly, with its default width).
  fails(R"([{"name": "a", "model": {"layer_channel_mixers": null}},
            {"name": "b", "model": {"layer_channel_mixers": {"1": {"type": "mlp", "hidden": 256}}}}])",
        "arms 'a' and 'b' do not differ");
  fails(R"([{"name": "a"}, {"name": "b", "model": {"layer_channel_mixers": null}}])", "bogus",
        {"a:layer_channel_mixers.1.bogus=1,2"});
  fails(R"([{"name": "a"}])", "no arm named 'zzz'", {"zzz:width=32,64"});
  fails(R"([{"name": "a"}])", "no arm's model config has the field 'nothing.here'", {"nothing.here=1,2"});
  fails(R"([{"name": "a"}, {"name": "b", "model": {"layer_channel_mixers": null}}])", "arm 'b' has no field",
        {"b:layer_channel_mixers.1.topk=4,16"});
  fails(R"([{"name": "a"}])", "the value 4 is given twice", {"a:layer_channel_mixers.1.topk=4,16,4"});
  fails(R"([{"name": "a"}, {"name": "b", "match": [{"what": "params_total", "arm": "c", "field": "width"}]}])",
        "no arm named 'c'");
  fails(R"([{"name": "a"}])", "does not exist", {}, R"({"root": ")" + dir + R"(/nowhere"})");
  fails(R"([{"name": "a", "model": {"width": -3}}])", "width");
  fs::create_directories(dir + "/empty");
  fails(R"([{"name": "a"}])", dir + "/empty", {}, R"({"root": ")" + dir + R"(/empty"})");
  fails(R"([{"name": "a"}, {"name": "b", "model": {"readout": "last"}}])", "changes the readout");
}

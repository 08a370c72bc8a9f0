// Data-parallel training over c10d/Gloo on loopback, ranks started with exactly the variables
// torchrun sets (Debian's own torchrun cannot start workers) and by `trecvit launch`: 2 ranks x
// batch b equal 1 rank x batch 2b (with accumulation, with a PEER layer and without), a killed
// rank makes the other fail in bounded time naming it and the run resumes to the uninterrupted
// result, a sharded evaluation counts exactly what one process counts, and what cannot be
// synchronised is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "models/checkpoint.h"
#include "tests/test_util.h"
#include "train/distributed.h"

using namespace trecvit;
namespace fs = std::filesystem;

namespace {

const std::string kBin = TRECVIT_BIN, kConfigs = TRECVIT_CONFIG_DIR;

const std::string& dataset() { return test::generated_ssf(kBin, "--train 24 --validation 10 --frames 8 --size 32 --seed 4"); }

std::string train_args(const std::string& out, int64_t batch, const std::string& extra = "") {
  return "--threads 1 --dist-timeout 30 train --config " + kConfigs + "/demo-peer.json --data " + dataset() + " --out " + out +
         " --steps 20 --batch-size " + std::to_string(batch) + " --workers 1 --sampler segments --seed 2" +
         " --set train.log_every=5 --set train.checkpoint_every=5 " + extra;
}

// `ranks` processes of `args`, each with torchrun's variables; returns each one's exit status
// and leaves its output in LOG.<rank>.
std::vector<int> run_ranks(int ranks, const std::string& args, const std::string& log, const std::string& kill_after = "") {
  const int port = test::free_port();
  std::string script = "bash -c '";
  for (int r = 0; r < ranks; ++r)
    script += "WORLD_SIZE=" + std::to_string(ranks) + " RANK=" + std::to_string(r) + " LOCAL_RANK=" + std::to_string(r) +
              " LOCAL_WORLD_SIZE=" + std::to_string(ranks) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
              " " + kBin + " " + args + " > " + log + "." + std::to_string(r) + " 2>&1 & p" + std::to_string(r) + "=$!; ";
  script += kill_after;
  for (int r = 0; r < ranks; ++r) script += "wait $p" + std::to_string(r) + "; echo rc" + std::to_string(r) + "=$?; ";
  script += "'";
  std::string out;
  test::run_command(script, &out);
  std::vector<int> rcs;
  for (int r = 0; r < ranks; ++r) {
    const size_t at = out.find("rc" + std::to_string(r) + "=");
    rcs.push_back(at == std::string::npos ? -1 : std::stoi(out.substr(at + 3 + std::to_string(r).size())));
  }
  return rcs;
}

std::string read(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), {}};
}

double max_difference(const std::string& a, const std::string& b) {
  auto x = load_checkpoint(a), y = load_checkpoint(b);
  auto want = y->named_parameters();
  double worst = 0;
  for (auto& p : x->named_parameters()) worst = std::max(worst, (p.value() - want[p.key()]).abs().max().item<double>());
  return worst;
}

// A build without c10d/Gloo (no libgloo-dev, or -DTRECVIT_WITH_DISTRIBUTED=OFF) must refuse
// WORLD_SIZE > 1 with the reason; then that is all there is to check.
bool refused_without_gloo() {
  if (dist::available()) return false;
  std::string out;
  EXPECT_NE(test::run_command("WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " + kBin + " " +
                                  train_args(test::temp_dir() + "/run", 2), &out), 0);
  EXPECT_NE(out.find("built without distributed training"), std::string::npos) << out;
  return true;
}

}  // namespace

TEST(Distributed, TwoRanksOfBatchBAreOneRankOfBatch2B) {
  if (refused_without_gloo()) return;
  const std::string base = test::temp_dir();
  std::string out;
  struct Case {
    std::string name, extra;
  };
  // Adam divides each gradient by its own running scale, so the rounding of another summation
  // order grows wherever a gradient is nearly zero (the attention key bias, whose true gradient
  // is zero; PEER experts retrieved once): after 1 step at lr 1e-3 the weights differ by about
  // 1e-6, after 20 by 1e-5 to 4e-5. At lr 1e-4 twenty steps stay well inside 1e-5, while the
  // weights move by up to 2e-3.
  for (const Case& c : {Case{"peer", ""}, Case{"accumulate", "--set train.accumulate=2"},
                        Case{"mlp", "--set 'model.layer_channel_mixers={}'"}}) {
    const std::string one = base + "/one-" + c.name, two = base + "/two-" + c.name;
    const std::string extra = c.extra + " --set train.lr=1e-4";
    ASSERT_EQ(test::run_command(kBin + " " + train_args(one, 4, extra), &out), 0) << out;
    const auto rcs = run_ranks(2, train_args(two, 2, extra), base + "/log-" + c.name);
    ASSERT_EQ(rcs, (std::vector<int>{0, 0})) << read(base + "/log-" + c.name + ".0") << read(base + "/log-" + c.name + ".1");
    EXPECT_LE(max_difference(one + "/checkpoint.pt", two + "/checkpoint.pt"), 1e-5) << c.name;
    EXPECT_NE(read(two + "/run.json").find("\"world_size\": 2"), std::string::npos);
    EXPECT_EQ(read(base + "/log-" + c.name + ".1"), "") << "rank 1 prints nothing but problems";
  }
  // trecvit launch starts the same ranks: the same weights, and its output is prefixed.
  const std::string launched = base + "/launched";
  ASSERT_EQ(test::run_command(kBin + " launch --nproc-per-node 2 --master-port " + std::to_string(test::free_port()) + " -- " +
                                  train_args(launched, 2, "--set train.lr=1e-4"), &out), 0) << out;
  EXPECT_NE(out.find("[rank 0] trained to step 20"), std::string::npos) << out;
  EXPECT_EQ(max_difference(launched + "/checkpoint.pt", base + "/two-peer/checkpoint.pt"), 0.0);
}

TEST(Distributed, AKilledRankFailsTheOtherInBoundedTimeAndTheRunResumes) {
  if (refused_without_gloo()) return;
  const std::string base = test::temp_dir(), whole = base + "/whole", cut = base + "/cut";
  const std::string args = " --set train.steps=60";
  ASSERT_EQ(run_ranks(2, train_args(whole, 2, args), base + "/whole-log"), (std::vector<int>{0, 0}));
  // Rank 1 is killed once rank 0 has logged 15 steps; rank 0 must fail, naming it.
  const auto start = std::chrono::steady_clock::now();
  const auto rcs = run_ranks(2, train_args(cut, 2, args), base + "/cut-log",
                             "for i in $(seq 3000); do [ $(grep -c loss " + cut + "/metrics.jsonl 2>/dev/null || echo 0) -ge 3 ] && break; "
                             "sleep 0.01; done; kill -KILL $p1; ");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(rcs[0], 0);
  EXPECT_EQ(rcs[1], 137);
  EXPECT_LT(seconds, 40) << "bounded by --dist-timeout 30";
  const std::string log0 = read(base + "/cut-log.0");
  EXPECT_NE(log0.find("lost rank 1"), std::string::npos) << log0;
  for (const auto& f : fs::directory_iterator(cut)) EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << f.path();
  // Both ranks resume from the run alone and finish where the uninterrupted run did.
  ASSERT_EQ(run_ranks(2, "--threads 1 train --resume " + cut, base + "/resume-log"), (std::vector<int>{0, 0}))
      << read(base + "/resume-log.0") << read(base + "/resume-log.1");
  EXPECT_EQ(max_difference(cut + "/checkpoint.pt", whole + "/checkpoint.pt"), 0.0);
  // Another world size is a clear error, not a silent re-split.
  std::string out;
  EXPECT_NE(test::run_command(kBin + " --threads 1 train --resume " + cut, &out), 0);
  EXPECT_NE(out.find("recorded with world_size 2"), std::string::npos) << out;

  // One SIGINT to `trecvit launch`: forwarded once, the ranks agree on the step to stop after,
  // and rank 0 writes the checkpoint; the launcher exits 0.
  const std::string stopped = base + "/stopped";
  ASSERT_EQ(test::run_command("bash -c '" + kBin + " launch --nproc-per-node 2 --master-port " + std::to_string(test::free_port()) +
                                  " -- " + train_args(stopped, 2, "--set train.steps=100000") + " > " + base + "/int-log 2>&1 & p=$!; "
                                  "for i in $(seq 3000); do [ $(grep -c loss " + stopped + "/metrics.jsonl 2>/dev/null || echo 0) -ge 2 ] && break; "
                                  "sleep 0.01; done; kill -INT $p; wait $p; echo rc=$?'", &out), 0);
  EXPECT_NE(out.find("rc=0"), std::string::npos) << out << read(base + "/int-log");
  EXPECT_NE(read(base + "/int-log").find("[rank 0] stopped by signal"), std::string::npos) << read(base + "/int-log");
  EXPECT_TRUE(fs::exists(stopped + "/checkpoint.pt"));
}

TEST(Distributed, ShardedEvaluationCountsExactlyAndRefusalsAreClear) {
  if (refused_without_gloo()) return;
  const std::string base = test::temp_dir();
  std::string out;
  ASSERT_EQ(test::run_command(kBin + " " + train_args(base + "/run", 4, "--set train.steps=3"), &out), 0) << out;
  const std::string eval = "--threads 1 eval --checkpoint " + base + "/run/checkpoint.pt --data " + dataset() +
                           " --sampler segments --report ";
  ASSERT_EQ(test::run_command(kBin + " " + eval + base + "/one.json", &out), 0) << out;
  ASSERT_EQ(run_ranks(2, eval + base + "/two.json", base + "/eval-log"), (std::vector<int>{0, 0})) << read(base + "/eval-log.0");
  auto one = nlohmann::json::parse(read(base + "/one.json")), two = nlohmann::json::parse(read(base + "/two.json"));
  EXPECT_EQ(two["count"], 10);
  EXPECT_EQ(two["confusion"], one["confusion"]);
  EXPECT_EQ(two["top1"], one["top1"]);
  EXPECT_EQ(two["world_size"], 2);

  // Batch-statistics query norms cannot be averaged across ranks: refused, naming the layer.
  auto rcs = run_ranks(2, train_args(base + "/bn", 2, "--set model.layer_channel_mixers.1.query_norm=batch"), base + "/bn-log");
  EXPECT_EQ(rcs, (std::vector<int>{1, 1}));
  EXPECT_NE(read(base + "/bn-log.0").find("layer 1's peer normalises its queries with batch statistics"), std::string::npos)
      << read(base + "/bn-log.0");
  // Ranks that resolve different recipes fail together, saying so, before any training.
  const int port = test::free_port();
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port);
  test::run_command("bash -c '" + env + " RANK=0 " + kBin + " " + train_args(base + "/mix", 2) + " > " + base + "/mix0 2>&1 & " + env +
                        " RANK=1 " + kBin + " " + train_args(base + "/mix", 2, "--set train.lr=0.5") + " > " + base + "/mix1 2>&1; wait'",
                    &out);
  EXPECT_NE(read(base + "/mix0").find("1 of 2 ranks resolved another recipe than rank 0"), std::string::npos) << read(base + "/mix0");
  EXPECT_FALSE(fs::exists(base + "/mix/run.json"));
  EXPECT_NE(test::run_command("WORLD_SIZE=2 RANK=x MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " + kBin + " " + train_args(base + "/x", 2), &out), 0);
  EXPECT_NE(out.find("RANK=x: expected an integer in [0, 1]"), std::string::npos) << out;
  // compare runs each arm across the ranks; rank 0 writes the report, and a resume keeps it all.
  const std::string cmp = "--threads 1 compare --spec " + kConfigs + "/compare/ssf.json --out " + base + "/cmp --quick";
  ASSERT_EQ(run_ranks(2, cmp, base + "/cmp-log"), (std::vector<int>{0, 0})) << read(base + "/cmp-log.0") << read(base + "/cmp-log.1");
  EXPECT_TRUE(fs::exists(base + "/cmp/report.html"));
  EXPECT_NE(read(base + "/cmp/runs/peer/seed0/run.json").find("\"world_size\": 2"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(read(base + "/cmp/runs/peer/seed0/eval.json"))["count"], 20);
  ASSERT_EQ(run_ranks(2, cmp + " --resume", base + "/cmp-log"), (std::vector<int>{0, 0})) << read(base + "/cmp-log.0");
  EXPECT_NE(read(base + "/cmp-log.0").find("0 runs trained, 6 kept"), std::string::npos) << read(base + "/cmp-log.0");
  EXPECT_NE(test::run_command("WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " + kBin + " demo --out " + base + "/d", &out), 0);
  EXPECT_NE(out.find("`trecvit demo` does not run data-parallel"), std::string::npos) << out;
}

// nevis run data-parallel: each trial trains across the ranks, evaluations (dev scores, k-NN
// transfer, predictions) are sharded and put together, rank 0 writes the run folder. Two ranks
// of batch b give one rank of batch 2b's models, choices and results.
TEST(Distributed, NevisRunOfTwoRanksIsOneRankOfTwiceTheBatch) {
  if (refused_without_gloo()) return;
  const std::string base = test::temp_dir(), data = base + "/data";
  std::string out;
  ASSERT_EQ(test::run_command(kBin + " data nevis-build --out " + data + " --datasets uci_digits", &out), 0) << out;
  std::ofstream(base + "/stream.json") << R"({"name": "twice", "events": [{"dataset": "uci_digits", "year": 1998},
                                             {"dataset": "uci_digits", "year": 1999}]})";
  std::ofstream(base + "/train.json") << R"({"steps": 12, "lr": 1e-4, "warmup_steps": 2, "clip_norm": 1.0, "log_every": 4})";
  auto nevis = [&](const std::string& run, int64_t batch) {
    return "--threads 1 --dist-timeout 30 nevis run --learner finetune-knn --knn-k 3 --stream " + base + "/stream.json --data " +
           data + " --config " + kConfigs + "/nevis/tiny.json --train-config " + base + "/train.json --batch-size " +
           std::to_string(batch) + " --out " + base + "/" + run;
  };
  ASSERT_EQ(test::run_command(kBin + " " + nevis("one", 16), &out), 0) << out;
  ASSERT_EQ(run_ranks(2, nevis("two", 8), base + "/nevis-log"), (std::vector<int>{0, 0}))
      << read(base + "/nevis-log.0") << read(base + "/nevis-log.1");
  auto rows = [&](const std::string& run) {
    std::vector<nlohmann::json> r;
    std::ifstream in(base + "/" + run + "/events.jsonl");
    for (std::string line; std::getline(in, line);) r.push_back(nlohmann::json::parse(line));
    return r;
  };
  const auto one = rows("one"), two = rows("two");
  ASSERT_EQ(one.size(), 2u);
  ASSERT_EQ(two.size(), 2u) << "rank 0 alone appends the rows";
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(two[i]["init"], one[i]["init"]);
    EXPECT_EQ(two[i]["train_flops"], one[i]["train_flops"]);
    EXPECT_EQ(two[i]["examples"], one[i]["examples"]);
    EXPECT_NEAR(two[i]["top1"].get<double>(), one[i]["top1"].get<double>(), 1.5 / one[i]["examples"].get<double>());
    EXPECT_NEAR(two[i]["cross_entropy"].get<double>(), one[i]["cross_entropy"].get<double>(), 1e-4);
    const std::string model = "/models/" + std::to_string(i) + "-uci_digits.pt";
    EXPECT_LE(max_difference(base + "/one" + model, base + "/two" + model), 1e-5);
  }
  EXPECT_EQ(one[1]["init"], "event 0") << "k-NN transfer chose the first task's backbone: the sharded scores were used";
  EXPECT_NE(read(base + "/two/run.json").find("\"world_size\": 2"), std::string::npos);
  EXPECT_EQ(read(base + "/nevis-log.1"), "") << "rank 1 prints nothing but problems";
  EXPECT_NE(test::run_command(kBin + " " + nevis("two", 8) + " --resume", &out), 0);
  EXPECT_NE(out.find("another 'world_size'"), std::string::npos) << out;
}

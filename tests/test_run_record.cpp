// The run record as a user meets it through the command line: RUN/run.json holds the resolved
// recipe, `train --resume RUN` needs nothing else and continues a SIGKILLed run to the same
// weights, a run started from a run.json is the same run, the demo is `train` with its config
// files, settings are validated like the JSON, and progress redraws one line on a terminal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "jobs/run_record.h"
#include "models/checkpoint.h"
#include "tests/test_util.h"

using namespace trecvit;
namespace fs = std::filesystem;

namespace {

const std::string kBin = TRECVIT_BIN, kConfigs = TRECVIT_CONFIG_DIR;

// One generated dataset for the whole file (20 train / 10 validation clips, 8 frames of 32 px).
const std::string& dataset() { return test::generated_ssf(kBin, "--train 20 --validation 10 --frames 8 --size 32 --seed 3"); }

std::string train_command(const std::string& out, int64_t steps) {
  return kBin + " --threads 1 train --config " + kConfigs + "/demo-peer.json --data " + dataset() + " --out " + out +
         " --steps " + std::to_string(steps) + " --batch-size 4 --workers 1 --sampler segments --seed 5" +
         " --set train.log_every=1 --set train.checkpoint_every=4";
}

void expect_same_weights(const std::string& a, const std::string& b) {
  auto x = load_checkpoint(a), y = load_checkpoint(b);
  auto want = y->named_parameters();
  for (auto& p : x->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key() << ": " << a << " vs " << b;
}

// step -> loss of each metrics.jsonl training row; fails on a step logged twice.
std::map<int64_t, double> losses(const std::string& run) {
  std::map<int64_t, double> out;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("loss")) continue;
    EXPECT_TRUE(out.emplace(j["step"].get<int64_t>(), j["loss"].get<double>()).second) << "step " << j["step"] << " twice in " << run;
  }
  return out;
}

}  // namespace

TEST(RunRecord, SigkilledRunsResumeFromTheRunAloneToTheSameWeights) {
  const std::string base = test::temp_dir(), ref = base + "/ref", cut = base + "/cut";
  std::string out;
  ASSERT_EQ(test::run_command(train_command(ref, 30), &out), 0) << out;
  // Killed twice without warning once some steps are logged (so at a step that depends on the
  // machine's speed, sometimes inside a checkpoint write), then resumed with nothing but the run.
  for (const int after : {6, 15}) {
    const std::string start = after == 6 ? train_command(cut, 30) : kBin + " --threads 1 train --resume " + cut;
    ASSERT_EQ(test::run_command("bash -c '" + start + " > " + base + "/log 2>&1 & p=$!; for i in $(seq 3000); do "
                                "[ $(grep -c loss " + cut + "/metrics.jsonl 2>/dev/null || echo 0) -ge " + std::to_string(after) +
                                " ] && break; sleep 0.01; done; kill -KILL $p; wait $p; echo rc=$?'", &out), 0);
    EXPECT_NE(out.find("rc=137"), std::string::npos) << "the run ended before the kill: " << out;
  }
  ASSERT_EQ(test::run_command(kBin + " --threads 1 train --resume " + cut, &out), 0) << out;
  EXPECT_NE(out.find("trained to step 30"), std::string::npos) << out;
  expect_same_weights(cut + "/checkpoint.pt", ref + "/checkpoint.pt");
  const auto a = losses(cut), b = losses(ref);
  EXPECT_EQ(a.size(), 30u);
  EXPECT_EQ(a, b);  // each step once, with the uninterrupted run's loss
  for (const auto& f : fs::directory_iterator(cut)) EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << f.path();
}

TEST(RunRecord, ARunStartedFromItsRecordIsTheSameRun) {
  const std::string base = test::temp_dir(), first = base + "/first", again = base + "/again";
  std::string out;
  ASSERT_EQ(test::run_command(train_command(first, 4) + " --flip mirror --set data.color_jitter=0.3 --set model.depth=2", &out), 0) << out;
  const auto rec = read_run_record(first + "/run.json");
  EXPECT_EQ(rec.data.batch_size, 4);
  EXPECT_EQ(rec.data.flip, "mirror");
  EXPECT_EQ(rec.data.color_jitter, 0.3);
  EXPECT_EQ(rec.train.seed, 5u);
  EXPECT_EQ(rec.model["depth"], 2);
  EXPECT_EQ(rec.threads, 1);
  EXPECT_FALSE(rec.version.empty());
  // From another folder: the record names the data by its absolute path.
  ASSERT_EQ(test::run_command("cd / && " + kBin + " --threads 1 train --recipe " + first + "/run.json --out " + again, &out), 0) << out;
  EXPECT_EQ(losses(again).at(1), losses(first).at(1));
  expect_same_weights(again + "/checkpoint.pt", first + "/checkpoint.pt");
  std::ifstream a(first + "/run.json"), b(again + "/run.json");
  EXPECT_EQ(nlohmann::json::parse(a), nlohmann::json::parse(b));
}

TEST(RunRecord, TheDemoIsTrainWithItsConfigFiles) {
  const std::string base = test::temp_dir();
  std::string out;
  ASSERT_EQ(test::run_command(kBin + " --threads 1 demo --data " + dataset() + " --out " + base + "/demo --steps 3", &out), 0) << out;
  ASSERT_EQ(test::run_command(kBin + " --threads 1 train --config " + kConfigs + "/demo-peer.json --train-config " + kConfigs +
                                  "/demo-peer.train.json --data " + dataset() + " --out " + base + "/train --steps 3", &out),
            0) << out;
  std::ifstream a(base + "/demo/run.json"), b(base + "/train/run.json");
  const auto demo = nlohmann::json::parse(a), train = nlohmann::json::parse(b);
  EXPECT_EQ(demo, train);
  EXPECT_EQ(demo["data"]["batch_size"], 16);
  EXPECT_EQ(demo["data"]["sampler"], "segments");
  expect_same_weights(base + "/demo/checkpoint.pt", base + "/train/checkpoint.pt");
}

TEST(RunRecord, SettingsAndResumeConflictsAreNamed) {
  const std::string base = test::temp_dir(), run = base + "/run";
  const std::string fresh = kBin + " train --config " + kConfigs + "/demo-peer.json --data " + dataset() + " --out " + base + "/x ";
  const std::pair<std::string, std::string> bad[] = {
      {"--set model.dept=4", "--set model.dept=4: field 'dept': unknown field"},
      {"--set train.lr=fast", "--set train.lr=fast: field 'lr': must be a number"},
      {"--set train.steps=2.5", "--set train.steps=2.5: field 'steps': must be an integer"},
      {"--set data.sampler=middle", "--set data.sampler=middle: field 'data.sampler'"},
      {"--set optim.lr=1", "--set optim.lr=1: unknown section 'optim'"},
      {"--set depth", "--set depth: expected SECTION.FIELD=VALUE"},
      {"--set model.layer_channel_mixers.1.topk=0", "--set model.layer_channel_mixers.1.topk=0"},
  };
  std::string out;
  for (const auto& [flags, message] : bad) {
    EXPECT_NE(test::run_command(fresh + flags, &out), 0) << flags;
    EXPECT_NE(out.find(message), std::string::npos) << flags << ": " << out;
    EXPECT_FALSE(fs::exists(base + "/x/run.json")) << flags;
  }
  ASSERT_EQ(test::run_command(train_command(run, 2), &out), 0) << out;
  const std::pair<std::string, std::string> conflicts[] = {
      {"--batch-size 8", "--batch-size 8: the run in " + run + " was recorded with data.batch_size = 4, this gives 8"},
      {"--seed 6", "--seed 6: the run in " + run + " was recorded with train.seed = 5"},
      {"--set model.depth=4", "--set model.depth=4: the run in " + run + " was recorded with model.depth = 3"},
      {"--config " + kConfigs + "/tiny.json", "--config " + kConfigs + "/tiny.json (field"},
  };
  for (const auto& [flags, message] : conflicts) {
    EXPECT_NE(test::run_command(kBin + " train --resume " + run + " " + flags, &out), 0) << flags;
    EXPECT_NE(out.find(message), std::string::npos) << flags << ": " << out;
  }
  // What agrees with the record (and the loader's thread count, a resource) is accepted.
  EXPECT_EQ(test::run_command(kBin + " --threads 1 train --resume " + run + " --batch-size 4 --seed 5 --workers 2 --data " + dataset(), &out), 0)
      << out;
}

TEST(Progress, ARedrawnLineOnATerminalPlainLinesInAPipe) {
  const std::string base = test::temp_dir();
  std::string tty, pipe;
  ASSERT_EQ(test::run_command(train_command(base + "/run", 2), &pipe), 0) << pipe;
  const std::string eval = kBin + " --threads 1 eval --checkpoint " + base + "/run/checkpoint.pt --data " + dataset() + " --sampler segments";
  ASSERT_EQ(test::run_command("script -qfec '" + eval + "' /dev/null", &tty), 0) << tty;  // a pseudo-terminal
  ASSERT_EQ(test::run_command(eval + " | cat", &pipe), 0) << pipe;
  EXPECT_NE(tty.find("\reval: 1/10 ("), std::string::npos) << tty;  // drawn over the same line ...
  EXPECT_NE(tty.find("\reval: 10/10 ("), std::string::npos) << tty;
  EXPECT_NE(tty.find("\x1b[K"), std::string::npos) << tty;  // ... erasing what the longer one left
  EXPECT_EQ(pipe.find('\r'), std::string::npos) << pipe;
  EXPECT_EQ(pipe.find("\x1b["), std::string::npos) << pipe;
  EXPECT_NE(pipe.find("eval: 1/10 ("), std::string::npos) << pipe;
  EXPECT_NE(pipe.find("\neval: 10/10 ("), std::string::npos) << pipe;
}

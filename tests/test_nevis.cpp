// NEVIS runs: learners over a generated two-task stream (one single-label, one multi-label),
// exact resume after a stop or a kill at any point, FLOP accounting, metrics with known
// answers, stream definitions, and the inspect / report commands.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <thread>

#include "datasets/nevis.h"
#include "datasets/tf_example.h"
#include "datasets/tfrecord.h"
#include "jobs/data_jobs.h"
#include "jobs/nevis_data.h"
#include "jobs/nevis_job.h"
#include "jobs/nevis_stream.h"
#include "models/accounting.h"
#include "models/config.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace trecvit;

namespace {

const std::string kConfig = std::string(TRECVIT_CONFIG_DIR) + "/nevis/tiny.json";

// bars: 3 classes, a bright vertical bar in the left, middle or right third.
// spots: multi-label over 3 classes, a bright spot in each chosen quadrant.
void write_task(const std::string& root, const std::string& name, bool multi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::map<std::string, int> sizes = {{"train", 60}, {"dev", 24}, {"dev-test", 30}, {"test", 30}};
  for (auto& [split, n] : sizes) {
    fs::create_directories(root + "/" + name + "/" + split);
    data::TFRecordWriter w(root + "/" + name + "/" + split + "/data-00000-of-00001");
    for (int i = 0; i < n; ++i) {
      cv::Mat img(16, 16, CV_8UC1);
      for (int p = 0; p < 256; ++p) img.data[p] = uint8_t(rng() % 60);
      data::TFExample ex;
      if (!multi) {
        const int c = int(rng() % 3);
        img(cv::Rect(c * 5 + 1, 0, 4, 16)).setTo(230);
        ex.set_int64s("label", {c});
      } else {
        std::vector<int64_t> labels;
        for (int c = 0; c < 3; ++c)
          if (rng() % 2 || (c == 2 && labels.empty())) {
            labels.push_back(c);
            img(cv::Rect((c % 2) * 8 + 2, (c / 2) * 8 + 2, 4, 4)).setTo(240);
          }
        ex.set_int64s("multi_label", labels);
      }
      std::vector<uint8_t> png;
      cv::imencode(".png", img, png);
      ex.set_bytes("png_encoded_image", std::string(png.begin(), png.end()));
      w.write(data::serialize_example(ex));
    }
  }
  std::ofstream(root + "/" + name + "/status") << "ready\n";
}

struct Fixture {
  std::string root, stream;
};

const Fixture& two_tasks() {
  static const Fixture f = [] {
    Fixture f{test::temp_dir(), ""};
    write_task(f.root, "bars", false, 1);
    write_task(f.root, "spots", true, 2);
    f.stream = f.root + "/stream.json";
    std::ofstream(f.stream) << R"({"name": "two", "events": [{"dataset": "bars", "year": 2001},
                                  {"dataset": "absent", "year": 2002}, {"dataset": "spots", "year": 2003}]})";
    return f;
  }();
  return f;
}

NevisJob job_for(const std::string& learner, const std::string& out) {
  NevisJob j;
  j.stream = two_tasks().stream;
  j.data_root = two_tasks().root;
  j.learner = learner;
  j.model_config = kConfig;
  j.out_dir = out;
  j.steps = 12;
  j.batch_size = 16;
  j.knn_k = 3;
  return j;
}

std::vector<nlohmann::json> rows_of(const std::string& run) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(run + "/events.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      break;  // a line being written right now
    }
    j.erase("seconds");  // the only field that depends on the machine
    rows.push_back(j);
  }
  return rows;
}

nlohmann::json summary_of(const std::string& run) {
  std::ifstream in(run + "/summary.json");
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(NevisMetrics, KnownAnswers) {
  auto scores = torch::tensor({0.9f, 0.2f, 0.8f, 0.3f, 0.7f, 0.9f, 0.1f, 0.1f}).reshape({4, 2});
  auto targets = torch::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 0.f, 0.f, 0.f}).reshape({4, 2});
  // class 0: positives ranked 1st and 3rd -> (1 + 2/3) / 2; class 1: its positive ranked 2nd -> 1/2.
  EXPECT_NEAR(mean_average_precision(scores, targets), ((1 + 2.0 / 3) / 2 + 0.5) / 2, 1e-6);  // float sums
  data::NevisSplit split;
  split.labels = {0, 1, 2};
  split.images.resize(3);
  auto logits = torch::tensor({5.f, 1.f, 0.f, 0.f, 0.f, 3.f, 0.f, 2.f, 1.f}).reshape({3, 3});
  auto m = nevis_metrics(logits, split, 3, false);
  EXPECT_NEAR(m.top1, 1.0 / 3, 1e-9);
  EXPECT_NEAR(m.top5, 1.0, 1e-9);  // top-5 of 3 classes holds everything
  EXPECT_NEAR(m.cross_entropy, torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 2})).item<double>(), 1e-9);
}

TEST(NevisStreams, BuiltinsMatchDmNevisAndBadFilesAreNamed) {
  EXPECT_EQ(load_nevis_stream("full").events.size(), 106u);
  EXPECT_EQ(load_nevis_stream("short").events.size(), 29u);
  const auto tiny = load_nevis_stream("tiny");
  ASSERT_EQ(tiny.events.size(), 7u);
  EXPECT_EQ(tiny.events[0].dataset, "mnist");
  EXPECT_EQ(tiny.events[0].year, 2004);
  EXPECT_EQ(nevis_events(tiny, 2020, false).size(), 6u);  // CUB 200 (2020) is held out
  EXPECT_EQ(nevis_events(tiny, 2020, true).size(), 7u);
  const auto debug = load_nevis_stream("debug");
  ASSERT_EQ(debug.events.size(), 2u);
  EXPECT_EQ(debug.events[0].dataset, "voc/2007");
  EXPECT_EQ(debug.events[1].dataset, "coil20");
  EXPECT_EQ(load_nevis_stream("debian").events.size(), 3u);
  const std::string dir = test::temp_dir();
  auto refused = [&](const std::string& text, const std::string& needle) {
    std::ofstream(dir + "/s.json") << text;
    try {
      load_nevis_stream(dir + "/s.json");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("s.json"), std::string::npos) << e.what();
    }
  };
  refused(R"({"events": [{"dataset": "a"}]})", "integer \"year\"");
  refused(R"({"events": [{"dataset": "a", "year": 2001}, {"dataset": "b", "year": 1999}]})", "publication order");
  refused(R"({"events": [{"dataset": "../etc", "year": 2001}]})", "folder name");
  refused(R"({"events": []})", "no events");
  refused("{", "invalid JSON");
  EXPECT_THROW(load_nevis_stream("no-such-stream"), ConfigError);
}

TEST(NevisRun, LearnersMetricsFlopsAndMissingDatasets) {
  at::set_num_threads(1);
  auto job = job_for("independent", test::temp_dir() + "/run");
  job.trials = 2;
  const auto r = run_nevis(job);
  EXPECT_EQ(r.missing, std::vector<std::string>{"absent"});
  EXPECT_EQ(r.events_done, 2);
  const auto rows = rows_of(job.out_dir);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["dataset"], "bars");
  EXPECT_TRUE(rows[0].contains("top1"));
  EXPECT_FALSE(rows[0].contains("map"));
  EXPECT_EQ(rows[1]["dataset"], "spots");
  EXPECT_TRUE(rows[1]["multi_label"].get<bool>());
  EXPECT_TRUE(rows[1].contains("map"));
  EXPECT_EQ(rows[1]["num_classes"], 3);
  EXPECT_EQ(rows[0]["split"], "dev-test");
  EXPECT_EQ(rows[0]["examples"], 30);
  for (auto& row : rows) {
    EXPECT_EQ(row["init"], "fresh");
    EXPECT_EQ(row["trials"].size(), 2u);
    // Every trial's steps counted: 2 trials x steps x batch x 3 x forward FLOPs per image.
    auto cfg = load_config(kConfig);
    cfg.num_frames = 1;
    cfg.num_classes = row["num_classes"].get<int64_t>();
    TRecViT m(cfg);
    EXPECT_EQ(row["train_flops"].get<int64_t>(), 2 * 12 * 16 * 3 * account(*m).flops_per_frame);
    for (auto& t : row["trials"]) EXPECT_TRUE(t["lr"].get<double>() >= 1e-4 && t["lr"].get<double>() <= 1e-2);
  }
  EXPECT_EQ(rows[1]["train_flops_cumulative"].get<int64_t>(),
            rows[0]["train_flops"].get<int64_t>() + rows[1]["train_flops"].get<int64_t>());
  const auto s = summary_of(job.out_dir);
  EXPECT_DOUBLE_EQ(s["average_accuracy"].get<double>(), rows[0]["top1"].get<double>());
  EXPECT_DOUBLE_EQ(s["average_map"].get<double>(), rows[1]["map"].get<double>());
  EXPECT_EQ(s["train_flops_total"], rows[1]["train_flops_cumulative"]);
  EXPECT_EQ(s["missing"], nlohmann::json::array({"absent"}));
  EXPECT_TRUE(s["complete"].get<bool>());
  // The bars are easy: even 12 steps beat chance clearly.
  EXPECT_GT(rows[0]["top1"].get<double>(), 0.5);

  // A fresh run into a used folder is refused; a resume with other options names the option.
  EXPECT_THROW(run_nevis(job), ConfigError);
  job.resume = true;
  job.learner = "finetune-prev";
  try {
    run_nevis(job);
    ADD_FAILURE() << "resumed with another learner";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'learner'"), std::string::npos) << e.what();
  }

  auto prev = job_for("finetune-prev", test::temp_dir() + "/prev");
  run_nevis(prev);
  const auto prow = rows_of(prev.out_dir);
  EXPECT_EQ(prow[0]["init"], "fresh");
  EXPECT_EQ(prow[1]["init"], "event 0");
}

TEST(NevisRun, ResumeAfterAStopAnywhereGivesTheUninterruptedResults) {
  at::set_num_threads(1);
  auto full = job_for("finetune-knn", test::temp_dir() + "/full");
  run_nevis(full);
  const auto want = rows_of(full.out_dir);
  ASSERT_EQ(want.size(), 2u);
  EXPECT_TRUE(want[1]["knn_scores"].contains("fresh"));
  EXPECT_TRUE(want[1]["knn_scores"].contains("event 0"));
  const auto want_summary = summary_of(full.out_dir);
  // Stop during the first event's training, between the events, and during the second's.
  struct Stop { EventKind kind; int nth; };
  for (auto stop : {Stop{EventKind::kStep, 1}, Stop{EventKind::kEval, 1}, Stop{EventKind::kStep, 3}}) {
    auto job = job_for("finetune-knn", test::temp_dir() + "/cut");
    CancelToken cancel;
    int seen = 0;
    const auto first = run_nevis(job, [&](const Event& e) {
      if (e.kind == stop.kind && ++seen == stop.nth) cancel.request();
    }, &cancel);
    EXPECT_TRUE(first.stopped);
    job.resume = true;
    const auto second = run_nevis(job);
    EXPECT_FALSE(second.stopped);
    EXPECT_EQ(first.events_done, second.events_resumed);
    EXPECT_EQ(rows_of(job.out_dir), want) << "stopped at event kind " << int(stop.kind) << " #" << stop.nth;
    EXPECT_EQ(summary_of(job.out_dir), want_summary);
  }
}

TEST(NevisRun, KilledProcessResumesToTheSameSummary) {
  const auto& f = two_tasks();
  const std::vector<std::string> args = {"--threads", "1", "nevis", "run", "--learner", "finetune-knn", "--steps", "12",
                                         "--batch-size", "16", "--knn-k", "3", "--stream", f.stream, "--data", f.root,
                                         "--config", kConfig};
  auto command = [&](const std::string& out) {
    std::string c = TRECVIT_BIN;
    for (auto& a : args) c += " " + a;
    return c + " --out " + out;
  };
  const std::string ref = test::temp_dir() + "/ref", cut = test::temp_dir() + "/cut";
  std::string out;
  ASSERT_EQ(test::run_command(command(ref), &out), 0) << out;
  // SIGKILL (no cleanup at all): once 40 ms into the run (the first task's training), then,
  // resumed, 40 ms after the first row is written (the second task's k-NN scoring or training).
  auto start_and_kill = [&](bool resume, bool after_first_row) {
    const pid_t pid = fork();
    if (pid == 0) {
      std::vector<std::string> all = args;
      all.insert(all.end(), {"--out", cut});
      if (resume) all.push_back("--resume");
      std::vector<char*> argv = {const_cast<char*>(TRECVIT_BIN)};
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      freopen("/dev/null", "w", stdout);
      freopen("/dev/null", "w", stderr);
      execv(TRECVIT_BIN, argv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (after_first_row && rows_of(cut).empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  };
  start_and_kill(false, false);
  EXPECT_TRUE(rows_of(cut).empty());
  start_and_kill(fs::exists(cut + "/run.json"), true);
  ASSERT_EQ(test::run_command(command(cut) + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("1 kept"), std::string::npos) << out;
  EXPECT_EQ(rows_of(cut), rows_of(ref));
  EXPECT_EQ(summary_of(cut), summary_of(ref));

  // The report draws both runs.
  ASSERT_EQ(test::run_command(std::string(TRECVIT_BIN) + " nevis report " + ref + " " + cut + " --out " + ref + "/r.html", &out), 0) << out;
  std::ifstream in(ref + "/r.html");
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("spots"), std::string::npos);
}

TEST(NevisInspect, JsonCountsAndProblemsThroughTheCli) {
  const std::string root = test::temp_dir();
  write_task(root, "bars", false, 3);
  // Damage the second record's data.
  const std::string shard = root + "/bars/train/data-00000-of-00001";
  int64_t second = 0;
  data::read_tfrecords(shard, [&](int64_t off, std::string_view) { if (second == 0 && off > 0) second = off; }, {});
  {
    std::fstream fh(shard, std::ios::in | std::ios::out | std::ios::binary);
    fh.seekp(second + 20);
    fh.put('\x00');
  }
  std::string out;
  // One damaged record is a problem: exit 1, and 0 with --allow-problems (the same JSON).
  EXPECT_EQ(test::run_command(std::string(TRECVIT_BIN) + " data inspect --format nevis --root " + root + " --json 2>/dev/null", &out), 1) << out;
  ASSERT_EQ(test::run_command(std::string(TRECVIT_BIN) + " data inspect --format nevis --root " + root + " --json --allow-problems 2>/dev/null", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["datasets"]["bars"]["train"]["examples"], 59);
  EXPECT_EQ(j["datasets"]["bars"]["train"]["corrupt"], 1);
  EXPECT_EQ(j["datasets"]["bars"]["train"]["num_classes"], 3);
  EXPECT_EQ(j["datasets"]["bars"]["train"]["multi_label"], false);
  EXPECT_EQ(j["datasets"]["bars"]["dev"]["examples"], 24);
  ASSERT_EQ(j["problems"].size(), 1u);
  EXPECT_EQ(j["problems"][0]["file"], shard);
  EXPECT_EQ(j["problems"][0]["offset"], second);
  EXPECT_NE(j["problems"][0]["reason"].get<std::string>().find("CRC"), std::string::npos);
}

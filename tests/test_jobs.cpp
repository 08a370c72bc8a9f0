// The embedded default dataset (Fashion-MNIST from its Debian package, the SSF generator) and the
// data jobs on it: every class is the exact time reverse of its twin, the generated tree is a
// valid SSv2 dataset that decodes back to what was rendered, generation resumes, `data inspect`
// counts it, and `data prepare` re-encodes it (resumable, failures listed, annotations kept).
#include <filesystem>
#include <fstream>

#include "datasets/annotations.h"
#include "datasets/fashion_mnist.h"
#include "datasets/ssf_generator.h"
#include "models/checkpoint.h"
#include "models/flax_io.h"
#include "models/pretrained.h"
#include "tests/test_util.h"
#include "jobs/jobs.h"
#include "jobs/run_report.h"
#include "video_io/video_reader.h"
#include "video_io/writer.h"

using namespace trecvit;
using namespace trecvit::data;
namespace fs = std::filesystem;

namespace {

SSFOptions tiny_ssf(const std::string& dir) {
  SSFOptions o;
  o.out_dir = dir;
  o.train_clips = 20;
  o.validation_clips = 10;
  o.frames = 8;
  o.size = 32;
  o.threads = 2;
  o.seed = 3;
  return o;
}

}  // namespace

TEST(FashionMnist, DebianPackageLoads) {
  auto test = load_fashion_mnist(kFashionMnistDir, "test");
  EXPECT_EQ(test.images.sizes(), (std::vector<int64_t>{10000, 28, 28}));
  EXPECT_EQ(test.images.scalar_type(), torch::kByte);
  EXPECT_EQ(test.labels.min().item<int64_t>(), 0);
  EXPECT_EQ(test.labels.max().item<int64_t>(), 9);
  EXPECT_EQ(torch::bincount(test.labels).eq(1000).all().item<bool>(), true);  // balanced test split
  EXPECT_GT(test.images.to(torch::kFloat).mean().item<double>(), 20);          // real pictures, not zeros
  EXPECT_THROW(load_fashion_mnist("/nonexistent", "test"), DatasetError);
  EXPECT_THROW(load_fashion_mnist(kFashionMnistDir, "validation"), DatasetError);
}

TEST(SSF, EachClassIsTheTimeReverseOfItsTwin) {
  auto items = load_fashion_mnist(kFashionMnistDir, "test").images;
  SSFOptions o;
  o.frames = 9;
  o.size = 32;
  o.noise = 0;  // noise is drawn per frame, so only the noiseless clips are exact reverses
  const std::vector<torch::Tensor> distractors = {items[5], items[6]};
  const auto& templates = ssf_templates();
  ASSERT_EQ(templates.size(), 10u);
  for (int64_t k = 0; k < 10; k += 2) {
    auto fwd = render_ssf_clip(items[0], distractors, k, o, 42);
    auto bwd = render_ssf_clip(items[0], distractors, k + 1, o, 42);
    EXPECT_EQ(fwd.sizes(), (std::vector<int64_t>{9, 32, 32, 3}));
    EXPECT_TRUE(torch::equal(fwd.flip(0), bwd)) << templates[k] << " vs " << templates[k + 1];
    EXPECT_FALSE(torch::equal(fwd, bwd)) << templates[k] << " does not move";
    // As a set of frames the twins are identical: a frame-shuffled clip cannot tell them apart.
    EXPECT_TRUE(torch::equal(fwd.sum(0), bwd.sum(0)));
  }
  o.noise = 10;
  EXPECT_TRUE(torch::equal(render_ssf_clip(items[0], distractors, 3, o, 7), render_ssf_clip(items[0], distractors, 3, o, 7)));
  EXPECT_FALSE(torch::equal(render_ssf_clip(items[0], distractors, 3, o, 7), render_ssf_clip(items[0], distractors, 3, o, 8)));
}

TEST(SSF, GeneratesAValidSSv2DatasetThatDecodesAndResumes) {
  const std::string root = test::temp_dir() + "/ssf";
  auto o = tiny_ssf(root);
  auto report = generate_ssf(o);
  EXPECT_EQ(report.written, 30);
  EXPECT_EQ(report.reused, 0);

  auto train = load_ssv2(root, "train"), val = load_ssv2(root, "validation");
  ASSERT_EQ(train.items.size(), 20u);
  ASSERT_EQ(val.items.size(), 10u);
  EXPECT_TRUE(train.missing.empty());
  ASSERT_EQ(train.class_names.size(), 10u);
  for (size_t i = 0; i < train.items.size(); ++i) EXPECT_EQ(train.items[i].label, int64_t(i % 10));
  std::ifstream f(root + "/train.json");
  auto first = nlohmann::json::parse(f)[0];
  EXPECT_EQ(first["template"], "Moving [something] from left to right");
  EXPECT_EQ(first["label"].get<std::string>().rfind("moving ", 0), 0u);
  EXPECT_EQ(first["placeholders"].size(), 1u);

  video::VideoReader r(train.items[3].path);
  ASSERT_EQ(r.size(), 8);
  EXPECT_EQ(r.info().width, 32);
  EXPECT_NEAR(r.info().fps, 12.0, 1e-6);
  auto frames = r.all();
  EXPECT_EQ(frames.sizes(), (std::vector<int64_t>{8, 32, 32, 3}));
  EXPECT_GT(frames.to(torch::kFloat).std().item<double>(), 10);  // an item on a background, not a flat frame

  // Deterministic from the seed, and a second run keeps what is there (an interrupted run resumes).
  const fs::path v3 = fs::path(root) / "videos" / "4.webm";
  const auto size_before = fs::file_size(v3);
  fs::remove(v3);
  report = generate_ssf(o);
  EXPECT_EQ(report.written, 1);
  EXPECT_EQ(report.reused, 29);
  EXPECT_EQ(fs::file_size(v3), size_before);

  o.size = 8;
  EXPECT_THROW(generate_ssf(o), DatasetError);
  o = tiny_ssf("");
  EXPECT_THROW(generate_ssf(o), DatasetError);
  o = tiny_ssf(root);
  o.mnist_dir = "/nonexistent";
  EXPECT_THROW(generate_ssf(o), DatasetError);
}

TEST(DataJobs, InspectCountsAndPrepareReencodesResumablyListingFailures) {
  const std::string base = test::temp_dir(), root = base + "/ssf", out = base + "/ssf16";
  generate_ssf(tiny_ssf(root));
  std::ofstream(root + "/videos/7.webm", std::ios::trunc) << "not a video";  // corrupt one training clip

  InspectJob ij;
  ij.format = "ssv2";
  ij.root = root;
  auto inspect = run_data_inspect(ij).to_json();
  auto train = inspect["splits"]["train"];
  EXPECT_EQ(train["videos"], 20);
  EXPECT_EQ(train["classes"], 10);
  EXPECT_EQ(train["per_class"].size(), 10u);
  ASSERT_EQ(train["unreadable"].size(), 1u);
  EXPECT_NE(train["unreadable"][0]["path"].get<std::string>().find("7.webm"), std::string::npos);
  EXPECT_EQ(train["frames"]["median"], 8);
  EXPECT_EQ(inspect["splits"]["validation"]["videos"], 10);
  EXPECT_TRUE(inspect["splits"]["test"].contains("error"));  // SSF has no test split: said, not fatal

  {  // other containers keep their name and extension; odd scaled sides are trimmed to even
    fs::create_directories(root + "/extra");
    video::VideoWriter w(root + "/extra/clip.mkv", 12, 48, 36);
    for (int t = 0; t < 5; ++t) w.write(torch::full({36, 48, 3}, 40 * t, torch::kByte));
  }
  PrepareJob p;
  p.root = root;
  p.out = out;
  p.short_side = 16;
  auto rep = run_data_prepare(p).to_json();
  EXPECT_EQ(rep["written"], 30);
  video::VideoReader mkv(out + "/extra/clip.mkv");
  EXPECT_EQ(mkv.size(), 5);
  EXPECT_EQ(mkv.info().height, 16);
  EXPECT_EQ(mkv.info().width, 20);  // 48 * 16 / 36 = 21.3 -> 21, trimmed to 20
  EXPECT_EQ(rep["kept"], 0);
  ASSERT_EQ(rep["failed"].size(), 1u);
  EXPECT_NE(rep["failed"][0]["path"].get<std::string>().find("7.webm"), std::string::npos);
  EXPECT_FALSE(fs::exists(out + "/videos/7.webm"));
  EXPECT_FALSE(fs::exists(out + "/videos/7.tmp.webm"));  // no half-written file left behind

  auto prepared = load_ssv2(out, "validation");
  ASSERT_EQ(prepared.items.size(), 10u);  // annotations copied, layout kept
  video::VideoReader r(prepared.items[0].path);
  EXPECT_EQ(r.size(), 8);
  EXPECT_EQ(r.info().width, 16);
  EXPECT_EQ(r.info().height, 16);

  fs::remove(out + "/videos/2.webm");  // resume after an interruption: only the missing one is redone
  rep = run_data_prepare(p).to_json();
  EXPECT_EQ(rep["written"], 1);
  EXPECT_EQ(rep["kept"], 29);
}

TEST(TrainJobs, TrainResumeAndEvalOnTheGeneratedSet) {
  const std::string base = test::temp_dir(), root = base + "/ssf", run = base + "/run";
  generate_ssf(tiny_ssf(root));
  TrainJob job;
  job.model_config = std::string(TRECVIT_CONFIG_DIR) + "/demo-peer.json";
  job.out_dir = run;
  job.set("data.root", root).set("train.steps", 6).set("train.log_every", 1).set("data.batch_size", 4).set("data.sampler", "segments");
  job.set("data.flip", "mirror");  // SSF's left/right and clockwise twins swap labels under the flip
  job.set("data.color_jitter", 0.2);
  CancelToken stop;
  auto out = run_train(job, [&](const Event& e) { if (e.kind == EventKind::kStep && e.fields["step"] == 4) stop.request(); }, &stop);
  EXPECT_EQ(out.steps, 4);
  EXPECT_TRUE(out.stopped);
  EXPECT_TRUE(fs::exists(run + "/checkpoint.pt"));
  const auto rec = read_run_record(run + "/run.json");
  EXPECT_EQ(rec.data.batch_size, 4);
  EXPECT_EQ(rec.data.flip, "mirror");
  EXPECT_EQ(rec.data.frames, 8);  // resolved: the model's num_frames
  EXPECT_EQ(rec.data.root, fs::absolute(root).lexically_normal().string());

  // A fresh run into a directory that holds one is refused, naming the directory.
  try {
    run_train(job);
    ADD_FAILURE() << "a second fresh run overwrote the first";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(run), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
  job.resume = true;
  EXPECT_EQ(run_train(job).steps, 6);

  EvalJob eval;
  eval.checkpoint = run + "/checkpoint.pt";
  eval.data_root = root;
  eval.sampler = "segments";
  auto report = run_eval(eval).to_json();
  EXPECT_EQ(report["count"], 10);
  EXPECT_EQ(report["confusion"].size(), 10u);
  EXPECT_GE(report["top5"].get<double>(), report["top1"].get<double>());
  eval.views = "0x1";
  EXPECT_THROW(run_eval(eval), ConfigError);

  TrainJob wrong = job;  // a model whose class count disagrees with the data
  wrong.model_config = std::string(TRECVIT_CONFIG_DIR) + "/tiny.json";
  wrong.out_dir = base + "/wrong";
  wrong.resume = false;
  EXPECT_THROW(run_train(wrong), ConfigError);
  wrong = job;
  wrong.out_dir = base + "/sideways";
  wrong.resume = false;
  wrong.set("data.flip", "sideways", "--flip sideways");
  try {
    run_train(wrong);
    ADD_FAILURE() << "flip sideways was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--flip sideways"), std::string::npos) << e.what();
  }
}

TEST(BenchLoader, QuickRunReportsAllThreeRates) {
  std::string out;
  ASSERT_EQ(test::run_command(std::string(TRECVIT_BIN) + " bench loader --quick --json --set config=tiny --set size=32 "
                              "--set frames=4 --set video_size=32 --set batch=4", &out), 0) << out;
  auto j = nlohmann::json::parse(out.substr(out.find('{')));
  EXPECT_EQ(j["benchmark"], "loader");
  EXPECT_EQ(j["clip"], "4x32x32");
  for (auto key : {"loader_clips_per_s", "train_in_memory_clips_per_s", "train_fed_clips_per_s"})
    EXPECT_GT(j[key].get<double>(), 0) << key;
}

TEST(TrainJobs, FirstSigintStopsTrainingWithACheckpoint) {
  // Signals are the command line's: the handler sets the job's CancelToken, the trainer finishes
  // its step, checkpoints and returns; the process exits 0 and says how to resume.
  const std::string base = test::temp_dir(), root = base + "/ssf", run = base + "/run", log = base + "/log";
  generate_ssf(tiny_ssf(root));
  const std::string train = std::string(TRECVIT_BIN) + " --threads 1 train --config " + TRECVIT_CONFIG_DIR +
                            "/demo-peer.json --data " + root + " --out " + run +
                            " --steps 100000 --batch-size 2 --workers 1 --sampler segments";
  std::string out;
  ASSERT_EQ(test::run_command("bash -c '" + train + " > " + log + " 2>&1 & p=$!; for i in $(seq 1200); do grep -q ^step " +
                                  log + " && break; sleep 0.1; done; kill -INT $p; wait $p; echo rc=$?; cat " + log + "'",
                              &out),
            0);
  EXPECT_NE(out.find("rc=0"), std::string::npos) << out;
  EXPECT_NE(out.find("stopped by signal; continue with: trecvit train --resume " + run), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(run + "/checkpoint.pt"));
  // The resume needs nothing but the run; a flag that contradicts its record is named.
  EXPECT_NE(test::run_command(std::string(TRECVIT_BIN) + " --threads 1 train --resume " + run + " --batch-size 4", &out), 0);
  EXPECT_NE(out.find("--batch-size 4: the run in " + run + " was recorded with data.batch_size = 2"), std::string::npos) << out;
}

TEST(EvalJobs, ACancelledEvaluationSaysItIsPartial) {
  const std::string base = test::temp_dir(), root = base + "/ssf";
  generate_ssf(tiny_ssf(root));
  torch::manual_seed(0);
  save_checkpoint(*TRecViT(load_config(std::string(TRECVIT_CONFIG_DIR) + "/demo-peer.json")), base + "/m.pt");
  EvalJob eval;
  eval.checkpoint = base + "/m.pt";
  eval.data_root = root;
  eval.report = base + "/report.json";
  CancelToken stop;
  int seen = 0;
  auto result = run_eval(
      eval,
      [&](const Event& e) {
        if (e.kind == EventKind::kItem && ++seen == 1) stop.request();
      },
      &stop);
  EXPECT_TRUE(result.stopped);
  EXPECT_LT(result.count, 10);
  std::ifstream f(eval.report);
  EXPECT_TRUE(nlohmann::json::parse(f).at("stopped").get<bool>());
}

// Fine-tuning from a released-layout .npz with another class count: the backbone starts
// bit-equal to the imported weights, the head is new, checkpoints carry the dataset's class
// names, and the mismatches are clear errors.
TEST(TrainJobs, FineTuneFromANpzWithANewHeadAndClassNames) {
  const std::string base = test::temp_dir(), root = base + "/ssf";
  generate_ssf(tiny_ssf(root));  // 10 classes
  torch::manual_seed(3);
  TRecViT source(load_config(std::string(TRECVIT_CONFIG_DIR) + "/tiny.json"));  // 5 classes
  export_npz(*source, base + "/released.npz");
  const auto imported = load_pretrained(base + "/released.npz");

  TrainJob job;
  job.init = base + "/released.npz";
  job.out_dir = base + "/no-reset";
  job.set("data.root", root).set("data.batch_size", 4).set("data.sampler", "segments");
  try {
    run_train(job);
    ADD_FAILURE() << "a 5-class init trained on 10 classes without --reset-head";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--reset-head"), std::string::npos) << e.what();
  }
  job.reset_head = true;
  job.out_dir = base + "/ft";
  job.train_config = base + "/zero-lr.json";  // lr ~ 0 for the backbone: what it starts from stays visible
  std::ofstream(job.train_config) << R"({"steps": 1, "lr": 1e-3, "lr_backbone_mult": 0, "weight_decay": 0})";
  run_train(job);
  auto tuned = load_checkpoint(job.out_dir + "/checkpoint.pt");
  EXPECT_EQ(tuned->config().num_classes, 10);
  ASSERT_EQ(tuned->class_names().size(), 10u);
  EXPECT_FALSE(tuned->class_names()[0].empty());
  auto want = imported->named_parameters();
  for (auto& p : tuned->named_parameters()) {
    if (p.key().rfind("cls_head.", 0) == 0) continue;
    EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key() << " moved with a zero backbone lr";
  }
  std::ifstream record(job.out_dir + "/run.json");
  const auto rec = nlohmann::json::parse(record);
  EXPECT_EQ(rec["init"]["source"], fs::absolute(job.init).lexically_normal().string());
  EXPECT_TRUE(rec["init"]["reset_head"].get<bool>());
  EXPECT_EQ(rec["train"]["lr_backbone_mult"], 0.0);

  // 20 real steps with a frozen backbone: only the head changes.
  job.out_dir = base + "/frozen";
  job.train_config.clear();
  job.set("train.steps", 20);
  job.freeze = "backbone";
  run_train(job);
  auto frozen = load_checkpoint(job.out_dir + "/checkpoint.pt");
  for (auto& p : frozen->named_parameters())
    if (p.key().rfind("cls_head.", 0) != 0) EXPECT_TRUE(torch::equal(p.value(), want[p.key()])) << p.key();

  // A file that is neither a checkpoint nor an npz, and an init that does not fit --config.
  std::ofstream(base + "/junk.pt") << "not a checkpoint";
  job.init = base + "/junk.pt";
  job.out_dir = base + "/junk";
  EXPECT_THROW(run_train(job), CheckpointError);
  job.init = base + "/released.npz";
  job.model_config = std::string(TRECVIT_CONFIG_DIR) + "/demo-peer.json";
  job.out_dir = base + "/misfit";
  try {
    run_train(job);
    ADD_FAILURE() << "an init that does not fit the config was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit"), std::string::npos) << e.what();
  }

  // Class names reach predict and info; --labels with the wrong count is refused.
  const std::string bin = TRECVIT_BIN, ckpt = base + "/frozen/checkpoint.pt";
  std::string out;
  ASSERT_EQ(test::run_command(bin + " synth-clip --out " + base + "/c.npy --frames 8 --size 32", &out), 0) << out;
  ASSERT_EQ(test::run_command(bin + " predict --checkpoint " + ckpt + " " + base + "/c.npy", &out), 0) << out;
  EXPECT_NE(out.find(") p="), std::string::npos) << out;  // "NAME (INDEX) p=..."
  EXPECT_EQ(out.find("  class "), std::string::npos) << out;
  ASSERT_EQ(test::run_command(bin + " info --checkpoint " + ckpt, &out), 0) << out;
  EXPECT_NE(out.find("classes: 10 named"), std::string::npos) << out;
  std::ofstream(base + "/three.txt") << "a\nb\nc\n";
  EXPECT_NE(test::run_command(bin + " predict --checkpoint " + ckpt + " --labels " + base + "/three.txt " + base + "/c.npy", &out), 0);
  EXPECT_NE(out.find("three.txt"), std::string::npos) << out;
  EXPECT_NE(out.find("3 names"), std::string::npos) << out;
}

// Validation during training through the job: the validation split is evaluated every
// eval_every steps, reported, logged, and the best kept as best.pt.
TEST(TrainJobs, ValidationDuringTrainingKeepsBestPt) {
  const std::string base = test::temp_dir(), root = base + "/ssf";
  generate_ssf(tiny_ssf(root));
  TrainJob job;
  job.model_config = std::string(TRECVIT_CONFIG_DIR) + "/demo-peer.json";
  job.train_config = base + "/t.json";
  std::ofstream(job.train_config) << R"({"steps": 4, "eval_every": 2, "keep_last": 1, "checkpoint_every": 2,
                                          "data": {"batch_size": 4, "sampler": "segments", "eval_sampler": "segments"}})";
  job.out_dir = base + "/run";
  job.set("data.root", root);
  int evals = 0;
  const auto r = run_train(job, [&](const Event& e) {
    if (e.kind == EventKind::kEval) {
      ++evals;
      EXPECT_EQ(e.fields["count"], 10);
    }
  });
  EXPECT_EQ(evals, 2);
  EXPECT_TRUE(r.best_step == 2 || r.best_step == 4) << r.best_step;
  EXPECT_TRUE(fs::exists(base + "/run/best.pt"));
  EXPECT_TRUE(fs::exists(base + "/run/checkpoint-4.pt"));
  EXPECT_FALSE(fs::exists(base + "/run/checkpoint-2.pt"));
  EXPECT_EQ(load_checkpoint(base + "/run/best.pt")->class_names().size(), 10u);

  // The run's report: one SVG per promised plot, and a confusion matrix summing to the count.
  EvalJob eval;
  eval.checkpoint = base + "/run/checkpoint.pt";
  eval.data_root = root;
  eval.sampler = "segments";
  eval.routing = true;
  eval.report = base + "/run/eval.json";
  const auto evaluated = run_eval(eval);
  const std::string html = run_report_html(base + "/run");
  size_t svgs = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) ++svgs;
  EXPECT_EQ(svgs, 6u);  // loss, accuracy, lr, confusion, per-class, one PEER layer's histogram
  EXPECT_NE(html.find("validation top-1"), std::string::npos);
  EXPECT_NE(html.find("Routing health"), std::string::npos);
  EXPECT_EQ(html.rfind("</html>"), html.size() - 8);
  int64_t cells = 0;  // each heatmap cell's title is "TRUE -> PREDICTED: COUNT"
  for (size_t at = html.find(" -> "); at != std::string::npos; at = html.find(" -> ", at + 1)) {
    const size_t colon = html.find(": ", at), end = html.find("</title>", at);
    cells += std::stoll(html.substr(colon + 2, end - colon - 2));
  }
  EXPECT_EQ(cells, evaluated.count);
  EXPECT_EQ(cells, 10);
  EXPECT_THROW(run_report_html(base), std::runtime_error);  // no metrics.jsonl there
}

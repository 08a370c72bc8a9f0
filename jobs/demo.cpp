#include <filesystem>
#include <fstream>

#include "datasets/annotations.h"
#include "blocks/file_safety.h"
#include "datasets/views.h"
#include "jobs/data_jobs.h"
#include "train/trainer.h"
#include "jobs/demo_job.h"
#include "jobs/eval_job.h"
#include "jobs/json_io.h"
#include "jobs/train_job.h"
#include "models/checkpoint.h"
#include "models/config_locator.h"

namespace trecvit {
namespace fs = std::filesystem;

namespace {

bool dataset_complete(const fs::path& root) {
  for (auto f : {"labels.json", "train.json", "validation.json"})
    if (!path_exists(root / f)) return false;
  return true;
}

}  // namespace

nlohmann::json DemoResult::to_json() const {
  nlohmann::json j = report.is_object() ? report : nlohmann::json::object();
  j["stopped"] = stopped;
  j["train_steps"] = train_steps;
  j["train_seconds"] = train_seconds;
  return j;
}

DemoResult run_demo(const DemoJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "demo");
  DemoResult result;
  if (!dataset_complete(job.data_root)) {
    data::SSFOptions o;
    o.out_dir = job.data_root;
    o.threads = job.threads;
    const auto generated = run_data_generate(o, progress, cancel);
    if (generated.report.stopped) {
      result.stopped = true;
      return result;
    }
  }
  const std::string config = find_config(job.model_config.empty() ? "demo-peer.json" : job.model_config);
  fs::create_directories(job.out_dir);

  // The recipe (batch 16, SSv2's segment sampling) lives in the config files alone, so
  // `trecvit train --config demo-peer.json --train-config demo-peer.train.json` is this training.
  TrainJob train;
  train.model_config = config;
  train.train_config = train_config_beside(config);
  train.out_dir = job.out_dir;
  train.set("data.root", job.data_root, "--data");
  if (job.steps > 0) train.set("train.steps", job.steps, "--steps");
  if (job.shuffle_frames) train.set("data.shuffle_frames", true, "--shuffle-frames");
  // Run again, the demo continues its own earlier run (finished: straight to evaluation).
  train.resume = path_exists(fs::path(job.out_dir) / "run.json");
  report.stage("training " + config + " on " + job.data_root + (job.shuffle_frames ? " (frame-shuffled clips)" : "") +
               (train.resume ? " (resuming " + job.out_dir + ")" : ""));
  const auto trained = run_train(train, progress, cancel);
  result.train_steps = trained.steps;
  result.train_seconds = trained.seconds;
  if (trained.stopped) {  // the checkpoint is written; evaluating now would ignore the request
    result.stopped = true;
    return result;
  }

  EvalJob eval;
  eval.checkpoint = trained.ema_checkpoint.empty() ? trained.checkpoint : trained.ema_checkpoint;
  eval.data_root = job.data_root;
  eval.split = "validation";
  eval.report = job.out_dir + "/eval.json";
  eval.shuffle_frames = job.shuffle_frames;
  eval.sampler = trained.record.data.eval_sampler;
  eval.frames = trained.record.data.frames;
  eval.stride = trained.record.data.stride;
  report.stage("evaluating on the validation split");
  const auto evaluated = run_eval(eval, progress, cancel);
  result.report = evaluated.report;
  result.top1 = evaluated.top1;
  if (evaluated.stopped) {  // partial metrics are no result: run the demo again to evaluate
    result.stopped = true;
    return result;
  }

  // One validation video through the causal streaming path, frame by frame.
  auto model = load_checkpoint(eval.checkpoint);
  model->eval();
  torch::NoGradGuard ng;
  auto split = data::load_ssv2(job.data_root, "validation");
  const auto& item = split.items.front();
  data::ViewSpec spec;
  spec.clip.frames = model->config().num_frames;
  spec.size = model->config().image_height;
  spec.sampler = eval.sampler;
  auto clip = data::load_views(item, spec)[0];
  report.stage("streaming " + item.path + " (true class: " + split.class_names[item.label] + ")");
  auto state = model->init_stream(1);
  for (int64_t t = 0; t < clip.size(0); ++t) {
    auto probs = torch::softmax(model->step(state, clip.narrow(0, t, 1).unsqueeze(0))[0][0], 0);
    auto [p, idx] = probs.topk(3);
    nlohmann::json top = nlohmann::json::array();
    for (int k = 0; k < 3; ++k) {
      const int64_t c = idx[k].item<int64_t>();
      top.push_back({{"class", c}, {"label", split.class_names[c]}, {"prob", p[k].item<double>()}});
    }
    report(EventKind::kFrame, {{"index", t}, {"topk", top}});
  }
  write_json_atomically(job.out_dir + "/demo.json", result.to_json());
  return result;
}

}  // namespace trecvit

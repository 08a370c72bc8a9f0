// `trecvit demo`: the README's main job, end to end on the embedded default data.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "datasets/annotations.h"
#include "datasets/views.h"
#include "models/checkpoint.h"
#include "train/jobs.h"
#include "train/trainer.h"

namespace trecvit {
namespace fs = std::filesystem;

namespace {

std::string find_config(const std::string& given) {
  if (!given.empty()) return given;
  for (std::string dir : {std::string("configs"), std::string(TRECVIT_CONFIG_DIR)})
    if (fs::exists(dir + "/demo-peer.json")) return dir + "/demo-peer.json";
  throw ConfigError("demo: configs/demo-peer.json not found (run from the repository root or pass --config)");
}

// Section headers and results, flushed so a pipe or log file shows them as they happen.
template <typename... Args>
void say(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(f, std::forward<Args>(args)...);
  std::fflush(stdout);
}

bool dataset_complete(const fs::path& root) {
  for (auto f : {"labels.json", "train.json", "validation.json"})
    if (!fs::exists(root / f)) return false;
  return true;
}

}  // namespace

nlohmann::json run_demo(const DemoJob& job) {
  const fs::path data_root(job.data_root);
  if (!dataset_complete(data_root)) {
    data::SSFOptions o;
    o.out_dir = job.data_root;
    o.threads = job.threads;
    say("== generating Something-Something-Fashion in {} ({} train / {} validation clips)\n", job.data_root,
               o.train_clips, o.validation_clips);
    auto r = data::generate_ssf(o);
    say("   {} videos written ({} reused) in {:.1f} s\n", r.written, r.reused, r.seconds);
  }
  const std::string config = find_config(job.model_config);
  fs::create_directories(job.out_dir);

  TrainJob train;
  train.model_config = config;
  train.train_config = fs::path(config).replace_extension(".train.json").string();
  if (!fs::exists(train.train_config)) train.train_config.clear();
  train.data_root = job.data_root;
  train.out_dir = job.out_dir;
  train.steps = job.steps;
  train.workers = 2;
  train.shuffle_frames = job.shuffle_frames;
  // Run again, the demo continues its own earlier run (finished: straight to evaluation).
  train.resume = fs::exists(fs::path(job.out_dir) / "checkpoint.pt");
  train.batch_size = 16;
  // SSv2's standard sampling: one frame from each of num_frames equal segments, so every clip
  // shows the whole motion (random within segments for training, their middles for evaluation).
  train.sampler = "segments";
  say("== training {} on {}{}{}\n", config, job.data_root, job.shuffle_frames ? " (frame-shuffled clips)" : "",
      train.resume ? fmt::format(" (resuming {})", job.out_dir) : "");
  auto outcome = run_train(train);
  if (stop_requested()) {  // Ctrl-C: the checkpoint is written; evaluating now would ignore the request
    say("== stopped during training; run the demo again to continue\n");
    return {{"stopped", true}, {"train_steps", outcome.steps}};
  }

  EvalJob eval;
  eval.checkpoint = fs::exists(job.out_dir + "/ema.pt") ? job.out_dir + "/ema.pt" : outcome.checkpoint;
  eval.data_root = job.data_root;
  eval.split = "validation";
  eval.report = job.out_dir + "/eval.json";
  eval.shuffle_frames = job.shuffle_frames;
  eval.sampler = "segments";
  say("== evaluating on the validation split\n");
  auto report = run_eval(eval);

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
  say("== streaming {} (true class: {})\n", item.path, split.class_names[item.label]);
  auto state = model->init_stream(1);
  for (int64_t t = 0; t < clip.size(0); ++t) {
    auto probs = torch::softmax(model->step(state, clip.narrow(0, t, 1).unsqueeze(0))[0][0], 0);
    auto [p, idx] = probs.topk(3);
    std::string line;
    for (int k = 0; k < 3; ++k)
      line += fmt::format("  {:>5.1f}% {}", 100 * p[k].item<double>(), split.class_names[idx[k].item<int64_t>()]);
    say("frame {:>2}:{}\n", t, line);
  }
  report["train_seconds"] = outcome.seconds;
  report["train_steps"] = outcome.steps;
  std::ofstream(job.out_dir + "/demo.json") << report.dump(2) << "\n";
  say("== demo done: validation top-1 {:.2f}% (report: {}/eval.json)\n", 100 * report["top1"].get<double>(),
             job.out_dir);
  return report;
}

}  // namespace trecvit

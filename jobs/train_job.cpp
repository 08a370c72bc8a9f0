#include "jobs/train_job.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "datasets/annotations.h"
#include "datasets/loader.h"
#include "jobs/video_source.h"
#include "models/checkpoint.h"
#include "train/trainer.h"

namespace trecvit {
namespace fs = std::filesystem;

nlohmann::json TrainResult::to_json() const {
  return {{"steps", steps},           {"steps_this_run", steps_this_run}, {"final_loss", final_loss},
          {"final_accuracy", final_accuracy}, {"seconds", seconds},   {"clips_per_s", clips_per_s},
          {"skipped", skipped},       {"stopped", stopped},           {"checkpoint", checkpoint},
          {"ema_checkpoint", ema_checkpoint}};
}

TrainResult run_train(const TrainJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "train");
  // A fresh run never overwrites an earlier one's checkpoint (nor appends to its metrics).
  if (!job.resume && fs::exists(fs::path(job.out_dir) / "checkpoint.pt"))
    throw ConfigError(job.out_dir + " already holds a run (checkpoint.pt): pass --resume to continue it, or choose "
                      "another --out");
  // Metrics of a run that died before its first checkpoint describe nothing resumable.
  if (!job.resume) fs::remove(fs::path(job.out_dir) / "metrics.jsonl");
  if (!job.resume && !job.sample_log.empty()) fs::remove(job.sample_log);
  auto cfg = load_config(job.model_config);
  TrainOptions topt;
  if (!job.train_config.empty()) {
    std::ifstream f(job.train_config);
    try {
      topt = train_options_from_json(nlohmann::json::parse(f), "train config " + job.train_config);
    } catch (const nlohmann::json::parse_error& e) {
      throw ConfigError("train config " + job.train_config + ": invalid JSON: " + e.what());
    }
  }
  if (job.steps > 0) topt.steps = job.steps;
  topt.seed = job.seed;
  topt.out_dir = job.out_dir;
  if (topt.warmup_steps >= topt.steps) topt.warmup_steps = topt.steps / 10;
  auto split = data::load_dataset(job.format, job.data_root, job.split);
  if (!split.missing.empty())
    report.problem(std::to_string(split.missing.size()) + " annotated videos are missing (first: " +
                   split.missing.front() + "); training on the " + std::to_string(split.items.size()) + " found");
  if (static_cast<int64_t>(split.class_names.size()) != cfg.num_classes)
    throw ConfigError("model config " + job.model_config + ": num_classes is " + std::to_string(cfg.num_classes) +
                      " but the dataset has " + std::to_string(split.class_names.size()) + " classes");
  data::LoaderOptions lo;
  lo.clip.frames = job.frames > 0 ? job.frames : cfg.num_frames;
  lo.clip.stride = job.stride;
  lo.sampler = job.sampler;
  lo.height = cfg.image_height;
  lo.width = cfg.image_width;
  lo.batch_size = job.batch_size;
  lo.workers = job.workers;
  lo.seed = job.seed;
  lo.shuffle_frames = job.shuffle_frames;
  if (job.flip != "none" && job.flip != "plain" && job.flip != "mirror")
    throw ConfigError("flip: expected none, plain or mirror, got '" + job.flip + "'");
  lo.horizontal_flip = job.flip != "none";
  if (job.flip == "mirror") lo.flip_label_map = data::mirror_label_map(split.class_names);
  lo.color_jitter = job.color_jitter;
  data::VideoLoader loader(split, lo);
  LoaderBatchSource source(loader, job.sample_log);
  torch::manual_seed(job.seed);
  Trainer trainer{TRecViT(cfg), topt, source};
  if (job.resume) trainer.resume(trainer.latest_checkpoint_path());
  auto t0 = std::chrono::steady_clock::now();
  TrainResult out;
  // Unreadable samples are reported as they are found (file and reason) and summed per epoch.
  size_t reported = 0;
  int64_t epoch_done = static_cast<int64_t>(trainer.global_step() * topt.accumulate /
                                            std::max<int64_t>(1, loader.batches_per_epoch()));
  auto report_skips = [&] {
    const auto failures = loader.failures();
    for (; reported < failures.size(); ++reported) {
      const auto& f = failures[reported];  // video_io's reasons already start with the file
      const std::string line = f.reason.rfind(f.path, 0) == 0 ? f.reason : f.path + ": " + f.reason;
      report(EventKind::kProblem, {{"message", "skipped " + line}, {"path", f.path}, {"reason", f.reason}});
    }
  };
  out.steps_this_run = trainer.run(
      [&](const StepStats& s) {
        out.final_loss = s.loss;
        out.final_accuracy = s.accuracy;
        out.clips_per_s = s.clips_per_s;
        report_skips();
        report(EventKind::kStep, {{"step", s.step},
                                  {"steps", topt.steps},
                                  {"epoch", s.epoch},
                                  {"loss", s.loss},
                                  {"accuracy", s.accuracy},
                                  {"lr", s.lr},
                                  {"clips_per_s", s.clips_per_s},
                                  {"eta_s", s.eta_s}});
        while (epoch_done < static_cast<int64_t>(s.epoch))  // a log interval may span several epochs
          report(EventKind::kEpoch, {{"epoch", ++epoch_done}, {"skipped", loader.skipped()}});
      },
      cancel);
  report_skips();
  out.steps = trainer.global_step();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.skipped = loader.skipped();
  out.checkpoint = trainer.latest_checkpoint_path();
  out.stopped = out.steps < topt.steps && cancelled(cancel);
  if (auto ema = trainer.eval_model(); ema.ptr() != trainer.model().ptr()) {
    out.ema_checkpoint = job.out_dir + "/ema.pt";
    save_checkpoint(*ema, out.ema_checkpoint);
  }
  return out;
}

}  // namespace trecvit

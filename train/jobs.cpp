#include "train/jobs.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "datasets/annotations.h"
#include "datasets/loader.h"
#include "datasets/views.h"
#include "eval/evaluate.h"
#include "models/checkpoint.h"
#include "train/trainer.h"
#include "train/video_source.h"
#include "video_io/video_reader.h"
#include "video_io/writer.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

std::string hms(double s) {
  const int64_t t = static_cast<int64_t>(s);
  return fmt::format("{}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60);
}

std::pair<int64_t, int64_t> parse_views(const std::string& v) {
  const auto x = v.find('x');
  try {
    if (x != std::string::npos) {
      const int64_t t = std::stoll(v.substr(0, x)), s = std::stoll(v.substr(x + 1));
      if (t >= 1 && (s == 1 || s == 3)) return {t, s};
    }
  } catch (const std::exception&) {
  }
  throw ConfigError("--views: expected TEMPORALxSPATIAL with TEMPORAL >= 1 and SPATIAL 1 or 3, like 2x3, got '" + v + "'");
}

class ViewsSource : public EvalSource {
 public:
  ViewsSource(const data::DatasetSplit& split, data::ViewSpec spec, bool shuffle_frames, bool quiet)
      : split_(split), spec_(std::move(spec)), shuffle_(shuffle_frames), quiet_(quiet) {}
  bool next(EvalSample& s) override {
    while (i_ < split_.items.size()) {
      const auto& item = split_.items[i_++];
      try {
        s.views = data::load_views(item, spec_);
        if (shuffle_) {
          std::mt19937_64 rng(i_);
          std::vector<int64_t> perm(s.views.size(1));
          for (size_t k = 0; k < perm.size(); ++k) perm[k] = static_cast<int64_t>(k);
          for (size_t k = perm.size(); k > 1; --k) std::swap(perm[k - 1], perm[rng() % k]);
          s.views = s.views.index_select(1, torch::tensor(perm, torch::kLong));
        }
        s.label = item.label;
        s.id = item.id;
        return true;
      } catch (const std::exception& e) {
        ++skipped_;
        if (!quiet_) fmt::print(stderr, "eval: skipping {}: {}\n", item.path, e.what());
      }
    }
    return false;
  }
  int64_t skipped() const override { return skipped_; }

 private:
  const data::DatasetSplit& split_;
  data::ViewSpec spec_;
  bool shuffle_, quiet_;
  size_t i_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace

TrainOutcome run_train(const TrainJob& job) {
  // A fresh run never overwrites an earlier one's checkpoint (nor appends to its metrics).
  if (!job.resume && fs::exists(fs::path(job.out_dir) / "checkpoint.pt"))
    throw ConfigError(job.out_dir + " already holds a run (checkpoint.pt): pass --resume to continue it, or choose "
                      "another --out");
  // Metrics of a run that died before its first checkpoint describe nothing resumable.
  if (!job.resume) fs::remove(fs::path(job.out_dir) / "metrics.jsonl");
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
  auto split = data::load_dataset(job.format, job.data_root, "train");
  if (!split.missing.empty() && !job.quiet)
    fmt::print("data: {} annotated videos are missing (first: {}); training on the {} found\n", split.missing.size(),
               split.missing.front(), split.items.size());
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
  LoaderBatchSource source(loader);
  torch::manual_seed(job.seed);
  Trainer trainer{TRecViT(cfg), topt, source};
  if (job.resume) trainer.resume(trainer.latest_checkpoint_path());
  install_stop_handlers();
  auto t0 = std::chrono::steady_clock::now();
  TrainOutcome out;
  // Unreadable samples are reported as they are found (file and reason) and summed per epoch.
  size_t reported = 0;
  int64_t epoch_done = static_cast<int64_t>(trainer.global_step() * topt.accumulate / std::max<int64_t>(1, loader.batches_per_epoch()));
  auto report_skips = [&] {
    const auto failures = loader.failures();
    for (; reported < failures.size(); ++reported) {
      const auto& f = failures[reported];  // video_io's reasons already start with the file
      fmt::print(stderr, "data: skipped {}\n", f.reason.rfind(f.path, 0) == 0 ? f.reason : f.path + ": " + f.reason);
    }
  };
  const int64_t done_now = trainer.run([&](const StepStats& s) {
    out.final_loss = s.loss;
    out.final_accuracy = s.accuracy;
    out.clips_per_s = s.clips_per_s;
    if (job.quiet) return;
    report_skips();
    fmt::print("step {:>6}/{} epoch {:6.2f} loss {:.4f} acc {:5.1f}% lr {:.2e} {:6.1f} clips/s ETA {}\n", s.step,
               topt.steps, s.epoch, s.loss, 100 * s.accuracy, s.lr, s.clips_per_s, hms(s.eta_s));
    while (epoch_done < static_cast<int64_t>(s.epoch))  // a log interval may span several epochs
      fmt::print("epoch {} done: {} unreadable samples skipped and replaced so far\n", ++epoch_done, loader.skipped());
    std::fflush(stdout);  // progress reaches a pipe or log file as it happens
  });
  out.steps = trainer.global_step();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.skipped = loader.skipped();
  out.checkpoint = trainer.latest_checkpoint_path();
  if (trainer.eval_model().ptr() != trainer.model().ptr()) save_checkpoint(*trainer.eval_model(), job.out_dir + "/ema.pt");
  if (!job.quiet) {
    report_skips();
    fmt::print("trained to step {} ({} steps in this run, {:.1f} s); {} samples skipped\n", out.steps, done_now,
               out.seconds, out.skipped);
    if (stop_requested()) fmt::print("stopped by signal; resume with --resume\n");
  }
  return out;
}

nlohmann::json run_eval(const EvalJob& job) {
  auto model = load_checkpoint(job.checkpoint);
  const auto& cfg = model->config();
  auto split = data::load_dataset(job.format, job.data_root, job.split);
  const auto [tv, sv] = parse_views(job.views);
  data::ViewSpec spec;
  spec.clip.frames = job.frames > 0 ? job.frames : cfg.num_frames;
  spec.clip.stride = job.stride;
  spec.sampler = job.sampler;
  spec.temporal = tv;
  spec.spatial = sv;
  spec.size = cfg.image_height;
  if (cfg.image_height != cfg.image_width) throw ConfigError("eval: square models only (got " + std::to_string(cfg.image_height) + "x" + std::to_string(cfg.image_width) + ")");
  ViewsSource source(split, spec, job.shuffle_frames, job.quiet);
  auto metrics = evaluate(*model, source);
  auto report = metrics.to_json(split.class_names);
  report["checkpoint"] = job.checkpoint;
  report["split"] = job.split;
  report["views"] = job.views;
  report["skipped"] = source.skipped();
  report["missing"] = split.missing.size();
  if (!job.report.empty()) std::ofstream(job.report) << report.dump(2) << "\n";
  if (job.json)
    fmt::print("{}\n", report.dump());
  else if (!job.quiet)
    fmt::print("eval {} on {} ({} videos, views {}): top-1 {:.2f}%  top-5 {:.2f}%  ({} unreadable, {} missing)\n",
               job.checkpoint, job.split, metrics.count(), job.views, 100 * metrics.top1(), 100 * metrics.top5(),
               source.skipped(), split.missing.size());
  return report;
}

}  // namespace trecvit

#include "jobs/train_job.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "datasets/annotations.h"
#include "datasets/loader.h"
#include "jobs/eval_job.h"
#include "jobs/video_source.h"
#include "models/checkpoint.h"
#include "models/pretrained.h"
#include "train/trainer.h"

namespace trecvit {
namespace fs = std::filesystem;

nlohmann::json TrainResult::to_json() const {
  return {{"steps", steps},           {"steps_this_run", steps_this_run}, {"final_loss", final_loss},
          {"final_accuracy", final_accuracy}, {"seconds", seconds},   {"clips_per_s", clips_per_s},
          {"skipped", skipped},       {"stopped", stopped},           {"checkpoint", checkpoint},
          {"ema_checkpoint", ema_checkpoint}, {"best_checkpoint", best_checkpoint}, {"best_value", best_value},
          {"best_step", best_step}};
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
  if (job.freeze != "none" && job.freeze != "backbone")
    throw ConfigError("--freeze: expected none or backbone, got '" + job.freeze + "'");
  if (job.model_config.empty() && job.init.empty()) throw ConfigError("--config: a model config is needed (or --init)");
  // The run's record of where its weights came from: kept across resumes, and a resume may
  // not name another source.
  const fs::path config_json = fs::path(job.out_dir) / "config.json";
  nlohmann::json init_record;
  if (job.resume && fs::exists(config_json)) {
    std::ifstream in(config_json);
    init_record = nlohmann::json::parse(in, nullptr, false).value("init", nlohmann::json());
    if (!job.init.empty() && (!init_record.is_object() || init_record.value("source", nlohmann::json()) != job.init))
      throw ConfigError("--init " + job.init + ": the run in " + job.out_dir + " started from " +
                        (init_record.is_object() ? init_record.value("source", std::string("?")) : std::string("fresh weights")) +
                        "; resume it without --init");
  }
  TRecViT pretrained{nullptr};
  if (!job.init.empty() && !job.resume) pretrained = load_pretrained(job.init);
  TRecViTConfig cfg = !job.model_config.empty() ? load_config(job.model_config)
                      : pretrained             ? pretrained->config()
                                               : read_checkpoint_config(job.init);
  if (pretrained && !job.model_config.empty()) {
    const std::string diff = backbone_difference(pretrained->config(), cfg);
    if (!diff.empty())
      throw ConfigError("--init " + job.init + " does not fit --config " + job.model_config + ": " + diff);
    const int64_t classes = cfg.num_classes;
    cfg = pretrained->config();  // the init's architecture, with the config's class count and readout
    cfg.num_classes = classes;
    cfg.readout = load_config(job.model_config).readout;
  }
  TrainOptions topt = load_train_options(job.train_config);
  if (job.steps > 0) topt.steps = job.steps;
  topt.seed = job.seed;
  topt.out_dir = job.out_dir;
  if (topt.warmup_steps >= topt.steps) topt.warmup_steps = topt.steps / 10;
  auto split = data::load_dataset(job.format, job.data_root, job.split);
  if (!split.missing.empty())
    report.problem(std::to_string(split.missing.size()) + " annotated videos are missing (first: " +
                   split.missing.front() + "); training on the " + std::to_string(split.items.size()) + " found");
  const int64_t data_classes = static_cast<int64_t>(split.class_names.size());
  if (pretrained && job.model_config.empty()) cfg.num_classes = job.reset_head ? data_classes : pretrained->config().num_classes;
  if (pretrained && !job.reset_head && pretrained->config().num_classes != data_classes)
    throw ConfigError("--init " + job.init + " has " + std::to_string(pretrained->config().num_classes) +
                      " classes but the dataset has " + std::to_string(data_classes) +
                      ": pass --reset-head to train a new class head");
  if (cfg.num_classes != data_classes)
    throw ConfigError("model config " + (job.model_config.empty() ? job.init : job.model_config) + ": num_classes is " +
                      std::to_string(cfg.num_classes) + " but the dataset has " + std::to_string(data_classes) + " classes");
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
  // From weights: the init itself (its new head drawn from the seed), with the run's readout.
  TRecViT model = !pretrained ? TRecViT(cfg) : job.reset_head ? with_new_head(*pretrained, data_classes) : pretrained;
  if (pretrained) model->set_readout(cfg.readout);
  // A resumed run freezes what it froze before (the optimizer's groups depend on it).
  const std::string freeze = job.resume && init_record.is_object() ? init_record.value("freeze", job.freeze) : job.freeze;
  if (!job.resume && (pretrained || freeze != "none"))
    init_record = {{"source", job.init.empty() ? nlohmann::json() : nlohmann::json(job.init)},
                   {"reset_head", job.reset_head}, {"freeze", freeze}};
  if (freeze == "backbone")
    for (auto& p : model->named_parameters())
      if (p.key().rfind("cls_head.", 0) != 0) p.value().set_requires_grad(false);
  model->set_class_names(split.class_names);  // every checkpoint of the run carries them
  Trainer trainer{model, topt, source};
  data::DatasetSplit validation;
  if (topt.eval_every > 0) {
    validation = data::load_dataset(job.format, job.data_root, job.validation_split);
    if (validation.items.empty())
      throw ConfigError("eval_every is " + std::to_string(topt.eval_every) + " but the " + job.validation_split +
                        " split of " + job.data_root + " is empty");
    data::ViewSpec spec;
    spec.clip.frames = lo.clip.frames;
    spec.clip.stride = job.stride;
    spec.sampler = job.sampler == "segments" ? "segments" : "center";
    spec.size = cfg.image_height;
    trainer.set_validator([&, spec](TRecViTImpl& m) {
      auto views = make_views_source(validation, spec, job.shuffle_frames, report, cancel);
      const auto metrics = evaluate(m, *views);
      nlohmann::json r = {{"split", job.validation_split}, {"count", metrics.count()}, {"top1", metrics.top1()},
                          {"top5", metrics.top5()}, {"skipped", views->skipped()}};
      report(EventKind::kEval, {{"split", job.validation_split + " at step " + std::to_string(trainer.global_step())},
                                {"count", metrics.count()}, {"top1", metrics.top1()}, {"top5", metrics.top5()},
                                {"skipped", views->skipped()}});
      return r;
    });
  }
  if (init_record.is_object()) {  // the trainer wrote config.json; add the weights' origin and the freeze
    std::ifstream in(config_json);
    auto record = nlohmann::json::parse(in);
    record["init"] = init_record;
    std::ofstream(config_json) << record.dump(2) << "\n";
  }
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
  if (trainer.best_step() > 0) {
    out.best_checkpoint = job.out_dir + "/best.pt";
    out.best_value = trainer.best_value();
    out.best_step = trainer.best_step();
  }
  out.stopped = out.steps < topt.steps && cancelled(cancel);
  if (auto ema = trainer.eval_model(); ema.ptr() != trainer.model().ptr()) {
    out.ema_checkpoint = job.out_dir + "/ema.pt";
    save_checkpoint(*ema, out.ema_checkpoint);
  }
  return out;
}

}  // namespace trecvit

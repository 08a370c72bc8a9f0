#include "jobs/train_job.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "blocks/file_safety.h"
#include "datasets/annotations.h"
#include "datasets/loader.h"
#include "jobs/eval_job.h"
#include "jobs/json_io.h"
#include "jobs/video_source.h"
#include "models/checkpoint.h"
#include "models/pretrained.h"
#include "blocks/channel_mixer.h"
#include "train/trainer.h"

namespace trecvit {
namespace fs = std::filesystem;

TrainJob& TrainJob::set(const std::string& key, nlohmann::json value, std::string origin) {
  Setting s;
  s.key = key;
  s.value = std::move(value);
  s.origin = origin.empty() ? key : std::move(origin);
  settings.push_back(std::move(s));
  return *this;
}

nlohmann::json TrainResult::to_json() const {
  return {{"steps", steps},           {"steps_this_run", steps_this_run}, {"final_loss", final_loss},
          {"final_accuracy", final_accuracy}, {"seconds", seconds},   {"clips_per_s", clips_per_s},
          {"skipped", skipped},       {"stopped", stopped},           {"checkpoint", checkpoint},
          {"ema_checkpoint", ema_checkpoint}, {"best_checkpoint", best_checkpoint}, {"best_value", best_value},
          {"best_step", best_step}};
}

namespace {

std::string absolute(const std::string& p) { return p.empty() ? p : fs::absolute(p).lexically_normal().string(); }

// The three sections of a recipe as JSON, each kept valid by its own parser.
struct Sections {
  nlohmann::json model, train = nlohmann::json::object(), data = nlohmann::json::object();
  nlohmann::json& operator[](const std::string& section) { return section == "model" ? model : section == "train" ? train : data; }
  const nlohmann::json& operator[](const std::string& section) const {
    return section == "model" ? model : section == "train" ? train : data;
  }
};

nlohmann::json resolved(const std::string& section, const nlohmann::json& j, const std::string& origin) {
  if (section == "model") return config_to_json(config_from_json(j, origin));
  if (section == "train") return train_options_to_json(train_options_from_json(j, origin));
  return data_recipe_to_json(data_recipe_from_json(j, origin));
}

// One setting applied and checked: its errors name it ("--set train.lr=x: field 'lr': ...").
void apply(Sections& s, Setting x, const Reporter& report) {
  const std::string section = x.section();
  if (section != "model" && section != "train" && section != "data")
    throw ConfigError(x.origin + ": unknown section '" + section + "' (settings are model.FIELD, train.FIELD or data.FIELD)");
  if (x.path().empty()) throw ConfigError(x.origin + ": no field after '" + section + ".'");
  if (section == "model" && s.model.is_null()) throw ConfigError(x.origin + ": there is no model config to change");
  if (x.key == "data.root" && x.value.is_string()) x.value = x.text = absolute(x.value.get<std::string>());
  const nlohmann::json before = resolved(section, s[section], x.origin);
  nlohmann::json next = s[section];
  apply_setting(next, x, before);
  if (x.key == "train.steps" && next["steps"].is_number_integer()) {
    // A shorter run than the config's keeps a sensible warm-up instead of failing on it.
    const int64_t steps = next["steps"].get<int64_t>(), warmup = before["warmup_steps"].get<int64_t>();
    if (warmup >= steps && steps > 0) {
      next["warmup_steps"] = steps / 10;
      report.stage("train.warmup_steps " + std::to_string(warmup) + " >= train.steps " + std::to_string(steps) +
                   ": warm-up shortened to " + std::to_string(steps / 10) + " steps");
    }
  }
  resolved(section, next, x.origin);
  s[section] = std::move(next);
}

Sections sections_of(const RunRecord& r) {
  return {r.model, train_options_to_json(r.train), data_recipe_to_json(r.data)};
}

// A resume: what is given again is compared with the record, field by field.
RunRecord resume_record(const TrainJob& job, const Reporter& report) {
  const std::string path = (fs::path(job.out_dir) / "run.json").string();
  if (!path_exists(path))
    throw ConfigError(job.out_dir + ": no run.json to resume from" +
                      (path_exists(fs::path(job.out_dir) / "checkpoint.pt")
                           ? std::string(" (the checkpoint was written by an older trecvit: start a new run with --init ") +
                                 job.out_dir + "/checkpoint.pt)"
                           : std::string()));
  RunRecord rec = read_run_record(path);
  if (!job.recipe.empty()) throw ConfigError("--recipe starts a new run; a resumed run reads " + path);
  // Resolved as a fresh run would resolve them, on top of the record: the files, then the
  // settings (so "--steps 3" shortens the file's warm-up again, as it did the first time).
  const Sections record = sections_of(rec);
  Sections current = record;
  std::vector<std::pair<std::string, std::string>> origins;  // (key, what gave it), in order
  if (!job.model_config.empty()) {
    const auto file = read_json_object(job.model_config, "model config");
    current.model.merge_patch(file);
    for (auto& leaf : json_leaves(file, "model", "--config " + job.model_config)) origins.emplace_back(leaf.key, leaf.origin);
  }
  if (!job.train_config.empty()) {
    const auto file = read_train_config_file(job.train_config);
    current.train.merge_patch(file.train);
    current.data.merge_patch(file.data);
    for (auto& leaf : json_leaves(file.train, "train", "--train-config " + job.train_config)) origins.emplace_back(leaf.key, leaf.origin);
    for (auto& leaf : json_leaves(file.data, "data", "--train-config " + job.train_config)) origins.emplace_back(leaf.key, leaf.origin);
  }
  for (auto section : {"model", "train", "data"}) resolved(section, current[section], "the options given with --resume");
  const Reporter quiet({}, "train");
  for (const auto& s : job.settings) {
    apply(current, s, quiet);
    origins.emplace_back(s.key, s.origin);
  }
  if (current.data["frames"] == 0) current.data["frames"] = rec.data.frames;  // 0 is the model's num_frames, as recorded
  for (auto section : {"model", "train", "data"}) {
    const auto was = resolved(section, record[std::string(section)], path), now = resolved(section, current[section], path);
    for (const auto& op : nlohmann::json::diff(was, now)) {
      std::string key = op["path"].get<std::string>().substr(1);
      std::replace(key.begin(), key.end(), '/', '.');
      key = std::string(section) + "." + key;
      if (key == "data.workers") continue;  // a resource, not a recipe: the batches do not depend on it
      std::string origin = "the options given with --resume";
      for (const auto& [k, o] : origins)
        if (key == k || key.rfind(k + ".", 0) == 0 || k.rfind(key + ".", 0) == 0) origin = o;
      const nlohmann::json* old = json_find(was, key.substr(key.find('.') + 1));
      const nlohmann::json* given = json_find(now, key.substr(key.find('.') + 1));
      throw ConfigError(origin + ": the run in " + job.out_dir + " was recorded with " + key + " = " +
                        (old ? old->dump() : std::string("(none)")) + ", this gives " + (given ? given->dump() : std::string("(none)")) +
                        "; a resumed run keeps its recipe (resume without it, or start a new run)");
    }
  }
  rec.data = data_recipe_from_json(current.data, path);
  const nlohmann::json source = rec.init.is_object() ? rec.init.value("source", nlohmann::json()) : nlohmann::json();
  if (!job.init.empty() && source != nlohmann::json(absolute(job.init)))
    throw ConfigError("--init " + job.init + ": the run in " + job.out_dir + " started from " +
                      (source.is_string() ? source.get<std::string>() : std::string("fresh weights")) + "; resume it without --init");
  const bool reset = rec.init.is_object() && rec.init.value("reset_head", false);
  const std::string freeze = rec.init.is_object() ? rec.init.value("freeze", std::string("none")) : "none";
  if (job.reset_head && !reset) throw ConfigError("--reset-head: the run in " + job.out_dir + " kept its init's head");
  if (job.freeze != "none" && job.freeze != freeze)
    throw ConfigError("--freeze " + job.freeze + ": the run in " + job.out_dir + " was recorded with freeze " + freeze);
  if (rec.threads != at::get_num_threads())
    report.problem("resuming with " + std::to_string(at::get_num_threads()) + " threads; the run started with " +
                   std::to_string(rec.threads) + " (the result may differ from an uninterrupted run in the last bits)");
  return rec;
}

// A fresh run: the sources in order, then the settings; the dataset fixes a fresh head's size.
RunRecord fresh_record(const TrainJob& job, TRecViT& pretrained, data::DatasetSplit& split, const Reporter& report) {
  Sections s;
  RunRecord from;
  nlohmann::json init;
  if (!job.recipe.empty()) {
    from = read_run_record(job.recipe);
    s = sections_of(from);
    init = from.init;
  }
  if (!job.model_config.empty()) s.model = read_json_object(job.model_config, "model config");
  if (!job.train_config.empty()) {
    const auto file = read_train_config_file(job.train_config);
    s.train.merge_patch(file.train);
    s.data.merge_patch(file.data);
  }
  if (!job.init.empty() || job.reset_head || job.freeze != "none")
    init = {{"source", job.init.empty() ? init.value("source", nlohmann::json()) : nlohmann::json(absolute(job.init))},
            {"reset_head", job.reset_head || (init.is_object() && init.value("reset_head", false))},
            {"freeze", job.freeze != "none" ? job.freeze : init.is_object() ? init.value("freeze", job.freeze) : job.freeze}};
  const std::string source = init.is_object() && init["source"].is_string() ? init["source"].get<std::string>() : "";
  const bool reset_head = init.is_object() && init.value("reset_head", false);
  if (!source.empty()) pretrained = load_pretrained(source);
  const bool architecture_from_init = s.model.is_null();
  if (architecture_from_init) {
    if (!pretrained) throw ConfigError("--config: a model config is needed (or --init)");
    s.model = config_to_json(pretrained->config());
  } else if (pretrained) {
    const auto cfg = config_from_json(s.model, "model config " + job.model_config);
    const std::string diff = backbone_difference(pretrained->config(), cfg);
    if (!diff.empty()) throw ConfigError("--init " + source + " does not fit --config " + job.model_config + ": " + diff);
    // The init's architecture, with the config's name, class count and readout.
    auto arch = config_to_json(pretrained->config());
    for (auto key : {"name", "num_classes", "readout"}) arch[key] = config_to_json(cfg)[key];
    s.model = arch;
  }
  config_from_json(s.model, "model config " + job.model_config);
  for (const auto& x : job.settings) apply(s, x, report);
  RunRecord rec;
  rec.data = data_recipe_from_json(s.data, "the data options");
  rec.data.root = absolute(rec.data.root);
  if (rec.data.root.empty()) throw ConfigError("--data: a dataset root is needed (or data.root in the train config)");
  split = data::load_dataset(rec.data.format, rec.data.root, rec.data.split);
  const int64_t classes = static_cast<int64_t>(split.class_names.size());
  if (pretrained && architecture_from_init && reset_head) s.model["num_classes"] = classes;
  if (pretrained && !reset_head && pretrained->config().num_classes != classes)
    throw ConfigError("--init " + source + " has " + std::to_string(pretrained->config().num_classes) +
                      " classes but the dataset has " + std::to_string(classes) + ": pass --reset-head to train a new class head");
  const TRecViTConfig cfg = config_from_json(s.model, "model config " + job.model_config);
  if (cfg.num_classes != classes)
    throw ConfigError("model config " + (job.model_config.empty() ? source : job.model_config) + ": num_classes is " +
                      std::to_string(cfg.num_classes) + " but the dataset has " + std::to_string(classes) + " classes");
  rec.model = config_to_json(cfg);
  rec.train = train_options_from_json(s.train, "the training options");
  if (rec.data.frames == 0) rec.data.frames = cfg.num_frames;
  rec.init = init;
  rec.version = TRECVIT_VERSION;
  rec.threads = at::get_num_threads();
  return rec;
}

}  // namespace

TrainResult run_train(const TrainJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "train");
  if (job.out_dir.empty()) throw ConfigError("--out: a run directory is needed");
  // A fresh run never overwrites an earlier one's checkpoint (nor appends to its metrics).
  if (!job.resume && path_exists(fs::path(job.out_dir) / "checkpoint.pt"))
    throw ConfigError(job.out_dir + " already holds a run (checkpoint.pt): pass --resume to continue it, or choose "
                      "another --out");
  if (job.freeze != "none" && job.freeze != "backbone")
    throw ConfigError("--freeze: expected none or backbone, got '" + job.freeze + "'");
  if (job.resume && !path_exists(fs::path(job.out_dir) / "checkpoint.pt") && path_exists(fs::path(job.out_dir) / "run.json")) {
    // Killed before its first checkpoint: nothing to continue, so the recorded run starts again.
    resume_record(job, report);  // what is given again must still agree with the record
    TrainJob again;
    again.recipe = (fs::path(job.out_dir) / "run.json").string();
    again.out_dir = job.out_dir;
    again.sample_log = job.sample_log;
    again.group = job.group;
    for (const auto& s : job.settings)
      if (s.key == "data.workers") again.settings.push_back(s);
    return run_train(again, progress, cancel);
  }
  TRecViT pretrained{nullptr};
  data::DatasetSplit split;
  RunRecord rec = job.resume ? resume_record(job, report) : fresh_record(job, pretrained, split, report);
  const int64_t world = job.group ? job.group->world() : 1, rank = job.group ? job.group->rank() : 0;
  const bool lead = rank == 0;  // writes the run folder
  if (!job.resume) rec.world_size = world;
  if (rec.world_size != world)
    throw ConfigError(job.out_dir + ": the run was recorded with world_size " + std::to_string(rec.world_size) +
                      " (a global batch of " + std::to_string(rec.world_size * rec.data.batch_size) + " clips); resume it with " +
                      std::to_string(rec.world_size) + " ranks, not " + std::to_string(world));
  if (job.group && world > 1) {
    // Every rank must have resolved the same recipe and taken the same branch (a run folder
    // that is not shared, or other files on one node, would otherwise surface as a hang).
    nlohmann::json mine = rec.to_json();
    mine.erase("threads");
    mine["resume"] = job.resume;
    const int64_t differs = dist::disagreeing_ranks(*job.group, mine.dump());
    if (differs > 0)
      throw ConfigError(std::to_string(differs) + " of " + std::to_string(world) +
                        " ranks resolved another recipe than rank 0 (" + (job.resume ? "a resume" : "a fresh run") +
                        " here): every rank needs the same files, flags and run folder (shared, or copied to each node)");
  }
  const DataRecipe& d = rec.data;
  const TRecViTConfig cfg = config_from_json(rec.model, "run record");
  if (world > 1)  // batch statistics would differ per rank: refused rather than silently unsynchronised
    for (int64_t layer = 0; layer < cfg.depth; ++layer) {
      const auto mixer = resolve_channel_mixer(cfg.mixer_for_layer(layer), {cfg.width, cfg.mlp_dim}).to_json();
      if (mixer.value("query_norm", std::string()) == "batch")
        throw ConfigError("model config: layer " + std::to_string(layer) + "'s " + mixer.value("type", std::string("mixer")) +
                          " normalises its queries with batch statistics (query_norm \"batch\"), which data-parallel "
                          "training does not synchronise; use query_norm \"layer\" (causal-safe too)");
    }
  // Weights, gradients and two AdamW moments; activations kept for the backward (about 3x a forward's).
  if (const double params = cfg.estimated_parameters(); 16 * params > physical_memory_bytes())
    throw ConfigError("model config: training about " + std::to_string(int64_t(params / 1e6)) +
                      "M parameters needs " + std::to_string(int64_t(16 * params / 1e9)) +
                      " GB for weights, gradients and AdamW moments, more than this machine has");
  check_activation_memory(cfg, 3 * d.batch_size, d.frames > 0 ? d.frames : cfg.num_frames, "--batch-size/--frames");
  TrainOptions topt = rec.train;
  topt.out_dir = job.out_dir;
  if (!job.resume && lead) {
    // Metrics of a run that died before its first checkpoint describe nothing resumable.
    fs::remove(fs::path(job.out_dir) / "metrics.jsonl");
    if (!job.sample_log.empty()) fs::remove(job.sample_log);
    fs::create_directories(job.out_dir);
    write_json_atomically((fs::path(job.out_dir) / "run.json").string(), rec.to_json());
  }
  if (job.resume) split = data::load_dataset(d.format, d.root, d.split);
  if (!split.missing.empty())
    report.problem(std::to_string(split.missing.size()) + " annotated videos are missing (first: " +
                   split.missing.front() + "); training on the " + std::to_string(split.items.size()) + " found");
  const int64_t data_classes = static_cast<int64_t>(split.class_names.size());
  if (cfg.num_classes != data_classes)  // a resumed run's data changed under it
    throw ConfigError(d.root + ": the dataset has " + std::to_string(data_classes) + " classes, the run's model " +
                      std::to_string(cfg.num_classes));
  data::LoaderOptions lo;
  lo.clip.frames = d.frames;
  lo.clip.stride = d.stride;
  lo.sampler = d.sampler;
  lo.height = cfg.image_height;
  lo.width = cfg.image_width;
  lo.batch_size = d.batch_size;
  lo.workers = static_cast<int>(d.workers);
  lo.seed = topt.seed;
  lo.rank = rank;
  lo.world = world;
  lo.shuffle_frames = d.shuffle_frames;
  lo.horizontal_flip = d.flip != "none";
  if (d.flip == "mirror") lo.flip_label_map = data::mirror_label_map(split.class_names);
  lo.color_jitter = d.color_jitter;
  data::VideoLoader loader(split, lo);
  LoaderBatchSource source(loader, lead ? job.sample_log : std::string());
  torch::manual_seed(topt.seed);
  const bool reset_head = rec.init.is_object() && rec.init.value("reset_head", false);
  const std::string freeze = rec.init.is_object() ? rec.init.value("freeze", std::string("none")) : "none";
  // From weights: the init itself (its new head drawn from the seed), with the run's readout.
  TRecViT model = !pretrained ? TRecViT(cfg) : reset_head ? with_new_head(*pretrained, data_classes) : pretrained;
  if (pretrained) model->set_readout(cfg.readout);
  if (freeze == "backbone")
    for (auto& p : model->named_parameters())
      if (p.key().rfind("cls_head.", 0) != 0) p.value().set_requires_grad(false);
  model->set_class_names(split.class_names);  // every checkpoint of the run carries them
  if (job.group) dist::broadcast_module(*job.group, *model);  // rank 0's initial weights everywhere
  Trainer trainer{model, topt, source};
  std::unique_ptr<dist::GradientReducer> reducer;
  if (job.group) {
    reducer = std::make_unique<dist::GradientReducer>(job.group, model->parameters());
    trainer.set_step_sync(reducer.get());
  }
  data::DatasetSplit validation;
  if (topt.eval_every > 0) {
    validation = data::load_dataset(d.format, d.root, d.validation_split);
    const size_t validation_total = validation.items.size();
    validation = rank_share(validation, job.group.get());
    if (validation_total == 0)
      throw ConfigError("eval_every is " + std::to_string(topt.eval_every) + " but the " + d.validation_split +
                        " split of " + d.root + " is empty");
    data::ViewSpec spec;
    spec.clip.frames = d.frames;
    spec.clip.stride = d.stride;
    spec.sampler = d.eval_sampler;
    spec.size = cfg.image_height;
    trainer.set_validator([&, spec](TRecViTImpl& m) {
      auto views = make_views_source(validation, spec, d.shuffle_frames, report, cancel, d.workers);
      auto metrics = evaluate(m, *views);
      int64_t skipped = views->skipped();
      reduce_metrics(job.group.get(), metrics, &skipped);
      nlohmann::json r = {{"split", d.validation_split}, {"count", metrics.count()}, {"top1", metrics.top1()},
                          {"top5", metrics.top5()}, {"skipped", skipped}};
      report(EventKind::kEval, {{"split", d.validation_split + " at step " + std::to_string(trainer.global_step())},
                                {"count", metrics.count()}, {"top1", metrics.top1()}, {"top5", metrics.top5()},
                                {"skipped", skipped}});
      return r;
    });
  }
  if (job.resume) trainer.resume(trainer.latest_checkpoint_path());
  auto t0 = std::chrono::steady_clock::now();
  TrainResult out;
  out.record = rec;
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
    out.ema_checkpoint = job.out_dir + "/ema.pt";  // every rank evaluates the same file next
    if (lead) save_checkpoint(*ema, out.ema_checkpoint);
  }
  if (job.group) job.group->barrier();  // rank 0's files are complete when any rank returns
  return out;
}

}  // namespace trecvit

#include "jobs/nevis_job.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "datasets/annotations.h"
#include "datasets/nevis_build.h"
#include "blocks/file_safety.h"
#include "jobs/json_io.h"
#include "jobs/nevis_learner.h"
#include "jobs/nevis_stream.h"
#include "models/accounting.h"
#include "models/checkpoint.h"
#include "models/config.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

constexpr int kMaxProblemsShown = 20;  // per dataset; the rest are counted

uint64_t event_seed(uint64_t seed, int64_t index, int64_t salt) {
  std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32), uint32_t(index), uint32_t(salt)};
  std::mt19937_64 g(seq);
  return g();
}

// The options that shape the results: a resume must match them.
nlohmann::json run_record(const NevisJob& job, const NevisStream& stream, const TRecViTConfig& cfg,
                          const TrainOptions& topt) {
  nlohmann::json events = nlohmann::json::array();
  for (auto& e : stream.events) events.push_back({{"dataset", e.dataset}, {"year", e.year}});
  return {{"stream", {{"name", stream.name}, {"events", events}}},
          {"data_root", fs::absolute(job.data_root).lexically_normal().string()},
          {"learner", job.learner},
          {"model", config_to_json(cfg)},
          {"train", train_options_to_json(topt)},
          {"steps", job.steps},
          {"batch_size", job.batch_size},
          {"trials", job.trials},
          {"lr_range", {job.lr_min, job.lr_max}},
          {"max_label_smoothing", job.max_label_smoothing},
          {"retrain", job.retrain},
          {"final", job.final},
          {"stop_year", job.stop_year},
          {"num_classes", job.num_classes},
          {"knn", {job.knn_k, job.knn_max_train, job.knn_max_dev}},
          {"crop", {job.crop.min_area, job.crop.max_area, job.crop.min_aspect, job.crop.max_aspect}},
          {"flip", job.crop.flip},
          {"seed", job.seed},
          {"world_size", job.group ? job.group->world() : 1}};
}

void write_rows(const fs::path& path, const std::vector<nlohmann::json>& rows) {
  std::string text;
  for (auto& r : rows) text += r.dump() + "\n";
  if (const auto why = write_file_atomically(path.string(), text); !why.empty()) throw ConfigError(path.string() + ": " + why);
}

// Rows of events.jsonl; a last line cut by a kill is dropped (and, by the writer, the file
// rewritten without it).
std::vector<nlohmann::json> read_events(const fs::path& path, bool writer) {
  std::vector<nlohmann::json> rows;
  if (const auto why = unreadable_if_present(path.string()); !why.empty()) throw ConfigError(path.string() + ": " + why);
  std::ifstream in(path);
  std::string line;
  bool cut = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      rows.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception&) {
      cut = true;
      break;
    }
  }
  if (cut && writer) write_rows(path, rows);
  return rows;
}

// Where an event's final model lives: RUN/models/<index>-<dataset folder>.pt.
std::string model_file(const fs::path& out, const nlohmann::json& row) {
  const std::string folder = fs::path(data::nevis_dataset_dir(".", row["dataset"].get<std::string>())).filename().string();
  return (out / "models" / (std::to_string(row["index"].get<int64_t>()) + "-" + folder + ".pt")).string();
}

}  // namespace

const std::vector<std::string>& nevis_learners() {
  static const std::vector<std::string> names = {"independent", "finetune-prev", "finetune-knn"};
  return names;
}

nlohmann::json NevisResult::to_json() const {
  return {{"summary", summary}, {"events_done", events_done}, {"events_resumed", events_resumed},
          {"missing", missing}, {"stopped", stopped}};
}

nlohmann::json nevis_summary(const std::vector<nlohmann::json>& events) {
  double acc = 0, weighted = 0, map = 0;
  int64_t n_acc = 0, n_map = 0, examples = 0, flops = 0, peak = 0;
  nlohmann::json rows = nlohmann::json::array();
  for (auto& e : events) {
    nlohmann::json row = {{"index", e["index"]}, {"dataset", e["dataset"]}, {"year", e["year"]},
                          {"examples", e["examples"]}, {"train_flops_cumulative", e["train_flops_cumulative"]}};
    if (e.contains("map")) {
      if (e["map"].is_number()) {  // null: no class had a positive in the prediction split
        map += e["map"].get<double>();
        ++n_map;
      }
      row["map"] = e["map"];
    } else {
      const double top1 = e["top1"].get<double>();
      acc += top1;
      weighted += top1 * e["examples"].get<double>();
      examples += e["examples"].get<int64_t>();
      ++n_acc;
      row["top1"] = e["top1"];
      row["top5"] = e["top5"];
    }
    flops = std::max(flops, e["train_flops_cumulative"].get<int64_t>());
    peak = std::max(peak, e["params"].get<int64_t>());
    rows.push_back(row);
  }
  nlohmann::json s = {{"events", int64_t(events.size())},
                      {"average_accuracy", n_acc ? nlohmann::json(acc / n_acc) : nlohmann::json()},
                      {"weighted_average_accuracy", examples ? nlohmann::json(weighted / examples) : nlohmann::json()},
                      {"average_map", n_map ? nlohmann::json(map / n_map) : nlohmann::json()},
                      {"train_flops_total", flops},
                      {"peak_parameter_count", peak},
                      {"datasets", rows}};
  return s;
}

NevisResult run_nevis(const NevisJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "nevis");
  const auto& learners = nevis_learners();
  if (std::find(learners.begin(), learners.end(), job.learner) == learners.end())
    throw ConfigError("--learner '" + job.learner + "': unknown (known: independent, finetune-prev, finetune-knn)");
  if (job.trials < 1) throw ConfigError("--trials must be >= 1");
  if (job.steps == 0 || job.steps < -1) throw ConfigError("--steps must be >= 1 (or -1: the train config's)");
  if (job.batch_size < 1) throw ConfigError("--batch-size must be >= 1");
  if (!(job.lr_min > 0 && job.lr_min <= job.lr_max && std::isfinite(job.lr_max)))
    throw ConfigError("--lr-range: need finite 0 < MIN <= MAX");
  if (job.out_dir.empty()) throw ConfigError("--out: a run folder is needed");
  dist::Group* group = job.group && job.group->world() > 1 ? job.group.get() : nullptr;
  const bool lead = !group || group->rank() == 0;  // writes the run folder
  // Whatever one rank cannot start with stops every rank (not a hang in the next collective).
  auto together = [&](const std::function<void()>& f) {
    std::string error;
    try {
      f();
    } catch (const std::exception& e) {
      if (!group) throw;
      error = e.what();
    }
    if (group && dist::any_rank(*group, !error.empty())) {
      if (!error.empty()) throw ConfigError(error);
      throw ConfigError("nevis run: another rank could not start (its output says why)");
    }
  };
  together([&] {
    if (job.build_debian_data && lead) {
      data::NevisBuildOptions b;
      b.out_dir = job.data_root;
      data::build_nevis_debian(b, [&](const std::string& name) {
        report.stage("building " + name + " into " + job.data_root + " (from Debian's packaged data)");
      });
    }
  });
  const NevisStream stream = load_nevis_stream(job.stream);
  const auto events = nevis_events(stream, job.stop_year, job.final);
  if (events.empty())
    throw ConfigError("stream " + stream.source + ": no event before " + std::to_string(job.stop_year) +
                      " (pass --final for every year)");
  TRecViTConfig cfg = load_config(job.model_config);
  cfg.num_frames = 1;  // still images: one frame through the same layers
  TrainOptions topt = load_train_options(job.train_config);
  if (job.steps > 0) topt.steps = std::min(topt.steps, job.steps);

  const fs::path out(job.out_dir), events_path = out / "events.jsonl", record_path = out / "run.json";
  const nlohmann::json record = run_record(job, stream, cfg, topt);
  std::vector<nlohmann::json> done;
  auto load = [&] {
    if (job.resume) {
      if (!path_exists(record_path)) throw ConfigError(job.out_dir + ": no NEVIS run to resume (run.json missing)");
      const auto saved = read_json_object(record_path.string(), "NEVIS run record");
      for (auto& [key, value] : record.items()) {
        const auto was = saved.value(key, key == "world_size" ? nlohmann::json(1) : nlohmann::json());
        if (was != value)
          throw ConfigError(job.out_dir + ": --resume with another '" + key + "' than the run used (" + was.dump() +
                            " there, " + value.dump() + " now)");
      }
      done = read_events(events_path, lead);
      // A row whose model is gone is redone: drop it now so the redo does not add a second row.
      const size_t before = done.size();
      done.erase(std::remove_if(done.begin(), done.end(),
                                [&](const nlohmann::json& r) { return !path_exists(model_file(out, r)); }),
                 done.end());
      if (done.size() != before && lead) write_rows(events_path, done);
    } else if (path_exists(record_path) || path_exists(events_path)) {
      throw ConfigError(job.out_dir + " already holds a NEVIS run: pass --resume to continue it, or choose another --out");
    }
  };
  together([&] { if (lead) load(); });  // the writer mends a cut events file first
  together([&] { if (!lead) load(); });
  if (group) {
    nlohmann::json mine = {{"record", record}, {"resume", job.resume}, {"done", int64_t(done.size())}};
    if (const int64_t differs = dist::disagreeing_ranks(*group, mine.dump()))
      throw ConfigError(std::to_string(differs) + " of " + std::to_string(group->world()) +
                        " ranks resolved another NEVIS run than rank 0: every rank needs the same files, flags and "
                        "run folder (shared storage)");
  }
  if (!job.resume && lead) {
    fs::create_directories(out / "models");
    write_json_atomically(record_path, record);
  }

  NevisResult result;
  std::map<int64_t, nlohmann::json> done_by_index;
  for (auto& row : done) done_by_index[row["index"].get<int64_t>()] = row;
  std::vector<nlohmann::json> rows;
  std::vector<std::pair<int64_t, std::string>> earlier;  // (event index, final model) in stream order
  int64_t cumulative = 0;
  const auto t_start = std::chrono::steady_clock::now();
  int64_t ran = 0;
  for (int64_t i = 0; i < int64_t(events.size()); ++i) {
    const auto& ev = events[i];
    const std::string model_path = model_file(out, {{"index", i}, {"dataset", ev.dataset}});
    if (auto it = done_by_index.find(i); it != done_by_index.end() && it->second["dataset"] == ev.dataset) {
      rows.push_back(it->second);
      cumulative = it->second["train_flops_cumulative"].get<int64_t>();
      earlier.emplace_back(i, model_path);
      ++result.events_resumed;
      continue;
    }
    if (group ? dist::any_rank(*group, cancelled(cancel)) : cancelled(cancel)) {
      result.stopped = true;
      break;
    }
    const std::string dir = data::nevis_dataset_dir(job.data_root, ev.dataset);
    if (!data::nevis_dataset_ready(job.data_root, ev.dataset)) {
      result.missing.push_back(ev.dataset);
      report.problem("dataset " + ev.dataset + " (" + std::to_string(ev.year) + "): " +
                     (is_folder(dir) ? "not ready (no status 'ready' in " + dir + ")" : "not found at " + dir) +
                     "; skipped");
      continue;
    }
    const auto t_event = std::chrono::steady_clock::now();
    const std::string eval_split = job.final ? "test" : "dev-test";
    const std::string where = "event " + std::to_string(i + 1) + "/" + std::to_string(events.size()) + " " +
                              ev.dataset + " (" + std::to_string(ev.year) + ")";
    report.stage(where + ": loading");
    data::NevisLoadOptions lo;
    lo.splits = {"train", "dev", eval_split};
    if (job.retrain) lo.splits.push_back("train_and_dev");
    lo.num_classes = job.num_classes;
    lo.max_side = std::max<int64_t>(2 * cfg.image_height, 64);
    int shown = 0;
    data::NevisDataset ds;
    try {
      ds = data::load_nevis_dataset(job.data_root, ev.dataset, lo, [&](const data::TFRecordProblem& p) {
        if (shown++ < kMaxProblemsShown)
          report(EventKind::kProblem, {{"message", p.file + " at byte " + std::to_string(p.offset) + ": " + p.reason},
                                       {"path", p.file}, {"reason", p.reason}, {"offset", p.offset}});
      });
    } catch (const data::DatasetError& e) {  // one unusable dataset does not end the stream
      result.missing.push_back(ev.dataset);
      report.problem("dataset " + ev.dataset + ": " + e.what() + "; skipped");
      continue;
    }
    if (shown > kMaxProblemsShown)
      report.problem("dataset " + ev.dataset + ": " + std::to_string(shown) + " damaged records in all (first " +
                     std::to_string(kMaxProblemsShown) + " shown)");
    const auto& train = ds.split("train");
    const auto& test = ds.split(eval_split);
    if (train.size() == 0 || ds.num_classes < 1 || test.size() == 0) {
      result.missing.push_back(ev.dataset);
      report.problem("dataset " + ev.dataset + ": no readable " + (train.size() == 0 ? "training" : eval_split) +
                     " examples; skipped");
      continue;
    }
    const auto& dev = ds.split("dev");
    if (dev.size() == 0)
      report.problem("dataset " + ev.dataset + ": no readable dev examples: trials are scored on train" +
                     std::string(job.learner == "finetune-knn" ? " and k-NN transfer cannot choose (fresh model)" : ""));
    NevisTrainSpec spec;
    spec.options = topt;
    spec.batch_size = job.batch_size;
    spec.crop = job.crop;
    spec.group = job.group;
    // Scores that choose something are rank 0's, so every rank makes the same choice.
    auto agreed = [&](double score) { return group ? dist::from_rank0(*group, score) : score; };

    // The starting point.
    int64_t event_flops = 0;
    TRecViT init{nullptr};
    std::string init_from = "fresh";
    nlohmann::json knn_scores = nlohmann::json::object();
    const uint64_t head_seed = event_seed(job.seed, i, 0);
    if (job.learner == "finetune-prev" && !earlier.empty()) {
      auto prev = load_checkpoint(earlier.back().second);
      init = nevis_with_new_head(*prev, ds.num_classes, head_seed);
      init_from = "event " + std::to_string(earlier.back().first);
    } else if (job.learner == "finetune-knn" && !earlier.empty() && dev.size() > 0) {
      report.stage(where + ": k-NN transfer scores of " + std::to_string(earlier.size() + 1) + " backbones");
      init = nevis_fresh_model(cfg, ds.num_classes, head_seed);
      int64_t f = 0;
      double best = agreed(nevis_knn_score(*init, ds, train, dev, job.knn_k, job.knn_max_train, job.knn_max_dev,
                                           job.batch_size, &f, group));
      event_flops += f;
      knn_scores["fresh"] = best;
      for (auto& [index, path] : earlier) {
        auto candidate = load_checkpoint(path);
        const double s = agreed(nevis_knn_score(*candidate, ds, train, dev, job.knn_k, job.knn_max_train,
                                                job.knn_max_dev, job.batch_size, &f, group));
        event_flops += f;
        knn_scores["event " + std::to_string(index)] = s;
        if (s > best) {
          best = s;
          init = nevis_with_new_head(*candidate, ds.num_classes, head_seed);
          init_from = "event " + std::to_string(index);
        }
      }
    } else {
      init = nevis_fresh_model(cfg, ds.num_classes, head_seed);
    }

    // Hyper-parameter trials, each scored on dev.
    std::mt19937_64 hp_rng(event_seed(job.seed, i, 1));
    std::uniform_real_distribution<double> u(0, 1);
    nlohmann::json trials = nlohmann::json::array();
    TRecViT chosen{nullptr};
    NevisTrial best_trial;
    bool stopped = false;
    for (int64_t t = 0; t < job.trials && !stopped; ++t) {
      NevisTrial trial;
      if (job.trials == 1) {
        trial.lr = topt.lr;
        trial.label_smoothing = topt.label_smoothing;
      } else {
        trial.lr = std::exp(std::log(job.lr_min) + (std::log(job.lr_max) - std::log(job.lr_min)) * u(hp_rng));
        trial.label_smoothing = job.max_label_smoothing * u(hp_rng);
      }
      spec.options.seed = event_seed(job.seed, i, 100 + t);
      char hp[96];
      std::snprintf(hp, sizeof(hp), "lr %.3g, label smoothing %.3f", trial.lr, trial.label_smoothing);
      report.stage(where + ": trial " + std::to_string(t + 1) + "/" + std::to_string(job.trials) + " (" + hp + "), " +
                   std::to_string(spec.options.steps) + " steps on " + std::to_string(train.size()) + " images");
      auto model = nevis_train(*init, ds, train, spec, trial,
                               [&](const StepStats& s) {
                                 report(EventKind::kStep, {{"step", s.step}, {"steps", spec.options.steps},
                                                           {"epoch", s.epoch}, {"loss", s.loss},
                                                           {"accuracy", s.accuracy}, {"lr", s.lr},
                                                           {"clips_per_s", s.clips_per_s}, {"eta_s", s.eta_s}});
                               },
                               cancel);
      event_flops += trial.flops;
      if (trial.stopped) {
        stopped = true;
        break;
      }
      const auto& scored = dev.size() ? dev : train;
      const auto m = nevis_metrics(nevis_logits(*model, scored, job.batch_size, group), scored, ds.num_classes,
                                   ds.multi_label);
      trial.dev_score = agreed(ds.multi_label ? m.map : m.top1);
      trials.push_back({{"lr", trial.lr}, {"label_smoothing", trial.label_smoothing}, {"dev_score", trial.dev_score},
                        {"steps", trial.steps}});
      if (!chosen || trial.dev_score > best_trial.dev_score) {
        chosen = model;
        best_trial = trial;
      }
    }
    if (!stopped && job.retrain && ds.split("train_and_dev").size() > 0) {
      NevisTrial again = best_trial;
      spec.options.seed = event_seed(job.seed, i, 99);
      report.stage(where + ": retraining on train_and_dev");
      chosen = nevis_train(*init, ds, ds.split("train_and_dev"), spec, again, {}, cancel);
      event_flops += again.flops;
      stopped = again.stopped;
    }
    if (stopped) {  // this event is redone from its start on resume
      result.stopped = true;
      break;
    }

    // The prediction event.
    const auto metrics =
        nevis_metrics(nevis_logits(*chosen, test, job.batch_size, group), test, ds.num_classes, ds.multi_label);
    cumulative += event_flops;
    if (int64_t(ds.class_names.size()) == ds.num_classes) chosen->set_class_names(ds.class_names);
    if (lead) save_checkpoint(*chosen, model_path);  // before the row: a row always has its model
    nlohmann::json row = metrics.to_json();
    nlohmann::json corrupt = nlohmann::json::object();
    for (auto& [name, s] : ds.splits) corrupt[name] = s.corrupt;
    row.update({{"index", i}, {"dataset", ev.dataset}, {"year", ev.year}, {"stream_name", ev.stream_name},
                {"split", eval_split}, {"num_classes", ds.num_classes}, {"multi_label", ds.multi_label},
                {"train_examples", train.size()}, {"train_flops", event_flops},
                {"train_flops_cumulative", cumulative}, {"params", account(*chosen).params_total},
                {"init", init_from}, {"knn_scores", knn_scores}, {"trials", trials},
                {"lr", best_trial.lr}, {"label_smoothing", best_trial.label_smoothing},
                {"corrupt", corrupt},
                {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_event).count()}});
    if (lead)
      if (const auto why = append_line(events_path.string(), row.dump()); !why.empty())
        throw ConfigError(events_path.string() + ": " + why);
    rows.push_back(row);
    earlier.emplace_back(i, model_path);
    ++ran;
    ++result.events_done;
    auto fields = metrics.to_json();
    fields.update({{"split", ev.dataset + "/" + eval_split}, {"count", metrics.examples}});
    report(EventKind::kEval, fields);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const int64_t left = int64_t(events.size()) - i - 1;
    report(EventKind::kItem, {{"done", i + 1}, {"total", int64_t(events.size())}, {"rate", ran / elapsed},
                              {"eta_s", elapsed / ran * left}, {"path", ev.dataset}});
    auto summary = nevis_summary(rows);
    summary.update({{"stream", stream.name}, {"learner", job.learner}, {"complete", false}});
    if (lead) write_json_atomically(out / "summary.json", summary);
    if (group) group->barrier();  // this event's model exists for every rank's next event
  }
  result.summary = nevis_summary(rows);
  result.summary.update({{"stream", stream.name},
                         {"learner", job.learner},
                         {"model", cfg.name},
                         {"missing", result.missing},
                         {"complete", !result.stopped}});
  if (lead) write_json_atomically(out / "summary.json", result.summary);
  if (group) group->barrier();
  return result;
}

}  // namespace trecvit

#include "jobs/compare_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "blocks/file_safety.h"
#include "datasets/formats.h"
#include "jobs/compare_report.h"
#include "jobs/json_io.h"
#include "jobs/data_jobs.h"
#include "jobs/eval_job.h"
#include "jobs/train_job.h"
#include "models/checkpoint.h"
#include "blocks/parse_number.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

int64_t status_bytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) {
      // "VmHWM:    1234 kB"
      std::string v = line.substr(std::string(key).size());
      v.erase(0, v.find_first_not_of(" \t"));
      return parse_int(v.substr(0, v.find(' '))).value_or(0) * 1024;
    }
  return 0;
}

// Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS, so each phase
// gets its own peak. All arms share one process, so the report gives each phase's peak and its
// growth above the RSS at the phase's start (what the phase itself needed). Returns that RSS,
// or -1 when the reset is not available (the peak is then the process's lifetime peak).
int64_t reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5" << std::flush;
  return f ? status_bytes("VmRSS:") : -1;
}

// A file of an earlier call's run folder; damage is named so the folder can be removed and rerun.
nlohmann::json read_json(const fs::path& path) {
  std::string text, why;
  if (!read_regular_file(path.string(), text, why)) throw ConfigError(path.string() + ": " + why);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw ConfigError(path.string() + ": invalid JSON (a damaged run folder: remove it to rerun that run)");
  return j;
}

// The logged (step, loss) pairs; a resumed run may have logged a step twice: keep the last.
nlohmann::json loss_curve(const fs::path& metrics) {
  std::map<int64_t, double> by_step;
  if (const auto why = unreadable_reason(metrics.string()); !why.empty()) throw ConfigError(metrics.string() + ": " + why);
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    // A diverged run logs NaN, which JSON holds as null: leave those points out.
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j.contains("loss") && j["loss"].is_number())
      by_step[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [s, l] : by_step) out.push_back({s, l});
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct StreamTiming {
  double ms_per_frame = 0;
  int64_t peak_rss = 0, rss_growth = 0;
};

// Streaming at batch 1: the median step time and the phase's peak RSS.
StreamTiming time_streaming(const std::string& checkpoint, int64_t frames) {
  const int64_t base = reset_peak_rss();
  auto model = load_checkpoint(checkpoint);
  model->eval();
  torch::NoGradGuard ng;
  const auto& c = model->config();
  auto state = model->init_stream(1);
  torch::manual_seed(0);
  auto frame = torch::randint(0, 256, {1, 1, c.image_height, c.image_width, 3}, torch::kByte);
  std::vector<double> ms;
  for (int64_t t = 0; t < frames + 4; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    model->step(state, frame);
    if (t >= 4) ms.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const int64_t peak = status_bytes("VmHWM:");
  return {median(ms), peak, base < 0 ? -1 : peak - base};
}

// What a run directory was made for: a run is reused only for the same arm, recipe and data.
nlohmann::json fingerprint(const CompareSpec& spec, const Arm& arm, int64_t seed) {
  std::string train, why;
  if (!spec.train_config.empty() && !read_regular_file(spec.train_config, train, why))
    throw ConfigError("train config " + spec.train_config + ": " + why);
  return {{"arm", arm.config_json}, {"seed", seed}, {"steps", spec.recipe.steps}, {"batch_size", spec.recipe.data.batch_size},
          {"frames", spec.recipe.data.frames}, {"stride", spec.recipe.data.stride}, {"sampler", spec.recipe.data.sampler},
          {"eval_sampler", spec.recipe.data.eval_sampler}, {"flip", spec.recipe.data.flip}, {"train_config", train},
          {"data", fs::absolute(spec.data_root).lexically_normal().string()}, {"format", spec.format},
          {"train_split", spec.train_split}, {"eval_split", spec.eval_split}};
}

}  // namespace

nlohmann::json CompareResult::to_json() const {
  return {{"runs_done", runs_done}, {"runs_skipped", runs_skipped}, {"stopped", stopped},
          {"arms", report.value("arms", nlohmann::json::array()).size()}};
}

CompareSpec prepare_compare(const CompareJob& job) {
  CompareSpec spec = load_compare_spec(job.spec);
  for (const auto& s : job.sweeps) add_sweep(spec, s);
  if (job.seeds > 0) spec.seeds = job.seeds;
  if (job.quick) {
    spec.recipe.steps = spec.quick.value("steps", int64_t{12});
    spec.recipe.data.batch_size = spec.quick.value("batch_size", int64_t{4});
    if (spec.generate == "ssf") spec.data_root = (fs::path(job.out_dir) / "quick-data").string();
    if (job.seeds == 0) spec.seeds = 1;
  }
  if (spec.seeds < 1) throw ConfigError("--seeds: must be >= 1");
  resolve_arms(spec);
  return spec;
}

CompareResult run_compare(const CompareJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "compare");
  CompareSpec spec = prepare_compare(job);
  const fs::path out(job.out_dir);
  const bool lead = !job.group || job.group->rank() == 0;  // writes DIR
  auto barrier = [&] {
    if (job.group) job.group->barrier();
  };
  if (!job.resume && path_exists(out / "runs"))
    throw ConfigError(job.out_dir + " already holds a comparison: pass --resume to continue it, or choose another --out");
  for (const auto& a : spec.arms)
    report.stage("arm " + a.name + ": " + std::to_string(a.cost.params_total) + " params, " +
                 std::to_string(a.cost.params_active_per_token) + " active per token, " +
                 std::to_string(a.cost.flops_per_clip) + " FLOPs per clip" + (a.matching.empty() ? "" : "; " + a.matching));
  // The data, made or checked before any training.
  if (lead && spec.generate == "ssf" && !path_exists(fs::path(spec.data_root) / "validation.json")) {
    data::SSFOptions o;
    o.out_dir = spec.data_root;
    if (job.quick) {
      o.train_clips = spec.quick.value("train_clips", int64_t{40});
      o.validation_clips = spec.quick.value("validation_clips", int64_t{20});
    }
    report.stage("generating " + spec.data_root);
    if (run_data_generate(o, progress, cancel).report.stopped) return {nlohmann::json::object(), 0, 0, true};
  }
  barrier();  // the data is there, and every rank has checked DIR before rank 0 writes to it
  for (const auto& split : {spec.train_split, spec.eval_split}) {
    const auto ds = data::load_dataset(spec.format, spec.data_root, split);  // throws naming the file
    if (ds.items.empty()) throw ConfigError("compare: " + spec.data_root + " has no " + split + " videos");
    for (const auto& a : spec.arms) {
      if (a.config.num_classes != static_cast<int64_t>(ds.class_names.size()))
        throw ConfigError("compare: arm " + a.name + " has num_classes " + std::to_string(a.config.num_classes) + " but " +
                          spec.data_root + " has " + std::to_string(ds.class_names.size()) + " classes");
      if (a.config.image_height != a.config.image_width) throw ConfigError("compare: arm " + a.name + ": square images only");
    }
  }
  if (lead) fs::create_directories(out / "runs");
  CompareResult result;
  std::map<std::string, std::vector<nlohmann::json>> runs;
  const int64_t total = spec.seeds * static_cast<int64_t>(spec.arms.size());
  int64_t index = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t seed = 0; seed < spec.seeds && !result.stopped; ++seed) {
    for (const auto& arm : spec.arms) {
      ++index;
      const fs::path dir = out / "runs" / arm.name / ("seed" + std::to_string(seed));
      const auto print = fingerprint(spec, arm, seed);
      if (path_exists(dir / "compare_run.json") && read_json(dir / "compare_run.json") != print)
        throw ConfigError(dir.string() + " was made for another arm, recipe or data than this spec now gives; "
                          "use another --out (or remove that folder to redo the run)");
      if (path_exists(dir / "result.json")) {
        runs[arm.name].push_back(read_json(dir / "result.json"));
        ++result.runs_skipped;
        continue;
      }
      if (lead) {
        fs::create_directories(dir);
        write_json_atomically(dir / "compare_run.json", print);
        write_json_atomically(dir / "arm.json", arm.config_json);
      }
      barrier();  // arm.json is written before any rank reads it
      report.stage("run " + std::to_string(index) + "/" + std::to_string(total) + ": " + arm.name + " seed " + std::to_string(seed));
      TrainJob t;
      t.model_config = (dir / "arm.json").string();
      t.train_config = spec.train_config;
      t.out_dir = dir.string();
      t.resume = path_exists(dir / "run.json");
      const std::string from = "the recipe of " + spec.path;
      t.set("data.root", spec.data_root, from).set("data.format", spec.format, from).set("data.split", spec.train_split, from);
      t.set("train.steps", spec.recipe.steps, from).set("data.batch_size", spec.recipe.data.batch_size, from);
      t.set("data.frames", spec.recipe.data.frames, from).set("data.stride", spec.recipe.data.stride, from);
      t.set("data.sampler", spec.recipe.data.sampler, from).set("data.workers", spec.recipe.data.workers, from);
      t.set("data.flip", spec.recipe.data.flip, from).set("train.seed", seed, from);
      t.sample_log = (dir / "samples.txt").string();
      t.group = job.group;
      const int64_t base = reset_peak_rss();
      const auto trained = run_train(t, progress, cancel);
      if (trained.stopped) {
        result.stopped = true;
        break;
      }
      // Speed and memory of training, kept once training is done: a call killed during the
      // evaluation resumes with 0 steps to train and must not report 0 clips/s.
      if (lead && (trained.steps_this_run > 0 || !path_exists(dir / "train.json"))) {
        const int64_t peak = status_bytes("VmHWM:");
        write_json_atomically(dir / "train.json",
                              {{"clips_per_s", trained.seconds > 0 ? trained.steps_this_run * spec.recipe.data.batch_size / trained.seconds : 0.0},
                               {"seconds", trained.seconds}, {"steps_timed", trained.steps_this_run},
                               {"peak_rss_bytes", peak}, {"rss_growth_bytes", base < 0 ? -1 : peak - base}});
      }
      EvalJob e;
      e.checkpoint = trained.ema_checkpoint.empty() ? trained.checkpoint : trained.ema_checkpoint;
      e.data_root = spec.data_root;
      e.format = spec.format;
      e.split = spec.eval_split;
      e.sampler = spec.recipe.data.eval_sampler;
      e.frames = spec.recipe.data.frames;
      e.stride = spec.recipe.data.stride;
      e.last_frame = e.routing = true;
      e.report = (dir / "eval.json").string();
      e.group = job.group;
      const auto evaluated = run_eval(e, progress, cancel);
      if (evaluated.stopped) {
        result.stopped = true;
        break;
      }
      if (!lead) {  // the results are rank 0's to time and write
        ++result.runs_done;
        continue;
      }
      const auto train_stats = read_json(dir / "train.json");
      const auto streamed = time_streaming(e.checkpoint, job.stream_frames);
      nlohmann::json r = {{"arm", arm.name},
                          {"seed", seed},
                          {"checkpoint", e.checkpoint},
                          {"steps", trained.steps},
                          {"top1", evaluated.top1},
                          {"top5", evaluated.top5},
                          {"last_top1", evaluated.report["last_frame"]["top1"]},
                          {"last_top5", evaluated.report["last_frame"]["top5"]},
                          {"eval_count", evaluated.count},
                          {"train_clips_per_s", train_stats["clips_per_s"]},
                          {"train_seconds", train_stats["seconds"]},
                          {"stream_ms_per_frame", streamed.ms_per_frame},
                          {"peak_rss_train_bytes", train_stats["peak_rss_bytes"]},
                          {"rss_growth_train_bytes", train_stats["rss_growth_bytes"]},
                          {"peak_rss_stream_bytes", streamed.peak_rss},
                          {"rss_growth_stream_bytes", streamed.rss_growth},
                          {"routing", evaluated.report["routing"]},
                          {"loss_curve", loss_curve(dir / "metrics.jsonl")}};
      write_json_atomically(dir / "result.json", r);  // the marker that this run is done
      runs[arm.name].push_back(r);
      ++result.runs_done;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = result.runs_done / std::max(elapsed, 1e-9);  // runs per second, this call
      report(EventKind::kItem, {{"done", index}, {"total", total}, {"rate", rate}, {"eta_s", (total - index) / rate},
                                {"path", dir.string()}});
    }
  }
  barrier();  // every run's result.json is written
  if (!lead) return result;
  result.report = compare_report(spec, runs);
  result.report["complete"] = !result.stopped;
  write_json_atomically(out / "report.json", result.report);
  write_compare_markdown(result.report, (out / "report.md").string());
  write_compare_html(result.report, (out / "report.html").string());
  report.stage("report: " + (out / "report.html").string());
  return result;
}

}  // namespace trecvit

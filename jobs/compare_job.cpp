#include "jobs/compare_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "datasets/formats.h"
#include "jobs/compare_report.h"
#include "jobs/data_jobs.h"
#include "jobs/eval_job.h"
#include "jobs/train_job.h"
#include "models/checkpoint.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

// Linux: writing 5 to clear_refs resets the peak RSS (VmHWM), so each phase gets its own peak.
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

int64_t peak_rss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

void write_json_atomically(const fs::path& path, const nlohmann::json& j) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) throw std::runtime_error(tmp.string() + ": cannot be written");
  }
  fs::rename(tmp, path);
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// The logged (step, loss) pairs; a resumed run may have logged a step twice: keep the last.
nlohmann::json loss_curve(const fs::path& metrics) {
  std::map<int64_t, double> by_step;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("step") && j.contains("loss")) by_step[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [s, l] : by_step) out.push_back({s, l});
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Streaming at batch 1: the median step time and the phase's peak RSS.
std::pair<double, int64_t> time_streaming(const std::string& checkpoint, int64_t frames) {
  auto model = load_checkpoint(checkpoint);
  model->eval();
  torch::NoGradGuard ng;
  const auto& c = model->config();
  reset_peak_rss();
  auto state = model->init_stream(1);
  torch::manual_seed(0);
  auto frame = torch::randint(0, 256, {1, 1, c.image_height, c.image_width, 3}, torch::kByte);
  std::vector<double> ms;
  for (int64_t t = 0; t < frames + 4; ++t) {
    const auto t0 = std::chrono::steady_clock::now();
    model->step(state, frame);
    if (t >= 4) ms.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return {median(ms), peak_rss()};
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
    spec.recipe.batch_size = spec.quick.value("batch_size", int64_t{4});
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
  if (!job.resume && fs::exists(out / "runs"))
    throw ConfigError(job.out_dir + " already holds a comparison: pass --resume to continue it, or choose another --out");
  fs::create_directories(out / "runs");
  for (const auto& a : spec.arms)
    report.stage("arm " + a.name + ": " + std::to_string(a.cost.params_total) + " params, " +
                 std::to_string(a.cost.params_active_per_token) + " active per token, " +
                 std::to_string(a.cost.flops_per_clip) + " FLOPs per clip" + (a.matching.empty() ? "" : "; " + a.matching));
  // The data, made or checked before any training.
  if (spec.generate == "ssf" && !fs::exists(fs::path(spec.data_root) / "validation.json")) {
    data::SSFOptions o;
    o.out_dir = spec.data_root;
    if (job.quick) {
      o.train_clips = spec.quick.value("train_clips", int64_t{40});
      o.validation_clips = spec.quick.value("validation_clips", int64_t{20});
    }
    report.stage("generating " + spec.data_root);
    if (run_data_generate(o, progress, cancel).report.stopped) return {nlohmann::json::object(), 0, 0, true};
  }
  for (const auto& split : {spec.train_split, spec.eval_split}) {
    const auto ds = data::load_dataset(spec.format, spec.data_root, split);  // throws naming the file
    if (ds.items.empty()) throw ConfigError("compare: " + spec.data_root + " has no " + split + " videos");
  }
  CompareResult result;
  std::map<std::string, std::vector<nlohmann::json>> runs;
  const int64_t total = spec.seeds * static_cast<int64_t>(spec.arms.size());
  int64_t index = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t seed = 0; seed < spec.seeds && !result.stopped; ++seed) {
    for (const auto& arm : spec.arms) {
      ++index;
      const fs::path dir = out / "runs" / arm.name / ("seed" + std::to_string(seed));
      if (fs::exists(dir / "result.json")) {
        runs[arm.name].push_back(read_json(dir / "result.json"));
        ++result.runs_skipped;
        continue;
      }
      fs::create_directories(dir);
      std::ofstream(dir / "arm.json") << arm.config_json.dump(2) << "\n";  // the trainer writes its own config.json
      report.stage("run " + std::to_string(index) + "/" + std::to_string(total) + ": " + arm.name + " seed " + std::to_string(seed));
      TrainJob t;
      t.model_config = (dir / "arm.json").string();
      t.train_config = spec.train_config;
      t.data_root = spec.data_root;
      t.format = spec.format;
      t.out_dir = dir.string();
      t.resume = fs::exists(dir / "checkpoint.pt");
      t.steps = spec.recipe.steps;
      t.batch_size = spec.recipe.batch_size;
      t.frames = spec.recipe.frames;
      t.stride = spec.recipe.stride;
      t.sampler = spec.recipe.sampler;
      t.workers = spec.recipe.workers;
      t.flip = spec.recipe.flip;
      t.seed = static_cast<uint64_t>(seed);
      t.sample_log = (dir / "samples.txt").string();
      reset_peak_rss();
      const auto trained = run_train(t, progress, cancel);
      const int64_t train_rss = peak_rss();
      if (trained.stopped) {
        result.stopped = true;
        break;
      }
      EvalJob e;
      e.checkpoint = trained.ema_checkpoint.empty() ? trained.checkpoint : trained.ema_checkpoint;
      e.data_root = spec.data_root;
      e.format = spec.format;
      e.split = spec.eval_split;
      e.sampler = spec.recipe.eval_sampler;
      e.frames = spec.recipe.frames;
      e.stride = spec.recipe.stride;
      e.last_frame = e.routing = true;
      e.report = (dir / "eval.json").string();
      const auto evaluated = run_eval(e, progress, cancel);
      if (evaluated.stopped) {
        result.stopped = true;
        break;
      }
      const auto [stream_ms, stream_rss] = time_streaming(e.checkpoint, job.stream_frames);
      nlohmann::json r = {{"arm", arm.name},
                          {"seed", seed},
                          {"checkpoint", e.checkpoint},
                          {"steps", trained.steps},
                          {"top1", evaluated.top1},
                          {"top5", evaluated.top5},
                          {"last_top1", evaluated.report["last_frame"]["top1"]},
                          {"last_top5", evaluated.report["last_frame"]["top5"]},
                          {"eval_count", evaluated.count},
                          {"train_clips_per_s", trained.clips_per_s},
                          {"train_seconds", trained.seconds},
                          {"stream_ms_per_frame", stream_ms},
                          {"peak_rss_train_bytes", train_rss},
                          {"peak_rss_stream_bytes", stream_rss},
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
  result.report = compare_report(spec, runs);
  result.report["complete"] = !result.stopped;
  write_json_atomically(out / "report.json", result.report);
  write_compare_markdown(result.report, (out / "report.md").string());
  write_compare_html(result.report, (out / "report.html").string());
  report.stage("report: " + (out / "report.html").string());
  return result;
}

}  // namespace trecvit

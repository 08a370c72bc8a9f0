#include "jobs/eval_job.h"
#include "blocks/file_safety.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <deque>
#include <fstream>
#include <future>

#include "datasets/annotations.h"
#include "datasets/samplers.h"
#include "datasets/views.h"
#include "eval/evaluate.h"
#include "jobs/json_io.h"
#include "models/checkpoint.h"
#include "blocks/parse_number.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

std::pair<int64_t, int64_t> parse_views(const std::string& v) {
  const auto x = v.find('x');
  const bool digits = x != std::string::npos && x > 0 && x + 1 < v.size() && x <= 6 &&
                      v.find_first_not_of("0123456789x") == std::string::npos && v.find('x', x + 1) == std::string::npos;
  if (digits) {
    const int64_t t = parse_int(v.substr(0, x)).value_or(0), s = parse_int(v.substr(x + 1)).value_or(0);
    if (t >= 1 && (s == 1 || s == 3)) return {t, s};
  }
  throw ConfigError("--views: expected TEMPORALxSPATIAL with TEMPORAL >= 1 and SPATIAL 1 or 3, like 2x3, got '" + v + "'");
}

// The split's videos as multi-view samples, decoded by `workers` threads ahead of the model and
// delivered in the split's order; unreadable ones are reported and counted.
class ViewsSource : public EvalSource {
 public:
  ViewsSource(const data::DatasetSplit& split, data::ViewSpec spec, bool shuffle_frames, const Reporter& report,
              const CancelToken* cancel, int64_t workers)
      : split_(split), spec_(std::move(spec)), shuffle_(shuffle_frames), report_(report), cancel_(cancel),
        ahead_(static_cast<size_t>(std::max<int64_t>(1, workers))), progress_(report, static_cast<int64_t>(split.items.size())) {}
  bool next(EvalSample& s) override {
    while (!cancelled(cancel_)) {
      while (queued_ < split_.items.size() && pending_.size() < ahead_) {
        const size_t i = queued_++;
        pending_.push_back(std::async(std::launch::async, [this, i] { return load(i); }));
      }
      if (pending_.empty()) return false;
      auto done = pending_.front().get();
      pending_.pop_front();
      const auto& item = split_.items[done.index];
      progress_.done(item.path);
      if (!done.error.empty()) {
        ++skipped_;
        report_(EventKind::kProblem, {{"message", "skipping " + item.path + ": " + done.error}, {"path", item.path},
                                      {"reason", done.error}});
        continue;
      }
      s.views = std::move(done.views);
      s.label = item.label;
      s.id = item.id;
      return true;
    }
    return false;
  }
  int64_t skipped() const override { return skipped_; }

 private:
  struct Loaded {
    size_t index;
    torch::Tensor views;
    std::string error;
  };
  Loaded load(size_t i) const {
    Loaded out{i, {}, {}};
    try {
      out.views = data::load_views(split_.items[i], spec_);
      if (shuffle_) {
        std::mt19937_64 rng(i + 1);
        out.views = out.views.index_select(1, torch::tensor(data::random_permutation(out.views.size(1), rng), torch::kLong));
      }
    } catch (const std::exception& e) {
      out.error = e.what();
    }
    return out;
  }
  const data::DatasetSplit& split_;
  data::ViewSpec spec_;
  bool shuffle_;
  const Reporter& report_;
  const CancelToken* cancel_;
  size_t ahead_;
  ItemProgress progress_;
  std::deque<std::future<Loaded>> pending_;  // destroyed first: each waits for its thread
  size_t queued_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace

data::DatasetSplit rank_share(const data::DatasetSplit& split, const dist::Group* group) {
  if (!group || group->world() == 1) return split;
  data::DatasetSplit share = split;
  share.items.clear();
  for (size_t i = static_cast<size_t>(group->rank()); i < split.items.size(); i += static_cast<size_t>(group->world()))
    share.items.push_back(split.items[i]);
  return share;
}

void reduce_metrics(dist::Group* group, ClassificationMetrics& metrics, int64_t* skipped) {
  if (!group || group->world() == 1) return;
  auto counts = metrics.counts();
  if (skipped) counts = torch::cat({counts, torch::tensor({*skipped}, torch::kLong)});
  group->allreduce_sum(counts);
  if (skipped) *skipped = counts[-1].item<int64_t>(), counts = counts.narrow(0, 0, counts.numel() - 1);
  metrics.set_counts(counts);
}

std::unique_ptr<EvalSource> make_views_source(const data::DatasetSplit& split, const data::ViewSpec& spec,
                                              bool shuffle_frames, const Reporter& report, const CancelToken* cancel,
                                              int64_t workers) {
  return std::make_unique<ViewsSource>(split, spec, shuffle_frames, report, cancel, workers);
}

EvalResult run_eval(const EvalJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "eval");
  const auto [tv, sv] = parse_views(job.views);
  if (job.frames < 0) throw ConfigError("--frames " + std::to_string(job.frames) + ": must be >= 0 (0: the model's)");
  if (!job.report.empty()) {  // found out now, not after the whole evaluation
    const auto dir = fs::absolute(job.report).parent_path();
    if (!is_folder(dir)) throw ConfigError("--report " + job.report + ": folder " + dir.string() + " does not exist");
    if (::access(dir.c_str(), W_OK) != 0) throw ConfigError("--report " + job.report + ": folder " + dir.string() + " is not writable");
  }
  auto model = load_checkpoint(job.checkpoint);
  const auto& cfg = model->config();
  const auto full = data::load_dataset(job.format, job.data_root, job.split);
  if (static_cast<int64_t>(full.class_names.size()) != cfg.num_classes)
    throw ConfigError("--checkpoint " + job.checkpoint + ": the model has " + std::to_string(cfg.num_classes) +
                      " classes, the dataset " + job.data_root + " has " + std::to_string(full.class_names.size()) +
                      " (a checkpoint trained on another label set)");
  const auto split = rank_share(full, job.group.get());
  data::ViewSpec spec;
  spec.clip.frames = job.frames > 0 ? job.frames : cfg.num_frames;
  spec.clip.stride = job.stride;
  spec.sampler = job.sampler;
  spec.temporal = tv;
  spec.spatial = sv;
  spec.size = cfg.image_height;
  check_activation_memory(cfg, tv * sv, spec.clip.frames, "--frames/--views");
  if (cfg.image_height != cfg.image_width)
    throw ConfigError("eval: square models only (got " + std::to_string(cfg.image_height) + "x" +
                      std::to_string(cfg.image_width) + ")");
  ViewsSource source(split, spec, job.shuffle_frames, report, cancel, job.workers);
  ClassificationMetrics last(cfg.num_classes);
  if (job.routing) model->collect_routing_stats(true);
  auto metrics = evaluate(*model, source, job.last_frame ? &last : nullptr);
  int64_t skipped = source.skipped();
  reduce_metrics(job.group.get(), metrics, &skipped);
  if (job.last_frame) reduce_metrics(job.group.get(), last);
  EvalResult r;
  r.report = metrics.to_json(split.class_names);
  if (job.group && job.group->world() > 1) r.report["world_size"] = job.group->world();
  if (job.last_frame) r.report["last_frame"] = {{"top1", last.top1()}, {"top5", last.top5()}};
  if (job.routing) {
    nlohmann::json routing = nlohmann::json::object();
    for (const auto& [layer, s] : model->routing_stats())
      routing[std::to_string(layer)] = {{"num_experts", s.num_experts}, {"tokens", s.tokens},
                                        {"experts_used", s.experts_used}, {"usage_fraction", s.usage_fraction},
                                        {"unevenness", s.unevenness}, {"top1pct_share", s.top_share},
                                        {"hit_histogram", s.hit_histogram}};
    r.report["routing"] = routing;
    model->collect_routing_stats(false);
  }
  r.report["checkpoint"] = job.checkpoint;
  r.report["split"] = job.split;
  r.report["views"] = job.views;
  r.report["skipped"] = r.skipped = skipped;
  r.report["missing"] = r.missing = static_cast<int64_t>(full.missing.size());
  r.report["stopped"] = r.stopped = cancelled(cancel);
  r.count = metrics.count();
  r.top1 = metrics.top1();
  r.top5 = metrics.top5();
  const bool lead = !job.group || job.group->rank() == 0;
  if (!job.report.empty() && lead) write_json_atomically(job.report, r.report);
  if (job.group) job.group->barrier();  // the report is written when any rank returns
  report(EventKind::kEval, {{"checkpoint", job.checkpoint}, {"split", job.split}, {"count", r.count},
                            {"top1", r.top1}, {"top5", r.top5}, {"views", job.views}, {"skipped", r.skipped},
                            {"missing", r.missing}, {"stopped", r.stopped}});
  return r;
}

}  // namespace trecvit

#pragma once
// `trecvit eval` as a library call: multi-view evaluation of a checkpoint on a dataset split.
#include <nlohmann/json.hpp>
#include <string>

#include "datasets/annotations.h"
#include "datasets/views.h"
#include "eval/evaluate.h"
#include "jobs/progress.h"
#include "train/distributed.h"

namespace trecvit {

struct EvalJob {
  std::string checkpoint, data_root, format = "ssv2", split = "validation", views = "1x1", report;
  int64_t frames = 0, stride = 1;
  std::string sampler = "center";
  bool shuffle_frames = false;
  bool last_frame = false;  // also the last-frame readout: report["last_frame"] = {"top1", "top5"}
  bool routing = false;     // the sparse mixers' routing health: report["routing"] = {layer: summary}
  int64_t workers = 2;      // videos decoded in parallel
  // Data parallelism: each rank evaluates every world-th video and the counts are summed exactly;
  // rank 0 writes the report. Null: one process.
  std::shared_ptr<dist::Group> group;
};

struct EvalResult {
  int64_t count = 0, skipped = 0, missing = 0;
  double top1 = 0, top5 = 0;
  bool stopped = false;   // cancelled: the metrics cover only the first `count` videos
  nlohmann::json report;  // the full report: metrics, per-class accuracy, confusion, provenance
  nlohmann::json to_json() const { return report; }
};

// Writes the report to job.report when set (a cancelled run's report says "stopped": true).
EvalResult run_eval(const EvalJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);

// This rank's share of a split: every world-th item, starting at its rank.
data::DatasetSplit rank_share(const data::DatasetSplit& split, const dist::Group* group);
// Sums a sharded evaluation's counts (and `skipped`) across the group: the exact totals.
void reduce_metrics(dist::Group* group, ClassificationMetrics& metrics, int64_t* skipped = nullptr);

// Every video of a split as its views, in the split's order (`workers` decoding ahead;
// unreadable ones reported through `report` and counted): what `eval` and the trainer's
// validation read.
std::unique_ptr<EvalSource> make_views_source(const data::DatasetSplit& split, const data::ViewSpec& spec,
                                              bool shuffle_frames, const Reporter& report, const CancelToken* cancel,
                                              int64_t workers = 2);

}  // namespace trecvit

#pragma once
// `trecvit compare`: every arm of a spec trained with the same recipe, data order and seeds
// (seed s gives every arm the same batches), evaluated with the mean and the last-frame readout,
// timed, and its routing health measured; then one report (JSON, Markdown, self-contained HTML).
//
// Each arm x seed is an ordinary run directory, DIR/runs/<arm>/seed<s>/: arm.json (the arm's
// model config), compare_run.json (what the comparison made the run for), the training run's
// run.json, checkpoints and metrics.jsonl, samples.txt (each batch's sample ids), eval.json,
// result.json. A second call with resume skips finished runs and continues a killed one.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/distributed.h"

#include "jobs/compare_spec.h"
#include "jobs/progress.h"

namespace trecvit {

struct CompareJob {
  std::string spec, out_dir;
  int64_t seeds = 0;                // 0: the spec's
  bool quick = false;               // tiny generated data and steps (the spec's "quick" block)
  bool resume = false;
  std::vector<std::string> sweeps;  // ARM:FIELD=v1,v2,...
  int64_t stream_frames = 24;       // streaming steps timed per run (after 4 warm-up steps)
  // Data parallelism: every rank calls run_compare with the same job; each run trains and
  // evaluates across the group, rank 0 alone writes DIR and times streaming (the others return
  // an empty report). Null: one process.
  std::shared_ptr<dist::Group> group;
};

struct CompareResult {
  nlohmann::json report;  // also DIR/report.json; DIR/report.md and DIR/report.html beside it
  int64_t runs_done = 0, runs_skipped = 0;
  bool stopped = false;
  nlohmann::json to_json() const;
};

// The spec resolved as the job will run it (arms, matches, costs): for printing before training.
CompareSpec prepare_compare(const CompareJob& job);

CompareResult run_compare(const CompareJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace trecvit

#pragma once
// `trecvit data inspect | prepare | generate-ssf` as library calls.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/ssf_generator.h"
#include "jobs/progress.h"

namespace trecvit {

struct InspectJob {
  std::string format = "ssv2", root;
  std::vector<std::string> splits;  // empty: the format's usual splits that exist
  int workers = 2;
  int64_t num_classes = 0;          // nevis: > 0 overrides the class count of every dataset
};

// nevis: {"format", "root", "datasets": {NAME: {SPLIT: {"examples", "num_classes", "multi_label",
// "corrupt"}}}, "classes_from": {NAME: "override" | "sidecar" | "labels"}, "not_ready": [NAME],
// "problems": [{"file", "offset", "reason"}] (the first 1000; "problems_total" counts all)}.
struct InspectResult {
  // {"format", "root", "splits": {name: {"videos", "classes", "per_class", "missing",
  //  "missing_files", "unreadable", "frames", "width", "height", "sizes"} or {"error"}}}
  nlohmann::json report;
  nlohmann::json to_json() const { return report; }
  // What a script must not take for a healthy dataset: split errors, missing and unreadable
  // videos, damaged records, and a root where no split was found.
  int64_t problems() const;
};

struct PrepareJob {
  std::string root, out;
  int64_t short_side = 256;
  int workers = 2;
};

struct PrepareResult {
  int64_t written = 0, kept = 0;          // kept: done by an earlier (interrupted) run
  nlohmann::json failed = nlohmann::json::array();  // [{"path", "error"}]
  bool stopped = false;
  nlohmann::json to_json() const;
};

struct GenerateResult {
  std::string out_dir;
  data::SSFReport report;
  nlohmann::json to_json() const;
};

InspectResult run_nevis_inspect(const InspectJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);
InspectResult run_data_inspect(const InspectJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);
PrepareResult run_data_prepare(const PrepareJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);
// Something-Something-Fashion, the embedded default dataset (options.on_clip is the job's own).
GenerateResult run_data_generate(data::SSFOptions options, const ProgressSink& progress = {},
                                 const CancelToken* cancel = nullptr);

}  // namespace trecvit

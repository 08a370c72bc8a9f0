// `data inspect --format nevis`: every dataset under the root, every split, every record checked.
#include <filesystem>

#include "datasets/annotations.h"
#include "blocks/file_safety.h"
#include "datasets/nevis.h"
#include "jobs/data_jobs.h"

namespace trecvit {

InspectResult run_nevis_inspect(const InspectJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  constexpr size_t kMaxProblems = 1000;
  const Reporter report(progress, "data inspect");
  if (!is_folder(job.root)) throw data::DatasetError("--root " + job.root + ": not a folder");
  const auto names = data::nevis_dataset_names(job.root);
  nlohmann::json out = {{"format", "nevis"},
                        {"root", job.root},
                        {"datasets", nlohmann::json::object()},
                        {"classes_from", nlohmann::json::object()},
                        {"not_ready", nlohmann::json::array()},
                        {"problems", nlohmann::json::array()}};
  int64_t total_problems = 0;
  ItemProgress items(report, int64_t(names.size()));
  for (const auto& name : names) {
    if (cancelled(cancel)) {
      out["stopped"] = true;
      break;
    }
    data::NevisLoadOptions lo;
    lo.splits = job.splits;
    lo.num_classes = job.num_classes;
    lo.decode = false;
    lo.threads = job.workers;
    data::NevisDataset ds;
    try {
      ds = data::load_nevis_dataset(job.root, name, lo, [&](const data::TFRecordProblem& p) {
        ++total_problems;
        if (out["problems"].size() < kMaxProblems)
          out["problems"].push_back({{"file", p.file}, {"offset", p.offset}, {"reason", p.reason}});
      });
    } catch (const data::DatasetError& e) {
      ++total_problems;
      out["problems"].push_back({{"file", data::nevis_dataset_dir(job.root, name)}, {"offset", 0}, {"reason", e.what()}});
      items.done(name);
      continue;
    }
    if (!ds.ready) out["not_ready"].push_back(name);
    nlohmann::json splits = nlohmann::json::object();
    for (auto& [split, s] : ds.splits)
      if (s.present)
        splits[split] = {{"examples", s.size()}, {"num_classes", ds.num_classes}, {"multi_label", ds.multi_label},
                         {"corrupt", s.corrupt}};
    out["datasets"][name] = splits;
    out["classes_from"][name] = ds.classes_from;
    items.done(name);
  }
  out["problems_total"] = total_problems;
  return {out};
}

}  // namespace trecvit

#include "datasets/formats.h"
#include "blocks/file_safety.h"

#include "datasets/nevis.h"

#include <filesystem>
#include <mutex>

namespace trecvit::data {
namespace fs = std::filesystem;
namespace {

std::vector<std::string> kinetics_splits(const std::string& root) {
  std::vector<std::string> out;
  for (auto s : {"train", "validate", "val", "test"})
    for (auto pattern : {std::string("annotations/") + s + ".csv", std::string(s) + ".csv"})
      if (path_exists(fs::path(root) / pattern)) {
        out.push_back(s);
        break;
      }
  return out;
}

std::vector<std::string> whole_root(const std::string&) { return {""}; }

struct Registry {
  std::mutex mu;
  std::vector<DatasetFormat> formats = {
      {"ssv2", "Something-Something v2: labels.json + {train,validation,test}.json, videos/<id>.webm",
       [](const std::string& root, const std::string& split) { return load_ssv2(root, split); },
       [](const std::string&) { return std::vector<std::string>{"train", "validation", "test"}; }},
      {"kinetics", "Kinetics 400/600/700: <split>.csv (label,youtube_id,time_start,time_end,split), clips per class",
       [](const std::string& root, const std::string& split) { return load_kinetics(root, split); }, kinetics_splits},
      {"folder", "one folder per class: <root>[/<split>]/<class>/<video>",
       [](const std::string& root, const std::string& split) { return load_folder(split.empty() ? root : root + "/" + split); },
       whole_root},
      {"csv", "a CSV list path,label (label = index or class name); the root is the CSV file",
       [](const std::string& root, const std::string&) { return load_csv_list(root); }, whole_root},
      {"nevis", "NEVIS'22 still-image datasets: <root>/<dataset>/<split>/data-XXXXX-of-YYYYY TFRecord shards",
       [](const std::string& root, const std::string&) -> DatasetSplit {
         throw DatasetError(root + ": NEVIS datasets are still images, not videos: `trecvit data inspect --format "
                            "nevis` counts them and `trecvit nevis run` trains on them");
       },
       [](const std::string&) { return nevis_splits(); }},
  };
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

void register_dataset_format(DatasetFormat format) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (auto& f : r.formats)
    if (f.name == format.name) {
      f = std::move(format);
      return;
    }
  r.formats.push_back(std::move(format));
}

std::vector<DatasetFormat> dataset_formats() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.formats;
}

std::vector<std::string> dataset_format_names() {
  std::vector<std::string> names;
  for (auto& f : dataset_formats()) names.push_back(f.name);
  return names;
}

DatasetFormat dataset_format(const std::string& name) {
  std::string known;
  for (auto& f : dataset_formats()) {
    if (f.name == name) return f;
    known += (known.empty() ? "" : ", ") + f.name;
  }
  throw DatasetError("unknown dataset format '" + name + "' (known: " + known + ")");
}

DatasetSplit load_dataset(const std::string& format, const std::string& root, const std::string& split) {
  return dataset_format(format).load(root, split);
}

}  // namespace trecvit::data

#include "datasets/nevis.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>

#include "blocks/file_safety.h"
#include "datasets/annotations.h"
#include "datasets/tf_example.h"

namespace trecvit::data {
namespace fs = std::filesystem;
namespace {

struct Raw {
  std::string png;
  int64_t label = -1;
  std::vector<int64_t> multi;
  bool has_multi = false;
  int64_t file = 0, offset = 0;
};

// A FIFO or device here would block forever: only regular files are read.
std::string read_text(const fs::path& p) {
  if (!is_plain_file(p)) return {};
  std::ifstream in(p);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

void read_sidecar(const fs::path& path, NevisDataset& ds) {
  nlohmann::json j;
  if (!is_plain_file(path)) throw DatasetError(path.string() + ": not a regular file");
  try {
    std::ifstream in(path);
    j = nlohmann::json::parse(in);
    ds.num_classes = j.at("num_classes").get<int64_t>();
    ds.multi_label = j.value("multi_label", false);
    if (j.contains("class_names")) ds.class_names = j.at("class_names").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw DatasetError(path.string() + ": malformed sidecar: " + plain_json_error(e));
  }
  if (ds.num_classes < 1 || ds.num_classes > kMaxNevisClasses)
    throw DatasetError(path.string() + ": num_classes must be in [1, " + std::to_string(kMaxNevisClasses) + "], got " +
                       std::to_string(ds.num_classes));
  if (!ds.class_names.empty() && int64_t(ds.class_names.size()) != ds.num_classes)
    throw DatasetError(path.string() + ": " + std::to_string(ds.class_names.size()) + " class_names for " +
                       std::to_string(ds.num_classes) + " classes");
  ds.classes_from = "sidecar";
}

torch::Tensor shrink(torch::Tensor img, int64_t max_side) {
  const int64_t h = img.size(0), w = img.size(1);
  if (max_side <= 0 || std::max(h, w) <= max_side) return img;
  const double s = double(max_side) / double(std::max(h, w));
  const int nh = std::max<int>(1, int(std::lround(h * s))), nw = std::max<int>(1, int(std::lround(w * s)));
  auto out = torch::empty({nh, nw, 3}, torch::kByte);
  cv::Mat src(int(h), int(w), CV_8UC3, img.data_ptr()), dst(nh, nw, CV_8UC3, out.data_ptr());
  cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_AREA);
  return out;
}

}  // namespace

const std::vector<std::string>& nevis_splits() {
  static const std::vector<std::string> s = {"train", "dev", "dev-test", "test", "train_and_dev"};
  return s;
}

const NevisSplit& NevisDataset::split(const std::string& name) const {
  static const NevisSplit empty;
  auto it = splits.find(name);
  return it == splits.end() ? empty : it->second;
}

std::string nevis_dataset_dir(const std::string& root, const std::string& dataset) {
  std::string folder = dataset;
  std::replace(folder.begin(), folder.end(), '/', '_');
  return (fs::path(root) / folder).string();
}

bool nevis_dataset_ready(const std::string& root, const std::string& dataset) {
  return read_text(fs::path(nevis_dataset_dir(root, dataset)) / "status") == "ready";
}

std::vector<std::string> nevis_dataset_names(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(root, ec)) {
    if (!e.is_directory()) continue;
    bool any = path_exists(e.path() / "status");
    for (auto& s : nevis_splits()) any = any || is_folder(e.path() / s);
    if (any) out.push_back(e.path().filename().string());
  }
  if (ec) throw DatasetError(root + ": cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> nevis_shards(const std::string& split_dir) {
  static const std::regex shard(R"(data-\d{5,}-of-\d{5,})");
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(split_dir, ec))
    if (std::regex_match(e.path().filename().string(), shard)) out.push_back(e.path().string());
  if (ec) throw DatasetError(split_dir + ": cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

torch::Tensor decode_image_rgb(std::string_view bytes) {
  cv::Mat buf(1, int(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(buf, cv::IMREAD_COLOR);  // grey -> 3 channels, alpha dropped, 16 bit -> 8 bit
  } catch (const cv::Exception& e) {
    throw DatasetError(std::string("undecodable image: ") + e.what());
  }
  if (bgr.empty()) throw DatasetError("undecodable image (" + std::to_string(bytes.size()) + " bytes)");
  auto out = torch::empty({bgr.rows, bgr.cols, 3}, torch::kByte);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, out.data_ptr());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return out;
}

void write_nevis_sidecar(const std::string& dataset_dir, int64_t num_classes, bool multi_label,
                         const std::vector<std::string>& class_names) {
  nlohmann::json j = {{"num_classes", num_classes}, {"multi_label", multi_label}};
  if (!class_names.empty()) j["class_names"] = class_names;
  const std::string path = (fs::path(dataset_dir) / "trecvit.json").string();
  if (const auto why = write_file_atomically(path, j.dump(2) + "\n"); !why.empty()) throw DatasetError(path + ": " + why);
}

NevisDataset load_nevis_dataset(const std::string& root, const std::string& dataset, const NevisLoadOptions& options,
                                const NevisProblemSink& on_problem) {
  NevisDataset ds;
  ds.name = dataset;
  ds.dir = nevis_dataset_dir(root, dataset);
  if (!is_folder(ds.dir)) throw DatasetError(ds.dir + ": no such dataset folder");
  ds.ready = nevis_dataset_ready(root, dataset);
  if (path_exists(fs::path(ds.dir) / "trecvit.json")) read_sidecar(fs::path(ds.dir) / "trecvit.json", ds);
  if (options.num_classes > 0) {
    ds.num_classes = options.num_classes;
    ds.classes_from = "override";
    if (!ds.class_names.empty() && int64_t(ds.class_names.size()) != ds.num_classes) ds.class_names.clear();
  }
  const bool known = ds.num_classes > 0;
  const auto& wanted = options.splits.empty() ? nevis_splits() : options.splits;
  int64_t max_label = -1;
  for (const auto& name : wanted) {
    NevisSplit& split = ds.splits[name];
    const fs::path dir = fs::path(ds.dir) / name;
    split.present = is_folder(dir);
    if (!split.present) continue;
    std::vector<std::string> shards;
    try {
      shards = nevis_shards(dir.string());
    } catch (const DatasetError& e) {
      ++split.corrupt;
      if (on_problem) on_problem({dir.string(), 0, e.what()});
    }
    for (size_t fi = 0; fi < shards.size(); ++fi) {
      const std::string& file = shards[fi];
      auto problem = [&](int64_t offset, const std::string& reason) {
        ++split.corrupt;
        if (on_problem) on_problem({file, offset, reason});
      };
      std::vector<Raw> raws;
      if (!is_plain_file(file)) {  // a FIFO or device would block the reader forever
        problem(0, "not a regular file");
        continue;
      }
      try {
        read_tfrecords(
          file,
          [&](int64_t offset, std::string_view data) {
            TFExample ex;
            try {
              ex = parse_example(data);
            } catch (const ExampleParseError& e) {
              return problem(offset, std::string("malformed tf.train.Example: ") + e.what());
            }
            Raw r;
            r.file = int64_t(fi);
            r.offset = offset;
            auto* img = ex.find("png_encoded_image");
            if (!img || img->kind != ExampleFeature::Kind::kBytes || img->bytes.size() != 1)
              return problem(offset, "no png_encoded_image (one bytes value)");
            r.png = std::move(const_cast<std::string&>(img->bytes[0]));
            if (auto* m = ex.find("multi_label"); m && m->kind == ExampleFeature::Kind::kInt64) {
              r.multi = m->int64s;
              r.has_multi = true;
            }
            auto* lab = ex.find("label");
            if (lab && lab->kind == ExampleFeature::Kind::kInt64 && lab->int64s.size() == 1) r.label = lab->int64s[0];
            else if (!r.has_multi) return problem(offset, "no label (one int64 value)");
            std::vector<int64_t> all = r.multi;
            if (lab && r.label != -1) all.push_back(r.label);
            for (int64_t l : all)
              if (l < 0 || (known && l >= ds.num_classes) || (!known && l >= kMaxNevisClasses))
                return problem(offset, "label " + std::to_string(l) + " outside [0, " +
                                           std::to_string(known ? ds.num_classes : kMaxNevisClasses) + ")");
            raws.push_back(std::move(r));
          },
          [&](const TFRecordProblem& p) { problem(p.offset, p.reason); });
      } catch (const DatasetError& e) {  // unreadable shard: the records read so far are kept
        problem(0, e.what());
      }
      // Decode in parallel, keep file order.
      std::vector<torch::Tensor> images(raws.size());
      std::vector<std::string> errors(raws.size());
      const int saved = at::get_num_threads();
      if (options.threads > 0) at::set_num_threads(options.threads);
      at::parallel_for(0, int64_t(raws.size()), 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) try {
            auto img = decode_image_rgb(raws[i].png);  // decoded even when only checking
            if (options.decode) images[i] = shrink(std::move(img), options.max_side);
          } catch (const std::exception& ex) {
            errors[i] = ex.what();
          }
      });
      if (options.threads > 0) at::set_num_threads(saved);
      for (size_t i = 0; i < raws.size(); ++i) {
        if (!errors[i].empty()) {
          problem(raws[i].offset, errors[i]);
          continue;
        }
        if (options.decode) split.images.push_back(std::move(images[i]));
        else split.images.emplace_back();
        split.labels.push_back(raws[i].label);
        if (raws[i].has_multi) ds.multi_label = true;
        if (!raws[i].has_multi) raws[i].multi = {raws[i].label};  // a single-label record in a multi-label task
        split.multi_labels.push_back(std::move(raws[i].multi));
        max_label = std::max(max_label, raws[i].label);
        for (int64_t l : split.multi_labels.back()) max_label = std::max(max_label, l);
      }
    }
  }
  if (!known) {
    ds.num_classes = max_label + 1;
    ds.classes_from = "labels";
  }
  if (!ds.multi_label)
    for (auto& [name, s] : ds.splits) s.multi_labels.clear();
  return ds;
}

}  // namespace trecvit::data

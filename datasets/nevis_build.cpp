#include "datasets/nevis_build.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <sstream>

#include "datasets/annotations.h"
#include "datasets/fashion_mnist.h"
#include "datasets/nevis.h"
#include "datasets/tf_example.h"
#include "datasets/tfrecord.h"

namespace trecvit::data {
namespace fs = std::filesystem;
namespace {

struct Images {
  std::vector<cv::Mat> images;  // grey 8 bit
  std::vector<int64_t> labels;
};

struct Built {
  Images train, test;  // test empty: cut 56/12/12/20
  std::vector<std::string> class_names;
};

Images from_tensor(const torch::Tensor& images, const torch::Tensor& labels) {
  Images out;
  for (int64_t i = 0; i < images.size(0); ++i) {
    auto img = images[i].contiguous();
    out.images.push_back(cv::Mat(int(img.size(0)), int(img.size(1)), CV_8U, img.data_ptr()).clone());
    out.labels.push_back(labels[i].item<int64_t>());
  }
  return out;
}

Built fashion(const NevisBuildSource& s) {
  auto tr = load_fashion_mnist(s.fashion_mnist_dir, "train"), te = load_fashion_mnist(s.fashion_mnist_dir, "test");
  return {from_tensor(tr.images, tr.labels), from_tensor(te.images, te.labels), FashionMnist::class_names()};
}

Built opencv_digits(const NevisBuildSource& s) {
  cv::Mat grid = cv::imread(s.opencv_digits_png, cv::IMREAD_GRAYSCALE);
  if (grid.empty()) throw DatasetError(s.opencv_digits_png + ": cannot read (install the Debian package opencv-doc)");
  if (grid.cols != 2000 || grid.rows != 1000)
    throw DatasetError(s.opencv_digits_png + ": expected a 2000x1000 grid of 20x20 digits");
  Built b;
  for (int r = 0; r < 50; ++r)  // 5 rows of 100 digits per class, classes 0..9 in order
    for (int c = 0; c < 100; ++c) {
      b.train.images.push_back(grid(cv::Rect(c * 20, r * 20, 20, 20)).clone());
      b.train.labels.push_back(r / 5);
    }
  for (int d = 0; d < 10; ++d) b.class_names.push_back(std::to_string(d));
  return b;
}

Built uci_digits(const NevisBuildSource& s) {
  std::unique_ptr<gzFile_s, decltype(&gzclose)> f(gzopen(s.uci_digits_csv.c_str(), "rb"), &gzclose);
  if (!f) throw DatasetError(s.uci_digits_csv + ": cannot open (install the Debian package python3-sklearn)");
  std::string text;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f.get(), buf, sizeof(buf))) > 0) text.append(buf, n);
  if (n < 0) throw DatasetError(s.uci_digits_csv + ": corrupt gzip data");
  Built b;
  std::istringstream lines(text);
  std::string line;
  int64_t row = 0;
  while (std::getline(lines, line)) {
    ++row;
    if (line.empty()) continue;
    std::vector<double> v;
    std::istringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, ',')) v.push_back(std::strtod(cell.c_str(), nullptr));
    if (v.size() != 65 || v[64] < 0 || v[64] > 9)
      throw DatasetError(s.uci_digits_csv + ": row " + std::to_string(row) + ": expected 64 pixels and a label 0-9");
    cv::Mat img(8, 8, CV_8U);
    for (int i = 0; i < 64; ++i) img.data[i] = uint8_t(std::lround(std::clamp(v[i], 0.0, 16.0) * 255.0 / 16.0));
    b.train.images.push_back(img);
    b.train.labels.push_back(int64_t(v[64]));
  }
  for (int d = 0; d < 10; ++d) b.class_names.push_back(std::to_string(d));
  return b;
}

Images take(const Images& from, size_t begin, size_t end) {
  Images out;
  for (size_t i = begin; i < end; ++i) {
    out.images.push_back(from.images[i]);
    out.labels.push_back(from.labels[i]);
  }
  return out;
}

void append(Images& to, const Images& from) {
  to.images.insert(to.images.end(), from.images.begin(), from.images.end());
  to.labels.insert(to.labels.end(), from.labels.begin(), from.labels.end());
}

void write_split(const fs::path& dir, const Images& data, int shards) {
  fs::create_directories(dir);
  for (auto& old : nevis_shards(dir.string())) fs::remove(old);
  std::vector<std::unique_ptr<TFRecordWriter>> writers;
  char name[64];
  for (int s = 0; s < shards; ++s) {
    std::snprintf(name, sizeof(name), "data-%05d-of-%05d", s, shards);
    writers.push_back(std::make_unique<TFRecordWriter>((dir / name).string()));
  }
  std::vector<uint8_t> png;
  for (size_t i = 0; i < data.images.size(); ++i) {
    if (!cv::imencode(".png", data.images[i], png)) throw DatasetError(dir.string() + ": PNG encoding failed");
    TFExample ex;
    ex.set_bytes("png_encoded_image", std::string(png.begin(), png.end()));
    ex.set_int64s("label", {data.labels[i]});
    writers[i % writers.size()]->write(serialize_example(ex));
  }
  for (auto& w : writers) w->close();
}

}  // namespace

const std::vector<std::string>& nevis_build_datasets() {
  static const std::vector<std::string> names = {"uci_digits", "opencv_digits", "fashion_mnist"};
  return names;
}

std::vector<NevisBuildResult> build_nevis_debian(const NevisBuildOptions& o,
                                                 const std::function<void(const std::string&)>& on_dataset) {
  if (o.out_dir.empty()) throw DatasetError("nevis-build: no output folder given");
  if (o.shards < 1) throw DatasetError("nevis-build: shards must be >= 1");
  const auto& names = o.datasets.empty() ? nevis_build_datasets() : o.datasets;
  std::vector<NevisBuildResult> results;
  for (const auto& name : names) {
    if (std::find(nevis_build_datasets().begin(), nevis_build_datasets().end(), name) == nevis_build_datasets().end())
      throw DatasetError("nevis-build: unknown dataset '" + name + "' (known: uci_digits, opencv_digits, fashion_mnist)");
    NevisBuildResult r;
    r.dataset = name;
    const fs::path dir = fs::path(o.out_dir) / name;
    if (nevis_dataset_ready(o.out_dir, name)) {
      r.skipped = true;
      results.push_back(r);
      continue;
    }
    if (on_dataset) on_dataset(name);
    Built b = name == "fashion_mnist" ? fashion(o.source) : name == "opencv_digits" ? opencv_digits(o.source)
                                                                                   : uci_digits(o.source);
    std::map<std::string, Images> splits;
    if (!b.test.images.empty()) {
      const size_t n = b.train.images.size(), a = n * 70 / 100, c = n * 85 / 100;
      splits["train"] = take(b.train, 0, a);
      splits["dev"] = take(b.train, a, c);
      splits["dev-test"] = take(b.train, c, n);
      splits["test"] = b.test;
    } else {
      std::vector<size_t> order(b.train.images.size());
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), std::mt19937_64(o.seed));
      Images shuffled;
      for (size_t i : order) {
        shuffled.images.push_back(b.train.images[i]);
        shuffled.labels.push_back(b.train.labels[i]);
      }
      const size_t n = order.size(), a = n * 56 / 100, c = n * 68 / 100, d = n * 80 / 100;
      splits["train"] = take(shuffled, 0, a);
      splits["dev"] = take(shuffled, a, c);
      splits["dev-test"] = take(shuffled, c, d);
      splits["test"] = take(shuffled, d, n);
    }
    splits["train_and_dev"] = splits["train"];
    append(splits["train_and_dev"], splits["dev"]);
    fs::create_directories(dir);
    fs::remove(dir / "status");
    for (auto& [split, data] : splits) {
      write_split(dir / split, data, o.shards);
      r.examples[split] = int64_t(data.images.size());
    }
    write_nevis_sidecar(dir.string(), int64_t(b.class_names.size()), false, b.class_names);
    std::ofstream status_out(dir / "status");
    status_out << "ready\n";
    if (!status_out.flush()) throw DatasetError((dir / "status").string() + ": cannot write");
    results.push_back(r);
  }
  return results;
}

}  // namespace trecvit::data

#include "datasets/fashion_mnist.h"

#include <zlib.h>

#include <memory>

#include "datasets/annotations.h"

namespace trecvit::data {
namespace {

std::string read_gz(const std::string& path) {
  std::unique_ptr<gzFile_s, decltype(&gzclose)> f(gzopen(path.c_str(), "rb"), &gzclose);
  if (!f) throw DatasetError(path + ": cannot open (install the Debian package dataset-fashion-mnist)");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f.get(), buf, sizeof(buf))) > 0) out.append(buf, n);
  if (n < 0) throw DatasetError(path + ": corrupt gzip data");
  return out;
}

uint32_t be32(const std::string& b, size_t off) {
  return (uint32_t(uint8_t(b[off])) << 24) | (uint32_t(uint8_t(b[off + 1])) << 16) |
         (uint32_t(uint8_t(b[off + 2])) << 8) | uint32_t(uint8_t(b[off + 3]));
}

}  // namespace

const std::vector<std::string>& FashionMnist::class_names() {
  static const std::vector<std::string> names = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                                 "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  return names;
}

FashionMnist load_fashion_mnist(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "test") throw DatasetError("fashion-mnist: split must be train or test");
  const std::string prefix = dir + "/" + (split == "train" ? "train" : "t10k");
  const std::string img_path = prefix + "-images-idx3-ubyte.gz", lbl_path = prefix + "-labels-idx1-ubyte.gz";
  const auto img = read_gz(img_path), lbl = read_gz(lbl_path);
  if (img.size() < 16 || be32(img, 0) != 2051) throw DatasetError(img_path + ": not an IDX image file");
  if (lbl.size() < 8 || be32(lbl, 0) != 2049) throw DatasetError(lbl_path + ": not an IDX label file");
  const int64_t n = be32(img, 4), rows = be32(img, 8), cols = be32(img, 12);
  if (int64_t(img.size()) != 16 + n * rows * cols) throw DatasetError(img_path + ": truncated");
  if (int64_t(be32(lbl, 4)) != n || int64_t(lbl.size()) != 8 + n) throw DatasetError(lbl_path + ": count mismatch");
  FashionMnist out;
  out.images = torch::empty({n, rows, cols}, torch::kByte);
  if (n > 0) std::memcpy(out.images.data_ptr(), img.data() + 16, n * rows * cols);
  out.labels = torch::empty({n}, torch::kByte);
  if (n > 0) std::memcpy(out.labels.data_ptr(), lbl.data() + 8, n);
  out.labels = out.labels.to(torch::kLong);
  return out;
}

}  // namespace trecvit::data

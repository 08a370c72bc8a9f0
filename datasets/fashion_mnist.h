#pragma once
// Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist):
// gzip'd IDX files, 28x28 grey images, 10 classes.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace trecvit::data {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct FashionMnist {
  torch::Tensor images;  // [N, 28, 28] uint8
  torch::Tensor labels;  // [N] int64
  static const std::vector<std::string>& class_names();  // "t-shirt", "trouser", ...
};

// split: "train" (60k) or "test" (10k). Throws DatasetError naming the file on a missing,
// truncated or malformed file.
FashionMnist load_fashion_mnist(const std::string& dir, const std::string& split);

}  // namespace trecvit::data

#pragma once
// Spatial transforms on uint8 clips [T, H, W, 3] (the layout the readers produce). Random
// transforms draw from the generator they are given, so a seed fixes them.
#include <torch/torch.h>

#include <random>
#include <vector>

namespace trecvit::data {

torch::Tensor resize(const torch::Tensor& clip, int64_t height, int64_t width);  // bilinear
torch::Tensor short_side_resize(const torch::Tensor& clip, int64_t size);
torch::Tensor crop(const torch::Tensor& clip, int64_t top, int64_t left, int64_t height, int64_t width);
torch::Tensor center_crop(const torch::Tensor& clip, int64_t height, int64_t width);
// Three size x size crops along the long side (start, centre, end), for 3-view evaluation.
std::vector<torch::Tensor> three_crop(const torch::Tensor& clip, int64_t size);
// A crop of random area (scale of the frame) and aspect ratio, resized to height x width.
torch::Tensor random_resized_crop(const torch::Tensor& clip, int64_t height, int64_t width, std::mt19937_64& rng,
                                  double min_scale = 0.3, double max_scale = 1.0, double min_ratio = 3.0 / 4,
                                  double max_ratio = 4.0 / 3);
torch::Tensor horizontal_flip(const torch::Tensor& clip);
// Random brightness, contrast and saturation factors in [1 - s, 1 + s], the same for all frames.
torch::Tensor color_jitter(const torch::Tensor& clip, double brightness, double contrast, double saturation,
                           std::mt19937_64& rng);

// A uniform double in [lo, hi) from the generator (portable, unlike std::uniform_real_distribution).
double uniform(std::mt19937_64& rng, double lo, double hi);

}  // namespace trecvit::data

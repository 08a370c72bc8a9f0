#include "datasets/transforms.h"

#include <cmath>

namespace trecvit::data {
namespace {

void check_clip(const torch::Tensor& clip, const char* what) {
  TORCH_CHECK(clip.dim() == 4 && clip.size(3) == 3, what, ": expected a clip [T, H, W, 3], got ", clip.sizes());
}

torch::Tensor to_uint8(const torch::Tensor& x) { return x.round().clamp_(0, 255).to(torch::kByte); }

}  // namespace

double uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * (double(rng() >> 11) * (1.0 / 9007199254740992.0));
}

torch::Tensor resize(const torch::Tensor& clip, int64_t height, int64_t width) {
  check_clip(clip, "resize");
  if (clip.size(1) == height && clip.size(2) == width) return clip;
  auto x = clip.permute({0, 3, 1, 2}).to(torch::kFloat);  // [T, 3, H, W]
  x = torch::nn::functional::interpolate(
      x, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{height, width})
             .mode(torch::kBilinear).align_corners(false));
  return to_uint8(x).permute({0, 2, 3, 1}).contiguous();
}

torch::Tensor short_side_resize(const torch::Tensor& clip, int64_t size) {
  check_clip(clip, "short_side_resize");
  const int64_t h = clip.size(1), w = clip.size(2);
  if (h <= w) return resize(clip, size, std::max<int64_t>(1, std::llround(double(w) * size / h)));
  return resize(clip, std::max<int64_t>(1, std::llround(double(h) * size / w)), size);
}

torch::Tensor crop(const torch::Tensor& clip, int64_t top, int64_t left, int64_t height, int64_t width) {
  check_clip(clip, "crop");
  TORCH_CHECK(top >= 0 && left >= 0 && top + height <= clip.size(1) && left + width <= clip.size(2),
              "crop: ", height, "x", width, " at (", top, ", ", left, ") does not fit a ", clip.size(1), "x",
              clip.size(2), " frame");
  return clip.narrow(1, top, height).narrow(2, left, width).contiguous();
}

torch::Tensor center_crop(const torch::Tensor& clip, int64_t height, int64_t width) {
  return crop(clip, (clip.size(1) - height) / 2, (clip.size(2) - width) / 2, height, width);
}

std::vector<torch::Tensor> three_crop(const torch::Tensor& clip, int64_t size) {
  check_clip(clip, "three_crop");
  const int64_t h = clip.size(1), w = clip.size(2);
  std::vector<torch::Tensor> out;
  for (int k = 0; k < 3; ++k) {
    if (w >= h)
      out.push_back(crop(clip, (h - size) / 2, (w - size) * k / 2, size, size));
    else
      out.push_back(crop(clip, (h - size) * k / 2, (w - size) / 2, size, size));
  }
  return out;
}

torch::Tensor random_resized_crop(const torch::Tensor& clip, int64_t height, int64_t width, std::mt19937_64& rng,
                                  double min_scale, double max_scale, double min_ratio, double max_ratio) {
  check_clip(clip, "random_resized_crop");
  const int64_t H = clip.size(1), W = clip.size(2);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double area = H * W * uniform(rng, min_scale, max_scale);
    const double ratio = std::exp(uniform(rng, std::log(min_ratio), std::log(max_ratio)));
    const int64_t w = std::llround(std::sqrt(area * ratio)), h = std::llround(std::sqrt(area / ratio));
    if (w < 1 || h < 1 || w > W || h > H) continue;
    const int64_t top = static_cast<int64_t>(rng() % uint64_t(H - h + 1));
    const int64_t left = static_cast<int64_t>(rng() % uint64_t(W - w + 1));
    return resize(crop(clip, top, left, h, w), height, width);
  }
  const int64_t s = std::min(H, W);  // fallback: the central square
  return resize(center_crop(clip, s, s), height, width);
}

torch::Tensor horizontal_flip(const torch::Tensor& clip) {
  check_clip(clip, "horizontal_flip");
  return clip.flip(2).contiguous();
}

torch::Tensor color_jitter(const torch::Tensor& clip, double brightness, double contrast, double saturation,
                           std::mt19937_64& rng) {
  check_clip(clip, "color_jitter");
  const double b = uniform(rng, 1 - brightness, 1 + brightness);
  const double c = uniform(rng, 1 - contrast, 1 + contrast);
  const double s = uniform(rng, 1 - saturation, 1 + saturation);
  auto x = clip.to(torch::kFloat) * b;
  auto grey = (x.select(3, 0) * 0.299 + x.select(3, 1) * 0.587 + x.select(3, 2) * 0.114).unsqueeze(3);
  x = grey + (x - grey) * s;                 // saturation around each pixel's grey
  x = x.mean() + (x - x.mean()) * c;         // contrast around the clip's mean
  return to_uint8(x);
}

}  // namespace trecvit::data

#include "datasets/image_augment.h"

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <random>

namespace trecvit::data {
namespace {

void crop_resize(const torch::Tensor& img, torch::Tensor& dst, int x, int y, int w, int h, bool flip) {
  cv::Mat src(int(img.size(0)), int(img.size(1)), CV_8UC3, img.data_ptr());
  cv::Mat out(int(dst.size(0)), int(dst.size(1)), CV_8UC3, dst.data_ptr());
  const bool shrink = w >= out.cols && h >= out.rows;
  cv::resize(src(cv::Rect(x, y, w, h)), out, out.size(), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  if (flip) cv::flip(out, out, 1);
}

}  // namespace

void random_resized_crop(const torch::Tensor& img, torch::Tensor& dst, const CropOptions& o, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  const int H = int(img.size(0)), W = int(img.size(1));
  int w = W, h = H, x = 0, y = 0;
  // Up to 10 draws, as torchvision's RandomResizedCrop does; the whole image after that.
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double area = (o.min_area + (o.max_area - o.min_area) * u(rng)) * H * W;
    const double log_r = std::log(o.min_aspect) + (std::log(o.max_aspect) - std::log(o.min_aspect)) * u(rng);
    const int cw = int(std::lround(std::sqrt(area * std::exp(log_r))));
    const int ch = int(std::lround(std::sqrt(area / std::exp(log_r))));
    if (cw >= 1 && ch >= 1 && cw <= W && ch <= H) {
      w = cw, h = ch;
      x = int(u(rng) * (W - w + 1)), y = int(u(rng) * (H - h + 1));
      x = std::min(x, W - w), y = std::min(y, H - h);
      break;
    }
  }
  const bool flip = o.flip && u(rng) < 0.5;
  crop_resize(img, dst, x, y, w, h, flip);
}

void center_crop(const torch::Tensor& img, torch::Tensor& dst) {
  const int H = int(img.size(0)), W = int(img.size(1)), s = std::min(H, W);
  crop_resize(img, dst, (W - s) / 2, (H - s) / 2, s, s, false);
}

}  // namespace trecvit::data

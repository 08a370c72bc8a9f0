#include "jobs/stream_support.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

namespace trecvit {
namespace {

constexpr double kLowMs = 0.01, kRatio = 1.015;

int bucket_of(double ms) {
  if (!(ms > kLowMs)) return 0;
  return std::min<int>(static_cast<int>(std::log(ms / kLowMs) / std::log(kRatio)), 1279);
}

double bucket_value(int b) { return kLowMs * std::pow(kRatio, b + 0.5); }

}  // namespace

void LatencyStats::add(double ms) {
  ++buckets_[bucket_of(ms)];
  recent_[count_ % kRecent] = ms;
  ++count_;
  max_ = std::max(max_, ms);
}

double LatencyStats::percentile(double q) const {
  if (count_ == 0) return 0;
  const int64_t rank = static_cast<int64_t>(std::ceil(q * count_));
  int64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b)
    if ((seen += buckets_[b]) >= std::max<int64_t>(rank, 1)) return std::min(bucket_value(b), max_);
  return max_;
}

double LatencyStats::recent_percentile(double q) const {
  const int64_t n = std::min<int64_t>(count_, kRecent);
  if (n == 0) return 0;
  std::vector<double> v(recent_.begin(), recent_.begin() + n);
  const int64_t k = std::min<int64_t>(n - 1, static_cast<int64_t>(std::ceil(q * n)) - 1);
  std::nth_element(v.begin(), v.begin() + std::max<int64_t>(k, 0), v.end());
  return v[std::max<int64_t>(k, 0)];
}

void draw_topk(torch::Tensor& rgb, const std::vector<LabelProb>& topk, const std::string& caption) {
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == torch::kByte && rgb.is_contiguous(),
              "draw_topk: a contiguous uint8 [h, w, 3] frame");
  cv::Mat m(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3, rgb.data_ptr<uint8_t>());
  const double scale = std::max(0.35, m.rows / 720.0);
  const int line = static_cast<int>(22 * scale) + 4, thick = std::max(1, static_cast<int>(scale + 0.5));
  std::vector<std::string> lines{caption};
  for (const auto& t : topk) {
    char pct[16];
    std::snprintf(pct, sizeof pct, "%5.1f%% ", 100 * t.prob);
    lines.push_back(pct + t.label);
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    const cv::Point at(6, line * static_cast<int>(i + 1));
    // A dark outline keeps the text readable on any background.
    cv::putText(m, lines[i], at, cv::FONT_HERSHEY_SIMPLEX, 0.6 * scale, cv::Scalar(0, 0, 0), thick + 2, cv::LINE_AA);
    cv::putText(m, lines[i], at, cv::FONT_HERSHEY_SIMPLEX, 0.6 * scale, cv::Scalar(255, 255, 255), thick, cv::LINE_AA);
  }
}

torch::Tensor resize_rgb(const torch::Tensor& rgb, int64_t height, int64_t width) {
  auto src = rgb.contiguous();
  cv::Mat in(static_cast<int>(src.size(0)), static_cast<int>(src.size(1)), CV_8UC3, src.data_ptr<uint8_t>());
  auto out = torch::empty({height, width, 3}, torch::kByte);
  cv::Mat dst(static_cast<int>(height), static_cast<int>(width), CV_8UC3, out.data_ptr<uint8_t>());
  cv::resize(in, dst, dst.size(), 0, 0, height < src.size(0) ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

int64_t peak_rss_bytes() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

}  // namespace trecvit

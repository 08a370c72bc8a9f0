#pragma once
// Pieces of the streaming job that hold no state of the loop: latency statistics in constant
// memory, the overlay drawn on annotated frames, the process's peak RSS.
#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

namespace trecvit {

// Latencies in log-spaced buckets (1.5% wide, 10 us to 1000 s): percentiles within 1.5%
// however long a feed runs, in a fixed 10 KB. The recent window gives the status line's view.
class LatencyStats {
 public:
  void add(double ms);
  double percentile(double q) const;         // over everything added
  double recent_percentile(double q) const;  // over the last kRecent
  double max() const { return max_; }
  int64_t count() const { return count_; }

 private:
  static constexpr int kBuckets = 1280;
  static constexpr int kRecent = 128;
  std::array<int64_t, kBuckets> buckets_{};
  std::array<double, kRecent> recent_{};
  int64_t count_ = 0;
  double max_ = 0;
};

struct LabelProb {
  std::string label;
  double prob;
};

// Draws the top-k (label and probability) in the top-left corner of an RGB uint8 [h, w, 3] frame.
void draw_topk(torch::Tensor& rgb, const std::vector<LabelProb>& topk, const std::string& caption);

// An RGB uint8 [h, w, 3] frame resized (area / linear) to [height, width, 3].
torch::Tensor resize_rgb(const torch::Tensor& rgb, int64_t height, int64_t width);

int64_t peak_rss_bytes();

}  // namespace trecvit

#include "blocks/routing_stats.h"

#include <algorithm>
#include <cmath>

namespace trecvit {

void RoutingStats::enable(bool on) {
  enabled_ = on;
  if (on && !weight_.defined()) reset();
}

void RoutingStats::reset() {
  tokens_ = 0;
  weight_ = torch::zeros({num_experts_}, torch::kDouble);
  hits_ = torch::zeros({num_experts_}, torch::kLong);
}

void RoutingStats::add(const torch::Tensor& ids, const torch::Tensor& weights, int64_t tokens) {
  if (!enabled_) return;
  torch::NoGradGuard no_grad;
  auto flat = ids.reshape(-1).to(torch::kLong);
  weight_.index_add_(0, flat, weights.detach().reshape(-1).to(torch::kDouble));
  hits_.index_add_(0, flat, torch::ones_like(flat));
  tokens_ += tokens;
}

RoutingSummary RoutingStats::summary() const {
  RoutingSummary s;
  s.num_experts = num_experts_;
  s.tokens = tokens_;
  if (!weight_.defined() || num_experts_ == 0) return s;
  s.experts_used = (hits_ > 0).sum().item<int64_t>();
  s.usage_fraction = double(s.experts_used) / double(num_experts_);
  const double total = weight_.sum().item<double>();
  if (total > 0) {
    auto z = weight_ / total;
    auto zlogz = torch::where(z > 0, z * z.log(), torch::zeros_like(z));  // 0 log 0 = 0
    s.unevenness = std::log(double(num_experts_)) + zlogz.sum().item<double>();
  }
  const int64_t retrievals = hits_.sum().item<int64_t>();
  if (retrievals > 0) {
    const int64_t top = (num_experts_ + 99) / 100;  // ceil(1% of N): one expert below 101
    s.top_share = double(std::get<0>(hits_.topk(top)).sum().item<int64_t>()) / double(retrievals);
  }
  auto hits = hits_.contiguous();
  const int64_t* h = hits.data_ptr<int64_t>();
  for (int64_t i = 0; i < num_experts_; ++i) {
    size_t b = 0;
    for (int64_t v = h[i]; v > 0; v >>= 1) ++b;  // 0 -> 0, 1 -> 1, 2..3 -> 2, 4..7 -> 3, ...
    if (s.hit_histogram.size() <= b) s.hit_histogram.resize(b + 1, 0);
    ++s.hit_histogram[b];
  }
  return s;
}

}  // namespace trecvit

#pragma once
// Routing health of a sparse mixer, accumulated over an evaluation set (PEER paper, Table 2):
// the fraction of experts that received any token, and the unevenness
//   log N + sum_i z_i log z_i,   z = accumulated router weights, normalised to sum 1,
// which is 0 for perfectly even use and log N when one expert takes everything.
#include <torch/torch.h>

#include <vector>

namespace trecvit {

struct RoutingSummary {
  int64_t num_experts = 0;
  int64_t tokens = 0;          // tokens routed while collecting
  int64_t experts_used = 0;    // experts retrieved at least once
  double usage_fraction = 0;   // experts_used / num_experts
  double unevenness = 0;       // log N + sum z log z (0: even)
  double top_share = 0;        // share of all retrievals taken by the most-used ceil(N / 100) experts
  // Experts by retrieval count: bucket 0 holds the unused, bucket b >= 1 those retrieved
  // [2^(b-1), 2^b) times.
  std::vector<int64_t> hit_histogram;
};

class RoutingStats {
 public:
  explicit RoutingStats(int64_t num_experts = 0) : num_experts_(num_experts) {}

  // Collection is off by default: routing costs nothing extra in training or streaming.
  void enable(bool on);
  bool enabled() const { return enabled_; }
  void reset();
  // ids: any shape of expert ids; weights: the router weights of those ids (same shape).
  void add(const torch::Tensor& ids, const torch::Tensor& weights, int64_t tokens);
  RoutingSummary summary() const;

 private:
  int64_t num_experts_;
  bool enabled_ = false;
  int64_t tokens_ = 0;
  torch::Tensor weight_;  // [N] double, accumulated router weight
  torch::Tensor hits_;    // [N] int64, retrievals
};

}  // namespace trecvit

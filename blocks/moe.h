#pragma once
// Top-k softmax mixture of experts with the Switch Transformer load-balancing loss:
//   p = softmax(x W_r) (fp32), the k largest p pick the experts; gates are those p renormalised
//   over the k (GShard / Mixtral) when k > 1, the raw p when k = 1 (Switch).
//   aux = alpha * E * sum_e f_e P_e,  f_e = fraction of the routed slots sent to e,
//   P_e = mean router probability of e (training forwards only).
// Experts are D -> G -> D GELU MLPs without biases (expert_mlps: dropless dispatch).
#include <torch/torch.h>

#include "blocks/channel_mixer.h"

namespace trecvit {

struct MoEOptions {
  MoEOptions(int64_t dim, int64_t num_experts, int64_t expert_size)
      : dim_(dim), num_experts_(num_experts), expert_size_(expert_size) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(int64_t, expert_size);
  TORCH_ARG(int64_t, topk) = 2;
  TORCH_ARG(double, aux_weight) = 0.01;  // Switch alpha
};

ChannelMixerType moe_mixer_type();

class MoEImpl : public ChannelMixerModule<MoEImpl> {
 public:
  explicit MoEImpl(const MoEOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor aux_loss() const override { return aux_; }
  MixerCost cost() const override;
  std::string type() const override { return "moe"; }
  RoutingStats* routing_stats() override { return &stats_; }

  MoEOptions options;
  torch::Tensor router;  // [D, E]
  torch::Tensor w1, w2;  // [E, D, G], [E, G, D]

 private:
  torch::Tensor aux_;
  RoutingStats stats_;
};
TORCH_MODULE(MoE);

}  // namespace trecvit

#pragma once
// sigma-MoE (Csordas, Irie, Schmidhuber 2023, "Approximating Two-Layer Feedforward Networks"):
//   s = sigmoid(x W3);  y = sum_{e in TopK(s)} s_e * W2_e ReLU(W1_e x)      (no renormalisation)
// Expert dropout (training): each (token, expert) is dropped with probability p before the
// top-K; a dropped expert that still gets picked (fewer than K survivors) contributes nothing.
// Regulariser (training forwards): aux = weight * sum_e pbar_e log pbar_e, pbar = the batch mean
// of softmax(x W3): minimising it maximises the entropy of the average routing.
#include <torch/torch.h>

#include "blocks/channel_mixer.h"

namespace trecvit {

struct SigmaMoEOptions {
  SigmaMoEOptions(int64_t dim, int64_t num_experts, int64_t expert_size)
      : dim_(dim), num_experts_(num_experts), expert_size_(expert_size) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(int64_t, expert_size);  // G = 128 in the paper
  TORCH_ARG(int64_t, topk) = 4;
  TORCH_ARG(double, aux_weight) = 1e-3;
  TORCH_ARG(double, expert_dropout) = 0.0;
};

ChannelMixerType sigma_moe_mixer_type();

class SigmaMoEImpl : public ChannelMixerModule<SigmaMoEImpl> {
 public:
  explicit SigmaMoEImpl(const SigmaMoEOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor aux_loss() const override { return aux_; }
  MixerCost cost() const override;
  std::string type() const override { return "sigma_moe"; }
  RoutingStats* routing_stats() override { return &stats_; }

  SigmaMoEOptions options;
  torch::Tensor router;  // W3 [D, E]
  torch::Tensor w1, w2;  // [E, D, G], [E, G, D]

 private:
  torch::Tensor aux_;
  RoutingStats stats_;
};
TORCH_MODULE(SigmaMoE);

}  // namespace trecvit

#pragma once
// PEER, Parameter Efficient Expert Retrieval (He 2024, "Mixture of A Million Experts"):
//   f(x) = sum_heads sum_{i in top-k} g_i(x) act(u_i . x) v_i
// N = n^2 single-neuron experts (u_i, v_i in R^D, no biases) retrieved per head with product
// keys; g = softmax over each head's k scores (fp32). The router is a ProductKeyRouter, the
// expert stage the fused single_neuron_experts (no [tokens, h, k, D] tensor, sparse backward).
//
// Query BatchNorm (the paper's default) normalises with batch statistics in training, which
// mixes tokens across time: use eval mode for streaming, or query_norm "layer" (causal-safe).
#include <torch/torch.h>

#include "blocks/channel_mixer.h"
#include "blocks/expert_lookup.h"
#include "blocks/product_keys.h"

namespace trecvit {

// Defaults: the paper's 1024^2 experts, 8 heads, top-16, d_k 128.
struct PEEROptions {
  PEEROptions(int64_t dim, int64_t num_experts = 1024 * 1024) : dim_(dim), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_experts);  // N = n^2
  TRECVIT_PRODUCT_KEY_ARGS(8, 16, 128);
  TORCH_ARG(std::string, activation) = "gelu";  // gelu (tanh form) | relu
  TORCH_ARG(bool, sparse_grad) = false;  // row-sparse table gradients (step them with SparseRowAdam)
};

ChannelMixerType peer_mixer_type();

class PEERImpl : public ChannelMixerModule<PEERImpl> {
 public:
  explicit PEERImpl(const PEEROptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) override;
  MixerCost cost() const override;
  std::string type() const override { return "peer"; }
  RoutingStats* routing_stats() override { return &stats_; }
  std::vector<torch::Tensor> sparse_grad_parameters() const override;

  // Tensor bytes a forward+backward of `tokens` tokens needs beyond the parameters, an upper
  // bound for this implementation (the memory test holds it to it).
  int64_t train_working_bytes(int64_t tokens) const;

  PEEROptions options;
  ProductKeyRouter router{nullptr};
  torch::Tensor up, down;  // [N, D]: u_i and v_i

 private:
  RoutingStats stats_;
};
TORCH_MODULE(PEER);

}  // namespace trecvit

#pragma once
// PKM, product-key memory (Lample et al. 2019, "Large Memory Layers with Product Keys"):
//   q = Norm(Linear(x)) per head, product-key top-k, softmax over each head's k scores (fp32),
//   y = sum_heads sum_k g * values[id]      (one value table [N, D] shared by the heads)
// The value read is the fused weighted_row_sum (an embedding-bag sum with a sparse backward).
#include <torch/torch.h>

#include "blocks/channel_mixer.h"
#include "blocks/product_keys.h"

namespace trecvit {

// Defaults: XLM's 512^2 slots, 4 heads, knn 32, d_k 256.
struct PKMOptions {
  PKMOptions(int64_t dim, int64_t num_slots = 512 * 512) : dim_(dim), num_slots_(num_slots) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_slots);  // N = n^2 memory slots ("num_experts" in a config)
  TRECVIT_PRODUCT_KEY_ARGS(4, 32, 256);
  TORCH_ARG(bool, sparse_grad) = false;
};

ChannelMixerType pkm_mixer_type();

class PKMImpl : public ChannelMixerModule<PKMImpl> {
 public:
  explicit PKMImpl(const PKMOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) override;
  MixerCost cost() const override;
  std::string type() const override { return "pkm"; }
  RoutingStats* routing_stats() override { return &stats_; }
  std::vector<torch::Tensor> sparse_grad_parameters() const override;

  PKMOptions options;
  ProductKeyRouter router{nullptr};
  torch::Tensor values;  // [N, D]

 private:
  RoutingStats stats_;
};
TORCH_MODULE(PKM);

}  // namespace trecvit

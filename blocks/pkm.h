#pragma once
// PKM, product-key memory (Lample et al. 2019, "Large Memory Layers with Product Keys"):
//   q = Norm(Linear(x)) per head, product-key top-k, softmax over each head's k scores (fp32),
//   y = sum_heads sum_k g * values[id]      (one value table [N, D] shared by the heads)
// The value read is the fused weighted_row_sum (an embedding-bag sum with a sparse backward).
#include <torch/torch.h>

#include "blocks/channel_mixer.h"
#include "blocks/product_keys.h"

namespace trecvit {

struct PKMOptions {
  PKMOptions(int64_t dim, int64_t num_slots) : dim_(dim), num_slots_(num_slots) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_slots);  // N = n^2 memory slots
  TORCH_ARG(int64_t, heads) = 4;
  TORCH_ARG(int64_t, topk) = 32;
  TORCH_ARG(int64_t, half_topk) = 0;
  TORCH_ARG(int64_t, key_dim) = 256;
  TORCH_ARG(std::string, query_norm) = "batch";
  TORCH_ARG(int64_t, chunk_tokens) = 0;
  TORCH_ARG(bool, sparse_grad) = false;
};

PKMOptions pkm_options(const ChannelMixerOptions& resolved, int64_t dim);

class PKMImpl : public ChannelMixerImpl {
 public:
  explicit PKMImpl(const PKMOptions& options);
  void reset();
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

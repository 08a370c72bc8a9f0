#pragma once
// Multi-head self-attention over the tokens of one frame (Flax MultiHeadDotProductAttention:
// biases on q, k, v and out; logits scaled by 1/sqrt(head_dim); softmax in fp32).
#include <torch/torch.h>

namespace trecvit {

struct SpatialAttentionOptions {
  SpatialAttentionOptions(int64_t dim, int64_t num_heads) : dim_(dim), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_heads);
};

class SpatialAttentionImpl : public torch::nn::Cloneable<SpatialAttentionImpl> {
 public:
  explicit SpatialAttentionImpl(const SpatialAttentionOptions& options);
  void reset() override;

  // x: [B, N, T, D] in the backbone's token-major layout (or [B, N, D]); attention mixes the
  // N tokens of each (b, t) and never crosses frames.
  torch::Tensor forward(const torch::Tensor& x);

  SpatialAttentionOptions options;
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, out{nullptr};
};
TORCH_MODULE(SpatialAttention);

// Softmax attention of q, k, v [B, N, T, D] (the projections, token-major) over the N tokens of
// each (b, t), in num_heads heads of D / num_heads; returns [B, N, T, D] before the out projection.
// On the CPU in float or double this is one loop per (b, t, head) with its own backward
// (blocks/attention_math.h); elsewhere the tensor-op form below.
torch::Tensor spatial_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                int64_t num_heads);
// The same with LibTorch's batched matmuls and softmax: the reference the loop is tested against.
torch::Tensor spatial_attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          int64_t num_heads);

}  // namespace trecvit

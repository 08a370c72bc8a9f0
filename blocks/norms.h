#pragma once
// Normalisations and activations exactly as the released TRecViT/RecurrentGemma code.
#include <torch/torch.h>

#include "blocks/gelu.h"

namespace trecvit {

// Flax's LayerNorm: eps 1e-6, not PyTorch's 1e-5.
inline torch::nn::LayerNorm make_layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6));
}

struct RMSNormOptions {
  RMSNormOptions(int64_t dim) : dim_(dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(double, eps) = 1e-6;
};

// y = x * rsqrt(mean(x^2) + eps) * (1 + scale), scale initialised to 0. On CPU in float or double
// it runs as one fused pass forward and one backward (saving x and one rstd per row, not the
// four temporaries autograd would keep); elsewhere as rms_norm_reference. Its backward is not
// itself differentiable (no double backward).
class RMSNormImpl : public torch::nn::Cloneable<RMSNormImpl> {
 public:
  explicit RMSNormImpl(const RMSNormOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  RMSNormOptions options;
  torch::Tensor scale;
};
TORCH_MODULE(RMSNorm);

// The same norm in tensor ops: the fused path's reference in tests, and its fallback.
torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& scale, double eps);

}  // namespace trecvit

#pragma once
// One TRecViT layer over tokens in the backbone's token-major layout x: [B, N, T, D]
// (N spatial tokens incl. CLS, T frames):
//   1. temporal: every token's time series, weights shared across tokens
//        x = x + RecurrentBlock(RMSNorm(x))                  viewed as [B*N, T, D], no copy
//   2. spatial: a pre-LN ViT block within each frame
//        x = x + MHSA(LN(x));  x = x + ChannelMixer(LN(x))
// Keeping time next to the channels makes the temporal view free; attention does its
// usual head transpose, so the layer needs no extra reshuffling copies.
#include <torch/torch.h>

#include "blocks/attention.h"
#include "blocks/channel_mixer.h"
#include "blocks/norms.h"
#include "blocks/recurrent_block.h"

namespace trecvit {

struct TRecViTLayerOptions {
  TRecViTLayerOptions(int64_t dim, int64_t num_heads) : dim_(dim), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_heads);
  TORCH_ARG(int64_t, lru_width) = 0;  // 0: 2 * dim
  TORCH_ARG(int64_t, lru_heads) = 0;  // 0: num_heads
  TORCH_ARG(int64_t, conv_width) = 4;
  TORCH_ARG(double, min_rad) = 0.5;
  TORCH_ARG(double, final_w_init_variance_scale) = 1.0;
  TORCH_ARG(ChannelMixerOptions, channel_mixer);
  TORCH_ARG(int64_t, mlp_dim) = 0;  // the model's dense width, for mixer defaults (0: 4 * dim)
};

class TRecViTLayerImpl : public torch::nn::Cloneable<TRecViTLayerImpl> {
 public:
  explicit TRecViTLayerImpl(const TRecViTLayerOptions& options);
  void reset() override;

  // x: [B, N, T, D]. states: nullptr (offline, all sequences start at t = 0) or the
  // layer's streaming state for the B*N token series; reset: [B*N] bool.
  torch::Tensor forward(const torch::Tensor& x, RecurrentState* state = nullptr, const torch::Tensor& reset = {});

  TRecViTLayerOptions options;
  RMSNorm temporal_pre_norm{nullptr};
  RecurrentBlock recurrent_block{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  SpatialAttention attention{nullptr};
  std::shared_ptr<ChannelMixerImpl> mixer;
};
TORCH_MODULE(TRecViTLayer);

}  // namespace trecvit

#include "blocks/trecvit_layer.h"

namespace trecvit {

TRecViTLayerImpl::TRecViTLayerImpl(const TRecViTLayerOptions& options_) : options(options_) { reset(); }

void TRecViTLayerImpl::reset() {
  const int64_t D = options.dim();
  const int64_t L = options.lru_width() > 0 ? options.lru_width() : 2 * D;
  const int64_t lru_heads = options.lru_heads() > 0 ? options.lru_heads() : options.num_heads();
  temporal_pre_norm = register_module("temporal_pre_norm", RMSNorm(RMSNormOptions(D)));
  recurrent_block = register_module(
      "recurrent_block", RecurrentBlock(RecurrentBlockOptions(D, L, lru_heads)
                                            .conv_width(options.conv_width())
                                            .min_rad(options.min_rad())
                                            .final_w_init_variance_scale(options.final_w_init_variance_scale())));
  norm1 = register_module("norm1", make_layer_norm(D));
  attention = register_module("attention", SpatialAttention(SpatialAttentionOptions(D, options.num_heads())));
  norm2 = register_module("norm2", make_layer_norm(D));
  mixer = make_channel_mixer(options.channel_mixer(), D, options.mlp_dim());
  register_module("mixer", std::shared_ptr<torch::nn::Module>(mixer, &mixer->module()));
}

torch::Tensor TRecViTLayerImpl::forward(const torch::Tensor& x, RecurrentState* state, const torch::Tensor& reset) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) == options.dim(), "TRecViTLayer: expected [B, N, T, ", options.dim(),
              "], got ", x.sizes());
  const int64_t B = x.size(0), N = x.size(1), T = x.size(2), D = x.size(3);
  auto series = x.reshape({B * N, T, D});
  series = series + recurrent_block->forward(temporal_pre_norm(series), state, reset);
  auto y = series.view({B, N, T, D});
  y = y + attention(norm1(y));
  y = y + mixer->forward(norm2(y));
  return y;
}

}  // namespace trecvit

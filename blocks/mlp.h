#pragma once
// The ViT MLP block (big_vision MlpBlock): Dense -> GELU(tanh) -> Dense, D -> hidden -> D.
#include <torch/torch.h>

#include "blocks/channel_mixer.h"

namespace trecvit {

struct MLPOptions {
  MLPOptions(int64_t dim, int64_t hidden) : dim_(dim), hidden_(hidden) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, hidden);  // 4 * dim in ViT
};

ChannelMixerType mlp_mixer_type();

class MLPImpl : public ChannelMixerModule<MLPImpl> {
 public:
  explicit MLPImpl(const MLPOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) override;
  MixerCost cost() const override;
  std::string type() const override { return "mlp"; }

  MLPOptions options;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};  // Flax Dense_0, Dense_1
};
TORCH_MODULE(MLP);

}  // namespace trecvit

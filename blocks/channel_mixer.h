#pragma once
// The channel-mixing slot of a TRecViT layer. The dense MLP fills it by default; sparse
// mixers (PEER, PKM, MoE) implement the same interface and plug in through the factory.
#include <torch/torch.h>

#include <memory>
#include <string>

namespace trecvit {

// Honest cost accounting for PEER-vs-MLP comparisons (per token).
struct MixerCost {
  int64_t params_total = 0;
  int64_t params_active = 0;  // parameters touched by one token
  int64_t flops_router = 0;   // query, key scoring, top-k (0 for dense)
  int64_t flops_experts = 0;  // the value computation proper
  int64_t state_bytes = 0;    // per-stream state in streaming (0: stateless)
};

class ChannelMixerImpl : public torch::nn::Module {
 public:
  // [..., D] -> [..., D], token-wise.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // Auxiliary training loss of the last forward (load balancing, entropy), or undefined.
  virtual torch::Tensor aux_loss() const { return {}; }
  virtual MixerCost cost() const = 0;
  virtual std::string type() const = 0;
};

// What a config says about a mixer. Fields a mixer does not use are ignored by it.
struct ChannelMixerOptions {
  std::string type = "mlp";
  int64_t hidden = 0;  // mlp: hidden width (0: the model's mlp_dim)
};

std::shared_ptr<ChannelMixerImpl> make_channel_mixer(const ChannelMixerOptions& options, int64_t dim);

}  // namespace trecvit

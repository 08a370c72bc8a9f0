#pragma once
// The channel-mixing slot of a TRecViT layer. The dense MLP fills it by default; sparse
// mixers (PEER, PKM, MoE, sigma-MoE) implement the same interface and plug in through the factory.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "blocks/routing_stats.h"

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
  // Routing statistics of a sparse mixer (nullptr for dense ones); see routing_stats.h.
  virtual RoutingStats* routing_stats() { return nullptr; }
  // Parameters that receive row-sparse gradients (sparse_grad): step them with SparseRowAdam.
  virtual std::vector<torch::Tensor> sparse_grad_parameters() const { return {}; }
};

// What a config says about a mixer. Fields a mixer does not use are ignored by it; 0, "" and
// negative sentinels mean "the type's default" (resolve_channel_mixer fills them in).
struct ChannelMixerOptions {
  ChannelMixerOptions() = default;
  ChannelMixerOptions(std::string type_, int64_t hidden_ = 0) : type(std::move(type_)), hidden(hidden_) {}
  std::string type = "mlp";  // mlp | peer | pkm | moe | sigma_moe
  int64_t hidden = 0;        // mlp: hidden width (0: the model's mlp_dim)
  int64_t num_experts = 0;   // peer, pkm: N = n^2 (product keys); moe, sigma_moe: E
  int64_t heads = 0;         // peer, pkm: retrieval heads h
  int64_t topk = 0;          // peer, pkm: k per head; moe, sigma_moe: experts per token
  int64_t half_topk = 0;     // peer, pkm: top-k kept per product-key half (>= topk; 0: topk)
  int64_t key_dim = 0;       // peer, pkm: query width d_k per head (even)
  int64_t expert_size = 0;   // moe, sigma_moe: hidden units per expert
  std::string activation;    // peer: gelu (tanh form) | relu
  std::string query_norm;    // peer, pkm: batch | layer | none
  int64_t chunk_tokens = 0;  // peer, pkm: tokens per sub-key scoring chunk (0: auto)
  bool sparse_grad = false;  // peer, pkm: row-sparse gradients for the expert/value tables
  double aux_weight = -1;    // moe: Switch balancing alpha; sigma_moe: entropy weight
  double expert_dropout = -1;  // sigma_moe: probability of dropping an expert before top-K
};

// Fills the type's defaults. mlp_dim is the model's dense MLP width (the reference size for
// parameter-matched MoE defaults).
ChannelMixerOptions resolve_channel_mixer(ChannelMixerOptions options, int64_t mlp_dim);

// {field, reason} of the first invalid field of resolved options ({"", ""} when valid).
std::pair<std::string, std::string> channel_mixer_error(const ChannelMixerOptions& options, int64_t dim);

// The fields a type accepts in a config ("type" included).
const std::vector<std::string>& channel_mixer_fields(const std::string& type);
const std::vector<std::string>& channel_mixer_types();

std::shared_ptr<ChannelMixerImpl> make_channel_mixer(const ChannelMixerOptions& options, int64_t dim);

}  // namespace trecvit

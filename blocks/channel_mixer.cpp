#include "blocks/channel_mixer.h"

#include <cmath>

#include "blocks/mlp.h"
#include "blocks/moe.h"
#include "blocks/peer.h"
#include "blocks/pkm.h"
#include "blocks/sigma_moe.h"

namespace trecvit {

const std::vector<std::string>& channel_mixer_types() {
  static const std::vector<std::string> types = {"mlp", "peer", "pkm", "moe", "sigma_moe"};
  return types;
}

const std::vector<std::string>& channel_mixer_fields(const std::string& type) {
  static const std::vector<std::string> mlp = {"type", "hidden"};
  static const std::vector<std::string> peer = {"type",       "num_experts", "heads",        "topk",
                                                "half_topk",  "key_dim",     "activation",   "query_norm",
                                                "chunk_tokens", "sparse_grad"};
  static const std::vector<std::string> pkm = {"type",    "num_experts", "heads",        "topk",       "half_topk",
                                               "key_dim", "query_norm",  "chunk_tokens", "sparse_grad"};
  static const std::vector<std::string> moe = {"type", "num_experts", "topk", "expert_size", "aux_weight"};
  static const std::vector<std::string> sigma = {"type",        "num_experts", "topk",
                                                 "expert_size", "aux_weight",  "expert_dropout"};
  static const std::vector<std::string> none = {"type"};
  if (type == "mlp") return mlp;
  if (type == "peer") return peer;
  if (type == "pkm") return pkm;
  if (type == "moe") return moe;
  if (type == "sigma_moe") return sigma;
  return none;
}

ChannelMixerOptions resolve_channel_mixer(ChannelMixerOptions o, int64_t mlp_dim) {
  auto set = [](int64_t& v, int64_t d) {
    if (v == 0) v = d;
  };
  if (o.type == "peer" || o.type == "pkm") {
    const bool peer = o.type == "peer";
    // PEER: the paper's 1024^2 experts, 8 heads, top-16. PKM: XLM's 512^2 slots, 4 heads, knn 32.
    set(o.num_experts, peer ? 1024 * 1024 : 512 * 512);
    set(o.heads, peer ? 8 : 4);
    set(o.topk, peer ? 16 : 32);
    set(o.half_topk, o.topk);
    set(o.key_dim, peer ? 128 : 256);
    if (peer && o.activation.empty()) o.activation = "gelu";
    if (o.query_norm.empty()) o.query_norm = "batch";
  } else if (o.type == "moe") {
    set(o.num_experts, 8);
    set(o.topk, 2);
    set(o.expert_size, std::max<int64_t>(1, mlp_dim / o.topk));  // active width = the dense MLP's
    if (o.aux_weight < 0) o.aux_weight = 0.01;
  } else if (o.type == "sigma_moe") {
    set(o.expert_size, 128);
    set(o.topk, 4);
    set(o.num_experts, mlp_dim / o.expert_size);  // parameter-equal to the dense MLP
    if (o.aux_weight < 0) o.aux_weight = 1e-3;
    if (o.expert_dropout < 0) o.expert_dropout = 0;
  }
  return o;
}

std::pair<std::string, std::string> channel_mixer_error(const ChannelMixerOptions& o, int64_t dim) {
  using R = std::pair<std::string, std::string>;
  auto str = [](auto v) { return std::to_string(v); };
  const auto& types = channel_mixer_types();
  if (std::find(types.begin(), types.end(), o.type) == types.end())
    return {"type", "unknown mixer '" + o.type + "' (known: mlp, peer, pkm, moe, sigma_moe)"};
  if (dim <= 0) return {"dim", "the model width must be > 0"};
  if (o.type == "mlp") {
    if (o.hidden <= 0) return {"hidden", "must be > 0 for an mlp mixer, got " + str(o.hidden)};
    return {};
  }
  if (o.num_experts <= 0) return {"num_experts", "must be > 0, got " + str(o.num_experts)};
  if (o.topk <= 0) return {"topk", "must be > 0, got " + str(o.topk)};
  if (o.type == "peer" || o.type == "pkm") {
    const int64_t n = std::llround(std::sqrt(double(o.num_experts)));
    if (n * n != o.num_experts)
      return {"num_experts", "must be a perfect square n^2 (product keys), got " + str(o.num_experts)};
    if (o.heads <= 0) return {"heads", "must be > 0, got " + str(o.heads)};
    if (o.topk > n)
      return {"topk", "must be <= sqrt(num_experts) = " + str(n) + " (top-k per sub-key half), got " + str(o.topk)};
    if (o.half_topk < o.topk)
      return R{"half_topk", "must be >= topk (" + str(o.topk) + "): a smaller per-half top-k misses experts of the "
                            "exact top-k, got " + str(o.half_topk)};
    if (o.half_topk > n) return {"half_topk", "must be <= sqrt(num_experts) = " + str(n) + ", got " + str(o.half_topk)};
    if (o.key_dim <= 0 || o.key_dim % 2)
      return {"key_dim", "must be even and > 0 (two sub-key halves), got " + str(o.key_dim)};
    if (o.query_norm != "batch" && o.query_norm != "layer" && o.query_norm != "none")
      return {"query_norm", "must be \"batch\", \"layer\" or \"none\", got \"" + o.query_norm + "\""};
    if (o.type == "peer" && o.activation != "gelu" && o.activation != "relu")
      return {"activation", "must be \"gelu\" or \"relu\", got \"" + o.activation + "\""};
    if (o.chunk_tokens < 0) return {"chunk_tokens", "must be >= 0 (0: automatic), got " + str(o.chunk_tokens)};
    return {};
  }
  // moe, sigma_moe
  if (o.topk > o.num_experts)
    return {"topk", "must be <= num_experts (" + str(o.num_experts) + "), got " + str(o.topk)};
  if (o.expert_size <= 0) return {"expert_size", "must be > 0, got " + str(o.expert_size)};
  if (!(o.aux_weight >= 0)) return {"aux_weight", "must be >= 0"};
  if (o.type == "sigma_moe" && !(o.expert_dropout >= 0 && o.expert_dropout < 1))
    return {"expert_dropout", "must be in [0, 1)"};
  return {};
}

std::shared_ptr<ChannelMixerImpl> make_channel_mixer(const ChannelMixerOptions& options, int64_t dim) {
  const auto o = resolve_channel_mixer(options, options.hidden > 0 ? options.hidden : 4 * dim);
  const auto [field, reason] = channel_mixer_error(o, dim);
  TORCH_CHECK(field.empty(), "channel_mixer.", field, ": ", reason);
  if (o.type == "mlp") return std::make_shared<MLPImpl>(MLPOptions(dim, o.hidden));
  if (o.type == "peer") return std::make_shared<PEERImpl>(peer_options(o, dim));
  if (o.type == "pkm") return std::make_shared<PKMImpl>(pkm_options(o, dim));
  if (o.type == "moe") return std::make_shared<MoEImpl>(moe_options(o, dim));
  return std::make_shared<SigmaMoEImpl>(sigma_moe_options(o, dim));
}

}  // namespace trecvit

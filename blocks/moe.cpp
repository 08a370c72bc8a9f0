#include "blocks/moe.h"

#include <cmath>

#include "blocks/expert_mlps.h"

namespace trecvit {

MoEOptions moe_options(const ChannelMixerOptions& o, int64_t dim) {
  return MoEOptions(dim, o.num_experts, o.expert_size).topk(o.topk).aux_weight(o.aux_weight);
}

MoEImpl::MoEImpl(const MoEOptions& options_) : options(options_), stats_(options_.num_experts()) { reset(); }

void MoEImpl::reset() {
  const auto& o = options;
  TORCH_CHECK(o.topk() >= 1 && o.topk() <= o.num_experts(), "channel_mixer.topk: must be in [1, num_experts = ",
              o.num_experts(), "], got ", o.topk());
  const int64_t D = o.dim(), E = o.num_experts(), G = o.expert_size();
  router = register_parameter("router", torch::randn({D, E}) / std::sqrt(double(D)));
  w1 = register_parameter("w1", torch::randn({E, D, G}) / std::sqrt(double(D)));
  w2 = register_parameter("w2", torch::randn({E, G, D}) / std::sqrt(double(G)));
}

torch::Tensor MoEImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(-1) == options.dim(), "MoE: expected [..., ", options.dim(), "], got ", x.sizes());
  const int64_t E = options.num_experts(), k = options.topk();
  auto flat = x.reshape({-1, options.dim()});
  const int64_t M = flat.size(0);
  auto logits = flat.mm(router);
  auto probs = logits.scalar_type() == torch::kDouble ? torch::softmax(logits, -1)
                                                      : torch::softmax(logits.to(torch::kFloat), -1);
  auto [top, ids] = probs.topk(k, -1);
  auto gates = (k > 1 ? top / top.sum(-1, true) : top).to(x.scalar_type());
  if (is_training() && M > 0) {
    auto f = torch::bincount(ids.reshape(-1), {}, E).to(probs.scalar_type()) / double(M * k);
    aux_ = (options.aux_weight() * E * (f * probs.mean(0)).sum()).to(x.scalar_type());
  } else {
    aux_ = torch::Tensor();
  }
  stats_.add(ids, gates, M);
  return expert_mlps(flat, ids, gates, w1, w2, ExpertActivation::kGelu).view(x.sizes());
}

MixerCost MoEImpl::cost() const {
  const int64_t D = options.dim(), E = options.num_experts(), G = options.expert_size(), k = options.topk();
  MixerCost c;
  c.params_total = D * E + 2 * E * D * G;
  c.params_active = D * E + 2 * k * D * G;
  c.flops_router = 2 * D * E + E;  // logits, then one comparison per expert for the top-k
  c.flops_experts = 4 * k * D * G;
  return c;
}

}  // namespace trecvit

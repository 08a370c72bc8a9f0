#include "blocks/moe.h"

#include <cmath>

#include "blocks/expert_mlps.h"

namespace trecvit {

ChannelMixerType moe_mixer_type() {
  using O = MoEOptions;
  return mixer_type<MoEImpl, O>(
      "moe", "Top-k softmax mixture of GELU MLP experts with the Switch load-balancing loss.",
      FieldTable<O>({TRECVIT_ARG_FIELD(O, num_experts, "experts E", Check::at_least(1)),
                     TRECVIT_ARG_FIELD(O, topk, "experts per token k", Check::at_least(1)),
                     TRECVIT_ARG_FIELD(O, expert_size, "hidden units per expert G (default: the model's mlp_dim / k, "
                                                       "so the active width equals the dense MLP's)", Check::at_least(1)),
                     TRECVIT_ARG_FIELD(O, aux_weight, "Switch balancing weight alpha", Check::at_least(0))}),
      [](const MixerContext& c) { return O(c.dim, 8, 0); },
      [](O& o, const nlohmann::json& given, const MixerContext& c) {
        if (!given.contains("expert_size")) o.expert_size(std::max<int64_t>(1, c.mlp_dim / o.topk()));
      },
      [](const O& o) -> std::pair<std::string, std::string> {
        if (o.topk() > o.num_experts())
          return {"topk", "must be <= num_experts (" + std::to_string(o.num_experts()) + "), got " + std::to_string(o.topk())};
        return {};
      });
}

MoEImpl::MoEImpl(const MoEOptions& options_) : options(options_) { reset(); }

void MoEImpl::reset() {
  stats_ = RoutingStats(options.num_experts());  // a clone collects its own statistics
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

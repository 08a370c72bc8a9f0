#include "blocks/sigma_moe.h"

#include <cmath>

#include "blocks/expert_mlps.h"

namespace trecvit {

ChannelMixerType sigma_moe_mixer_type() {
  using O = SigmaMoEOptions;
  return mixer_type<SigmaMoEImpl, O>(
      "sigma_moe", "sigma-MoE (Csordas et al. 2023): sigmoid-gated top-K ReLU experts with an entropy regulariser.",
      FieldTable<O>({TRECVIT_ARG_FIELD(O, num_experts, "experts E (default: mlp_dim / expert_size, parameter-equal "
                                                       "to the dense MLP)", Check::at_least(1)),
                     TRECVIT_ARG_FIELD(O, topk, "experts per token K", Check::at_least(1)),
                     TRECVIT_ARG_FIELD(O, expert_size, "hidden units per expert G", Check::at_least(1)),
                     TRECVIT_ARG_FIELD(O, aux_weight, "entropy regulariser weight", Check::at_least(0)),
                     TRECVIT_ARG_FIELD(O, expert_dropout, "probability of dropping an expert before the top-K",
                                       Check::in_half_open(0, 1))}),
      [](const MixerContext& c) { return O(c.dim, 0, 128); },
      [](O& o, const nlohmann::json& given, const MixerContext& c) {
        if (!given.contains("num_experts")) o.num_experts(c.mlp_dim / o.expert_size());
      },
      [](const O& o) -> std::pair<std::string, std::string> {
        if (o.num_experts() <= 0) return {"num_experts", "must be > 0, got " + std::to_string(o.num_experts())};
        if (o.topk() > o.num_experts())
          return {"topk", "must be <= num_experts (" + std::to_string(o.num_experts()) + "), got " + std::to_string(o.topk())};
        return {};
      });
}

SigmaMoEImpl::SigmaMoEImpl(const SigmaMoEOptions& options_) : options(options_) {
  reset();
}

void SigmaMoEImpl::reset() {
  stats_ = RoutingStats(options.num_experts());  // a clone collects its own statistics
  const auto& o = options;
  TORCH_CHECK(o.topk() >= 1 && o.topk() <= o.num_experts(), "channel_mixer.topk: must be in [1, num_experts = ",
              o.num_experts(), "], got ", o.topk());
  TORCH_CHECK(o.expert_dropout() >= 0 && o.expert_dropout() < 1, "channel_mixer.expert_dropout: must be in [0, 1)");
  const int64_t D = o.dim(), E = o.num_experts(), G = o.expert_size();
  // The paper's scaling: the K selected experts act together like one MLP of width K G.
  router = register_parameter("router", torch::randn({D, E}) / std::sqrt(double(D)));
  w1 = register_parameter("w1", torch::randn({E, D, G}) / std::sqrt(double(D)));
  w2 = register_parameter("w2", torch::randn({E, G, D}) / std::sqrt(double(G * o.topk())));
}

torch::Tensor SigmaMoEImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(-1) == options.dim(), "sigma-MoE: expected [..., ", options.dim(), "], got ", x.sizes());
  auto flat = x.reshape({-1, options.dim()});
  const int64_t M = flat.size(0);
  auto logits = flat.mm(router);
  auto sel = torch::sigmoid(logits);
  torch::Tensor ids, keep;
  {
    torch::NoGradGuard no_grad;
    auto choice = sel.detach();
    if (is_training() && options.expert_dropout() > 0) {
      keep = torch::rand_like(choice) >= options.expert_dropout();
      choice = choice.masked_fill(keep.logical_not(), -1.0);  // below any sigmoid: picked last
    }
    ids = std::get<1>(choice.topk(options.topk(), -1));
  }
  auto gates = sel.gather(1, ids);
  if (keep.defined()) gates = gates * keep.gather(1, ids).to(gates.scalar_type());
  if (is_training() && M > 0) {
    auto p = logits.scalar_type() == torch::kDouble ? torch::softmax(logits, -1)
                                                    : torch::softmax(logits.to(torch::kFloat), -1);
    auto pbar = p.mean(0);
    aux_ = (options.aux_weight() * (pbar * pbar.clamp_min(1e-30).log()).sum()).to(x.scalar_type());
  } else {
    aux_ = torch::Tensor();
  }
  stats_.add(ids, gates, M);
  return expert_mlps(flat, ids, gates, w1, w2, ExpertActivation::kRelu).view(x.sizes());
}

MixerCost SigmaMoEImpl::cost() const {
  const int64_t D = options.dim(), E = options.num_experts(), G = options.expert_size(), k = options.topk();
  MixerCost c;
  c.params_total = D * E + 2 * E * D * G;
  c.params_active = D * E + 2 * k * D * G;
  c.flops_router = 2 * D * E + E;
  c.flops_experts = 4 * k * D * G;
  return c;
}

}  // namespace trecvit

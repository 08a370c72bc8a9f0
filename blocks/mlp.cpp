#include "blocks/mlp.h"

#include "blocks/norms.h"

namespace trecvit {

ChannelMixerType mlp_mixer_type() {
  return mixer_type<MLPImpl, MLPOptions>(
      "mlp", "The dense ViT MLP: Dense -> GELU (tanh) -> Dense.",
      FieldTable<MLPOptions>({TRECVIT_ARG_FIELD(MLPOptions, hidden, "hidden width (default: the model's mlp_dim)",
                                                Check::at_least(1))}),
      [](const MixerContext& c) { return MLPOptions(c.dim, c.mlp_dim); }, nullptr, nullptr);
}

MLPImpl::MLPImpl(const MLPOptions& options_) : options(options_) { reset(); }

void MLPImpl::reset() {
  fc1 = register_module("fc1", torch::nn::Linear(options.dim(), options.hidden()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden(), options.dim()));
  torch::NoGradGuard no_grad;
  for (auto* lin : {&fc1, &fc2}) {
    torch::nn::init::xavier_uniform_((*lin)->weight);
    (*lin)->bias.normal_(0, 1e-6);
  }
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) { return fc2(gelu_tanh(fc1(x))); }

MixerCost MLPImpl::cost() const {
  const int64_t D = options.dim(), Hd = options.hidden();
  MixerCost c;
  c.params_total = 2 * D * Hd + Hd + D;
  c.params_active = c.params_total;
  c.flops_router = 0;
  c.flops_experts = 4 * D * Hd;
  return c;
}

}  // namespace trecvit

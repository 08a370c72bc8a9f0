#include "blocks/recurrent_block.h"

#include <cmath>

#include "blocks/norms.h"

namespace trecvit {

RecurrentBlockImpl::RecurrentBlockImpl(const RecurrentBlockOptions& options_) : options(options_) { reset(); }

void RecurrentBlockImpl::reset() {
  const int64_t D = options.width(), L = options.lru_width();
  linear_y = register_module("linear_y", torch::nn::Linear(D, L));
  linear_x = register_module("linear_x", torch::nn::Linear(D, L));
  linear_out = register_module("linear_out", torch::nn::Linear(L, D));
  conv_1d = register_module("conv_1d", Conv1D(Conv1DOptions(L, options.conv_width())));
  rg_lru = register_module("rg_lru", RGLRU(RGLRUOptions(L, options.num_heads()).min_rad(options.min_rad())));
  // variance_scaling(fan_in, normal) as in RecurrentGemma; biases start at zero.
  torch::NoGradGuard no_grad;
  linear_y->weight.normal_(0, std::sqrt(1.0 / D));
  linear_x->weight.normal_(0, std::sqrt(1.0 / D));
  linear_out->weight.normal_(0, std::sqrt(options.final_w_init_variance_scale() / L));
  for (auto* lin : {&linear_y, &linear_x, &linear_out}) (*lin)->bias.zero_();
}

RecurrentState RecurrentBlockImpl::initial_state(int64_t batch, const torch::TensorOptions& opts) const {
  const int64_t L = options.lru_width(), K = options.conv_width();
  return {torch::zeros({batch, L}, opts), torch::zeros({batch, std::max<int64_t>(K - 1, 0), L}, opts)};
}

torch::Tensor RecurrentBlockImpl::forward(const torch::Tensor& x, RecurrentState* state, const torch::Tensor& reset) {
  auto y = gelu_tanh(linear_y(x));
  auto v = linear_x(x);
  torch::Tensor h;
  if (state) {
    v = conv_1d->forward_stream(v, state->conv_tail);
    h = rg_lru(v, state->h, reset);
    // In place when no graph can hold the old state: the state keeps its buffer across steps.
    auto last = h.select(1, h.size(1) - 1).detach();
    if (torch::GradMode::is_enabled()) state->h = last.clone();
    else state->h.copy_(last);
  } else {
    v = conv_1d(v);
    h = rg_lru(v);
  }
  return linear_out(h * y);
}

}  // namespace trecvit

#include "blocks/rglru_reference.h"

#include "blocks/rglru_scan.h"

namespace trecvit {
namespace {

// sqrt with RecurrentGemma's bounded derivative.
class SqrtBoundDerivative : public torch::autograd::Function<SqrtBoundDerivative> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x) {
    ctx->save_for_backward({x});
    return torch::sqrt(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    auto x = ctx->get_saved_variables()[0];
    const double lo = 1.0 / (4.0 * kRGLRUMaxSqrtGradient * kRGLRUMaxSqrtGradient);
    return {g[0] * 0.5 / torch::sqrt(torch::clamp_min(x, lo))};
  }
};

}  // namespace

std::pair<torch::Tensor, torch::Tensor> split_gate_logits(const torch::Tensor& gates, int64_t B, int64_t T) {
  const int64_t H = gates.size(0), bw = gates.size(3);
  auto to_btl = [&](int64_t which) {
    return gates.select(2, which).permute({1, 0, 2}).reshape({B, T, H * bw});
  };
  return {to_btl(0), to_btl(1)};
}

torch::Tensor rglru_reference(const torch::Tensor& x, const torch::Tensor& gate_x_logits,
                              const torch::Tensor& gate_a_logits, const torch::Tensor& a_param,
                              const torch::Tensor& h0, const torch::Tensor& reset_in) {
  const int64_t B = x.size(0), T = x.size(1);
  auto reset = reset_in.defined() ? reset_in.to(torch::kBool) : torch::ones({B}, torch::kBool);
  auto gate_x = torch::sigmoid(gate_x_logits);
  auto gate_a = torch::sigmoid(gate_a_logits);
  auto log_a = -kRGLRUC * gate_a * torch::softplus(a_param);
  auto a = torch::exp(log_a);
  auto a_square = torch::exp(2 * log_a);
  auto gated_x = x * gate_x;
  auto multiplier = SqrtBoundDerivative::apply(1 - a_square);
  // Position 0 of a reset row: multiplier 1 and a = 0.
  auto is_start = torch::zeros({B, T, 1}, x.options());
  is_start.select(1, 0).copy_(reset.to(x.scalar_type()).view({B, 1}));
  multiplier = is_start + (1 - is_start) * multiplier;
  auto normalized_x = gated_x * multiplier;
  a = a * (1 - is_start);
  auto h = h0.defined() ? h0 : torch::zeros({B, x.size(2)}, x.options());
  std::vector<torch::Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    h = a.select(1, t) * h + normalized_x.select(1, t);
    ys.push_back(h);
  }
  return torch::stack(ys, 1);
}

}  // namespace trecvit

#include "blocks/sparse_row_adam.h"

#include <cmath>

namespace trecvit {

SparseRowAdam::SparseRowAdam(std::vector<torch::Tensor> params, SparseRowAdamOptions options_)
    : options(options_), params_(std::move(params)) {
  for (auto& p : params_) TORCH_CHECK(p.dim() >= 1, "SparseRowAdam: parameters must have a row dimension");
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
}

void SparseRowAdam::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
}

void SparseRowAdam::step() {
  torch::NoGradGuard no_grad;
  ++t_;
  const auto& o = options;
  const double bc1 = 1 - std::pow(o.beta1(), double(t_)), bc2 = 1 - std::pow(o.beta2(), double(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = torch::zeros_like(p);
      exp_avg_sq_[i] = torch::zeros_like(p);
    }
    if (!g.is_sparse()) {  // every row touched: exactly AdamW
      p.mul_(1 - o.lr() * o.weight_decay());
      exp_avg_[i].mul_(o.beta1()).add_(g, 1 - o.beta1());
      exp_avg_sq_[i].mul_(o.beta2()).addcmul_(g, g, 1 - o.beta2());
      auto denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bc2)).add_(o.eps());
      p.addcdiv_(exp_avg_[i], denom, -o.lr() / bc1);
      continue;
    }
    auto sg = g.coalesce();  // duplicate rows (several backward passes) are summed first
    auto rows = sg.indices()[0];
    auto vals = sg.values();
    auto m = exp_avg_[i].index_select(0, rows).mul_(o.beta1()).add_(vals, 1 - o.beta1());
    auto v = exp_avg_sq_[i].index_select(0, rows).mul_(o.beta2()).addcmul_(vals, vals, 1 - o.beta2());
    auto pr = p.index_select(0, rows).mul_(1 - o.lr() * o.weight_decay());
    pr.addcdiv_(m, (v.sqrt() / std::sqrt(bc2)).add_(o.eps()), -o.lr() / bc1);
    exp_avg_[i].index_copy_(0, rows, m);
    exp_avg_sq_[i].index_copy_(0, rows, v);
    p.index_copy_(0, rows, pr);
  }
}

std::vector<torch::Tensor> parameters_except(const std::vector<torch::Tensor>& all,
                                             const std::vector<torch::Tensor>& remove) {
  std::vector<torch::Tensor> out;
  for (auto& p : all) {
    bool drop = false;
    for (auto& r : remove) drop = drop || p.is_same(r);
    if (!drop) out.push_back(p);
  }
  return out;
}

}  // namespace trecvit

#include "train/optim.h"

#include <cmath>
#include <set>

#include <ATen/Parallel.h>

#include "blocks/simd_kernels.h"

namespace trecvit {

bool excluded_from_decay(const std::string& name, const torch::Tensor& p) {
  if (p.dim() <= 1) return true;
  return name == "pos_embedding" || name == "cls";
}

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, double lr, double weight_decay,
                                                const std::vector<torch::Tensor>& skip, double backbone_lr_mult) {
  std::set<const void*> skipped;
  for (auto& t : skip) skipped.insert(t.unsafeGetTensorImpl());
  const bool split = backbone_lr_mult != 1.0;
  // [head?][no decay?]: without a split everything is "head", at lr.
  std::vector<torch::Tensor> groups_of[2][2];
  for (auto& p : model.named_parameters()) {
    if (!p.value().requires_grad() || skipped.count(p.value().unsafeGetTensorImpl())) continue;
    const bool head = !split || p.key().rfind("cls_head.", 0) == 0;
    groups_of[head][excluded_from_decay(p.key(), p.value())].push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (int head = 1; head >= (split ? 0 : 1); --head)
    for (int no_decay = 0; no_decay < 2; ++no_decay)
      groups.emplace_back(groups_of[head][no_decay],
                          std::make_unique<torch::optim::AdamWOptions>(
                              torch::optim::AdamWOptions(head ? lr : lr * backbone_lr_mult).weight_decay(no_decay ? 0 : weight_decay)));
  return std::make_unique<FusedAdamW>(groups, torch::optim::AdamWOptions(lr).weight_decay(weight_decay));
}

namespace {

// One parameter's AdamW update in one pass, in LibTorch's order and precision (its kernels round
// the scalars to float too).
void adamw_pass(float* p, const float* g, float* m, float* v, int64_t n, const detail::AdamWScalars& c) {
  const auto& builds = detail::float_kernels();
  at::parallel_for(0, n, 1 << 15, [&](int64_t i0, int64_t i1) {
    if (builds.empty())
      detail::adamw_loop<float, float>(c, p + i0, g + i0, m + i0, v + i0, i1 - i0);
    else
      builds[0].adamw(c, p + i0, g + i0, m + i0, v + i0, i1 - i0);
  });
}

// Dense contiguous float on the CPU, the parameter, its gradient and both moments alike (a loaded
// state may be anything LibTorch's ops accept).
bool fused_update_applies(const torch::Tensor& p, const torch::Tensor& g, const torch::optim::AdamWParamState& st,
                          bool amsgrad) {
  if (amsgrad) return false;
  for (const auto* t : {&p, &g, &st.exp_avg(), &st.exp_avg_sq()})
    if (!t->defined() || !t->is_cpu() || t->is_sparse() || !t->is_contiguous() || t->scalar_type() != torch::kFloat ||
        t->numel() != p.numel())
      return false;
  return true;
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto& grad = p.grad();
      TORCH_CHECK(!grad.is_sparse(), "AdamW does not support sparse gradients");
      const auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto st = std::make_unique<torch::optim::AdamWParamState>();
        st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (o.amsgrad()) st->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(st)).first;
      }
      auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
      st.step(st.step() + 1);
      const auto [beta1, beta2] = o.betas();
      const double bc1 = 1 - std::pow(beta1, st.step()), bc2 = 1 - std::pow(beta2, st.step());
      const double decay = o.weight_decay() != 0 ? 1 - o.lr() * o.weight_decay() : 1.0;
      if (fused_update_applies(p, grad, st, o.amsgrad())) {
        const detail::AdamWScalars c{float(decay),    float(beta1),           float(beta2),  float(1 - beta1),
                                     float(1 - beta2), float(std::sqrt(bc2)), float(o.eps()), float(-(o.lr() / bc1))};
        adamw_pass(p.data_ptr<float>(), grad.data_ptr<float>(), st.exp_avg().data_ptr<float>(),
                   st.exp_avg_sq().data_ptr<float>(), p.numel(), c);
        continue;
      }
      // LibTorch's tensor ops (double, amsgrad, other devices, strided tensors).
      if (o.weight_decay() != 0) p.mul_(decay);
      st.exp_avg().mul_(beta1).add_(grad, 1 - beta1);
      st.exp_avg_sq().mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      torch::Tensor second = st.exp_avg_sq();
      if (o.amsgrad()) {
        st.max_exp_avg_sq(torch::max(st.max_exp_avg_sq(), st.exp_avg_sq()));
        second = st.max_exp_avg_sq();
      }
      p.addcdiv_(st.exp_avg(), (second.sqrt() / std::sqrt(bc2)).add_(o.eps()), -(o.lr() / bc1));
    }
  }
  return loss;
}

double WarmupCosine::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::min(1.0, double(step - warmup_steps) / double(span));
  const double cosine = 0.5 * (1 + std::cos(M_PI * progress));
  return base_lr * (final_fraction + (1 - final_fraction) * cosine);
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

}  // namespace trecvit

#include "train/optim.h"

#include <cmath>
#include <set>

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
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(lr).weight_decay(weight_decay));
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

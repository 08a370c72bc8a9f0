#include "train/optim.h"

#include <cmath>
#include <set>

namespace trecvit {

bool excluded_from_decay(const std::string& name, const torch::Tensor& p) {
  if (p.dim() <= 1) return true;
  return name == "pos_embedding" || name == "cls";
}

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, double lr, double weight_decay,
                                                const std::vector<torch::Tensor>& skip) {
  std::set<const void*> skipped;
  for (auto& t : skip) skipped.insert(t.unsafeGetTensorImpl());
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.named_parameters()) {
    if (!p.value().requires_grad() || skipped.count(p.value().unsafeGetTensorImpl())) continue;
    (excluded_from_decay(p.key(), p.value()) ? no_decay : decay).push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(lr).weight_decay(weight_decay)));
  groups.emplace_back(no_decay,
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr).weight_decay(0)));
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

#pragma once
// AdamW with the usual decay exclusions, and the warm-up + cosine learning-rate schedule.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace trecvit {

// Parameters that take no weight decay: every 1-D tensor (norm scales, biases, the RG-LRU's
// a_param), the position embedding and the CLS token. Everything else (matrices, conv taps,
// gate blocks) decays.
bool excluded_from_decay(const std::string& name, const torch::Tensor& p);

// torch::optim::AdamW's update, state and checkpoint format, with each dense CPU float
// parameter updated in one pass (decay, both moments, the step) instead of about ten tensor ops
// and two temporaries; anything else (sparse gradients, amsgrad, other devices) takes LibTorch's.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// AdamW (FusedAdamW) with two parameter groups (decay, no decay), four when backbone_lr_mult != 1 (the
// class head's at lr, the backbone's at lr * backbone_lr_mult). `skip` parameters (e.g. expert
// tables updated by a sparse optimizer) and frozen ones (requires_grad off) are left out.
std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, double lr, double weight_decay,
                                                const std::vector<torch::Tensor>& skip = {},
                                                double backbone_lr_mult = 1.0);

struct WarmupCosine {
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double final_fraction = 0.0;  // lr at the end = base_lr * final_fraction
  // Linear warm-up from 0 over warmup_steps, then cosine decay to the final lr.
  double lr_at(int64_t step) const;
};

void set_learning_rate(torch::optim::Optimizer& opt, double lr);

}  // namespace trecvit

#pragma once
// Adam for tables with row-sparse gradients (PEER/PKM with sparse_grad): only the rows that
// received a gradient in a step are read and written, so a step costs O(touched rows * D),
// not O(N * D), and no dense N x D gradient ever exists.
//
// Semantics (the "lazy" Adam of torch.optim.SparseAdam, with AdamW's decoupled decay):
//   for the touched rows only:
//     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//     p = p (1 - lr wd) - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   t counts this optimizer's steps. Untouched rows keep p, m and v unchanged: no momentum
//   drift and NO weight decay for rows not retrieved in the step, so a row is decayed once per
//   step in which it is used (dense AdamW decays every row every step). With dense gradients
//   every row is touched and the update is exactly AdamW's.
#include <torch/torch.h>

#include <vector>

namespace trecvit {

struct SparseRowAdamOptions {
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;
};

class SparseRowAdam {
 public:
  SparseRowAdam(std::vector<torch::Tensor> params, SparseRowAdamOptions options = {});
  void step();
  void zero_grad();
  int64_t steps() const { return t_; }

  SparseRowAdamOptions options;

 private:
  std::vector<torch::Tensor> params_, exp_avg_, exp_avg_sq_;
  int64_t t_ = 0;
};

// `all` without the tensors in `remove` (by identity): the dense parameters for a regular
// optimizer when the sparse-gradient tables go to SparseRowAdam.
std::vector<torch::Tensor> parameters_except(const std::vector<torch::Tensor>& all,
                                             const std::vector<torch::Tensor>& remove);

}  // namespace trecvit

#pragma once
// When a block's hand-written CPU loop (forward and backward) runs instead of its tensor-op form.
#include <torch/torch.h>

namespace trecvit {

// The loops are written for contiguous float or double on the CPU, with the input and the
// block's parameter in the same dtype; anything else (an accelerator, half precision, a mixed
// dtype, an empty input) takes the tensor-op form.
inline bool fused_cpu_kernel_applies(const torch::Tensor& x, const torch::Tensor& param) {
  return x.is_cpu() && x.numel() > 0 && x.scalar_type() == param.scalar_type() &&
         (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble);
}

}  // namespace trecvit

#pragma once
// The RG-LRU recurrence fused into one loop over time, forward and backward.
//
// For sequence b, time t, channel l (i = input gate, r = recurrence gate):
//   i_t = sigmoid(gx_t)            gx, gr: block-diagonal gate logits (from the conv output v)
//   r_t = sigmoid(gr_t)
//   log a_t = -8 r_t softplus(p)
//   a_t = exp(log a_t),  a_t^2 = exp(2 log a_t)
//   h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t v_t)
// At a sequence start (reset), the multiplier is 1 and a_t = 0 (h_{t-1} is ignored).
// The sqrt's backward clamps its input to >= 1/(4 * 1000^2), bounding the gradient by 1000.
// h is accumulated in the input dtype (fp32 for fp32 models, fp64 in gradient checks).
#include <torch/torch.h>

#include "blocks/rglru_math.h"

namespace trecvit {

// v:      [B, T, L] conv output, contiguous
// gates:  [H, B*T, 2, L/H] block-diagonal gate logits (index 0: input gate, 1: recurrence gate),
//         the layout the batched per-head matmul produces, so no transpose is needed
// a_param:[L]
// h0:     [B, L] previous state, or undefined for zeros
// reset:  [B] bool, true where time 0 of this chunk starts a new sequence (undefined: all true)
// returns h: [B, T, L], every hidden state; h[:, -1] is the state to carry on.
torch::Tensor rglru_scan(const torch::Tensor& v, const torch::Tensor& gates, const torch::Tensor& a_param,
                         const torch::Tensor& h0, const torch::Tensor& reset);

// The kernel's constants (rglru_math.h), for the tensor-op reference: the clipped sqrt's gradient
// bound (RecurrentGemma's sqrt_bound_derivative) and c in log a = -c r softplus(p).
constexpr double kRGLRUMaxSqrtGradient = detail::kMaxSqrtGradient;
constexpr double kRGLRUC = detail::kC;

}  // namespace trecvit

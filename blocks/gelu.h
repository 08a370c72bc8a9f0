#pragma once
// GELU with the tanh approximation (jax.nn.gelu's default), used everywhere in the model.
// On CPU in float or double it runs as one loop forward and one backward (blocks/gelu_math.h,
// vectorised with an inlined exp where the CPU allows); elsewhere as gelu_tanh_reference. A
// backward that records a graph (double backward) uses LibTorch's differentiable one.
#include <torch/torch.h>

namespace trecvit {

torch::Tensor gelu_tanh(const torch::Tensor& x);

// LibTorch's own tanh GELU: the tensor-op form the fused loop is tested against.
inline torch::Tensor gelu_tanh_reference(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }

}  // namespace trecvit

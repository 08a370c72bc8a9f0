#pragma once
// The RG-LRU written the obvious way: a loop over time of small tensor ops under autograd,
// a line-by-line transcription of RecurrentGemma's RGLRU.__call__. Slow; kept as the
// reference the fused scan must equal (tests) and beat (bench).
#include <torch/torch.h>

namespace trecvit {

// Same contract as rglru_scan(), from gate logits already split into [B, T, L] tensors.
torch::Tensor rglru_reference(const torch::Tensor& v, const torch::Tensor& gate_x_logits,
                              const torch::Tensor& gate_a_logits, const torch::Tensor& a_param,
                              const torch::Tensor& h0, const torch::Tensor& reset);

// Splits the scan's gate layout [H, B*T, 2, bw] into two [B, T, L] tensors.
std::pair<torch::Tensor, torch::Tensor> split_gate_logits(const torch::Tensor& gates, int64_t B, int64_t T);

}  // namespace trecvit

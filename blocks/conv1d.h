#pragma once
// Causal depthwise convolution over time, as RecurrentGemma's Conv1D:
//   out[t] = sum_{k=0}^{K-1} w[K-1-k] * x[t-k] + b,   x[t<0] = 0 (or the streamed tail).
// The LAST tap multiplies the current frame.
#include <torch/torch.h>

namespace trecvit {

struct Conv1DOptions {
  Conv1DOptions(int64_t width, int64_t kernel_size) : width_(width), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, width);
  TORCH_ARG(int64_t, kernel_size);  // K taps; K = 4 in the released model
};

class Conv1DImpl : public torch::nn::Cloneable<Conv1DImpl> {
 public:
  explicit Conv1DImpl(const Conv1DOptions& options);
  void reset() override;

  // x: [B, T, width]. Offline: zero history.
  torch::Tensor forward(const torch::Tensor& x);
  // Streaming: `tail` [B, K-1, width] holds the previous K-1 inputs (oldest first)
  // and is replaced by the last K-1 inputs seen after this call. The tail is state: on CPU in
  // float or double the conv runs as one fused loop forward and backward, and no gradient flows
  // into a tail (one that requires grad takes the tensor-op path instead).
  torch::Tensor forward_stream(const torch::Tensor& x, torch::Tensor& tail);

  Conv1DOptions options;
  torch::Tensor w;  // [K, width]
  torch::Tensor b;  // [width]
};
TORCH_MODULE(Conv1D);

// The same conv in tensor ops over tail ++ x: the fused path's reference in tests, and its fallback.
torch::Tensor conv1d_reference(const torch::Tensor& x, const torch::Tensor& tail, const torch::Tensor& w,
                               const torch::Tensor& b);

}  // namespace trecvit

#pragma once
// Griffin's recurrent block: a GELU gate branch times conv -> RG-LRU, projected back.
//   y = GELU(W_y u + b_y);  v = Conv1D(W_x u + b_x);  out = W_out(RGLRU(v) * y) + b_out
#include <torch/torch.h>

#include "blocks/conv1d.h"
#include "blocks/rglru.h"

namespace trecvit {

// What a recurrent block carries between streamed chunks, per sequence.
struct RecurrentState {
  torch::Tensor h;          // [B, L], fp32 (input precision)
  torch::Tensor conv_tail;  // [B, K-1, L]: the last K-1 conv inputs
};

struct RecurrentBlockOptions {
  RecurrentBlockOptions(int64_t width, int64_t lru_width, int64_t num_heads)
      : width_(width), lru_width_(lru_width), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, width);        // D
  TORCH_ARG(int64_t, lru_width);    // L
  TORCH_ARG(int64_t, num_heads);    // RG-LRU gate blocks
  TORCH_ARG(int64_t, conv_width) = 4;
  TORCH_ARG(double, min_rad) = 0.5;
  TORCH_ARG(double, final_w_init_variance_scale) = 1.0;  // 2 / depth in TRecViT
};

class RecurrentBlockImpl : public torch::nn::Cloneable<RecurrentBlockImpl> {
 public:
  explicit RecurrentBlockImpl(const RecurrentBlockOptions& options);
  void reset() override;

  // x: [B, T, D]. With `state`, continues from it (and updates it); `reset` [B] bool marks
  // rows whose time 0 starts a new sequence. Without `state`, every row starts at time 0.
  torch::Tensor forward(const torch::Tensor& x, RecurrentState* state = nullptr, const torch::Tensor& reset = {});

  RecurrentState initial_state(int64_t batch, const torch::TensorOptions& opts) const;

  RecurrentBlockOptions options;
  torch::nn::Linear linear_y{nullptr}, linear_x{nullptr}, linear_out{nullptr};
  Conv1D conv_1d{nullptr};
  RGLRU rg_lru{nullptr};
};
TORCH_MODULE(RecurrentBlock);

}  // namespace trecvit

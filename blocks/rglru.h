#pragma once
// Real-Gated Linear Recurrent Unit (Griffin / RecurrentGemma), the temporal mixer of TRecViT.
#include <torch/torch.h>

#include <array>
#include <memory>
#include <mutex>

namespace trecvit {

struct RGLRUOptions {
  RGLRUOptions(int64_t width, int64_t num_heads) : width_(width), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, width);      // L
  TORCH_ARG(int64_t, num_heads);  // blocks of the block-diagonal gates
  TORCH_ARG(double, min_rad) = 0.5;
  TORCH_ARG(double, max_rad) = 0.999;
};

class RGLRUImpl : public torch::nn::Cloneable<RGLRUImpl> {
 public:
  explicit RGLRUImpl(const RGLRUOptions& options);
  void reset() override;

  // v: [B, T, L] (the conv output). h0: [B, L] or undefined. reset: [B] bool, whether
  // time 0 starts a sequence (undefined: every row does). Returns all states h: [B, T, L].
  torch::Tensor forward(const torch::Tensor& v, const torch::Tensor& h0 = {}, const torch::Tensor& reset = {});

  // Block-diagonal gate logits in the scan's layout [H, B*T, 2, L/H].
  torch::Tensor gate_logits(const torch::Tensor& v) const;

  RGLRUOptions options;
  torch::Tensor input_gate_w, input_gate_b;  // [H, L/H, L/H], [H, L/H]
  torch::Tensor a_gate_w, a_gate_b;
  torch::Tensor a_param;                     // [L]

 private:
  // The two gates' weights side by side for one batched product. Without autograd (streaming,
  // evaluation) the concatenation is kept until a parameter's storage or version changes, as
  // a step otherwise rebuilds it every frame; under autograd it is part of the graph and built
  // per call (and for inference tensors, which keep no version). reset() (and so clone())
  // gives each module its own cache.
  struct GateWeights {
    std::mutex mutex;
    std::array<const void*, 4> data{};
    std::array<int64_t, 4> versions{};
    std::array<c10::Storage, 4> storages;  // held, so no new parameter can reuse an address
    torch::Tensor w, b;
  };
  std::pair<torch::Tensor, torch::Tensor> gate_weights() const;
  std::shared_ptr<GateWeights> gate_cache_;
};
TORCH_MODULE(RGLRU);

}  // namespace trecvit

#include "blocks/rglru.h"

#include <algorithm>
#include <cmath>

#include "blocks/rglru_scan.h"

namespace trecvit {

RGLRUImpl::RGLRUImpl(const RGLRUOptions& options_) : options(options_) {
  TORCH_CHECK(options.num_heads() > 0 && options.width() % options.num_heads() == 0,
              "RGLRU: width ", options.width(), " must be divisible by num_heads ", options.num_heads());
  reset();
}

void RGLRUImpl::reset() {
  const int64_t L = options.width(), H = options.num_heads(), bw = L / H;
  const double std = std::sqrt(1.0 / bw);
  input_gate_w = register_parameter("input_gate_w", torch::randn({H, bw, bw}) * std);
  input_gate_b = register_parameter("input_gate_b", torch::zeros({H, bw}));
  a_gate_w = register_parameter("a_gate_w", torch::randn({H, bw, bw}) * std);
  a_gate_b = register_parameter("a_gate_b", torch::zeros({H, bw}));
  // a ~ uniform over the ring min_rad <= |a| <= max_rad (a^2 uniform); store the inverse
  // softplus of -log a so that a = exp(-softplus(p)) at r = 1/8.
  const double lo = options.min_rad() * options.min_rad(), hi = options.max_rad() * options.max_rad();
  auto log_a = 0.5 * torch::log(torch::rand({L}, torch::kDouble) * (hi - lo) + lo + 1e-8);
  auto p = torch::log(torch::expm1(-log_a));
  a_param = register_parameter("a_param", p.to(torch::kFloat));
  gate_cache_ = std::make_shared<GateWeights>();
}

std::pair<torch::Tensor, torch::Tensor> RGLRUImpl::gate_weights() const {
  auto build = [&] {
    return std::make_pair(torch::cat({input_gate_w, a_gate_w}, 2),                // [H, bw, 2bw]
                          torch::cat({input_gate_b, a_gate_b}, 1).unsqueeze(1));  // [H, 1, 2bw]
  };
  const std::array<const torch::Tensor*, 4> params = {&input_gate_w, &a_gate_w, &input_gate_b, &a_gate_b};
  if (torch::GradMode::is_enabled() ||
      std::any_of(params.begin(), params.end(), [](const torch::Tensor* p) { return p->is_inference(); }))
    return build();
  std::array<const void*, 4> data;
  std::array<int64_t, 4> versions;
  for (size_t i = 0; i < params.size(); ++i) {
    data[i] = params[i]->data_ptr();
    versions[i] = params[i]->_version();
  }
  std::lock_guard<std::mutex> lock(gate_cache_->mutex);
  auto& c = *gate_cache_;
  if (!c.w.defined() || c.data != data || c.versions != versions) {
    std::tie(c.w, c.b) = build();
    c.data = data;
    c.versions = versions;
    for (size_t i = 0; i < params.size(); ++i) c.storages[i] = params[i]->storage();
  }
  return {c.w, c.b};
}

torch::Tensor RGLRUImpl::gate_logits(const torch::Tensor& v) const {
  const int64_t H = options.num_heads(), bw = options.width() / H;
  const int64_t M = v.size(0) * v.size(1);
  auto vh = v.reshape({M, H, bw}).transpose(0, 1);             // [H, M, bw]
  auto [w, b] = gate_weights();
  return torch::baddbmm(b, vh, w).view({H, M, 2, bw});
}

torch::Tensor RGLRUImpl::forward(const torch::Tensor& v, const torch::Tensor& h0, const torch::Tensor& reset) {
  TORCH_CHECK(v.dim() == 3 && v.size(2) == options.width(), "RGLRU: expected [B, T, ", options.width(),
              "], got ", v.sizes());
  return rglru_scan(v.contiguous(), gate_logits(v), a_param, h0, reset);
}

}  // namespace trecvit

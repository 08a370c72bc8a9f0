#include "blocks/conv1d.h"

#include <cmath>

namespace trecvit {

Conv1DImpl::Conv1DImpl(const Conv1DOptions& options_) : options(options_) {
  TORCH_CHECK(options.kernel_size() >= 1, "Conv1D: kernel_size must be >= 1");
  reset();
}

void Conv1DImpl::reset() {
  const auto K = options.kernel_size();
  w = register_parameter("w", torch::randn({K, options.width()}) * std::sqrt(0.01 / K));
  b = register_parameter("b", torch::zeros({options.width()}));
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor& x) {
  const auto K = options.kernel_size();
  if (K == 1) return x * w[0] + b;
  auto tail = torch::zeros({x.size(0), K - 1, x.size(2)}, x.options());
  return forward_stream(x, tail);
}

torch::Tensor Conv1DImpl::forward_stream(const torch::Tensor& x, torch::Tensor& tail) {
  const auto K = options.kernel_size();
  const auto T = x.size(1);
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.width(), "Conv1D: expected [B, T, ", options.width(),
              "], got ", x.sizes());
  if (K == 1) return x * w[0] + b;
  TORCH_CHECK(tail.dim() == 3 && tail.size(0) == x.size(0) && tail.size(1) == K - 1,
              "Conv1D: tail must be [B, K-1, width]");
  // xx[j] = input at time j-(K-1): the window for output t is xx[t .. t+K-1], and
  // xx[t+k] meets tap w[k], so the current frame xx[t+K-1] meets the last tap.
  auto xx = torch::cat({tail, x}, 1);
  auto out = torch::addcmul(b, xx.narrow(1, K - 1, T), w[K - 1]);
  for (int64_t k = 0; k < K - 1; ++k) out.addcmul_(xx.narrow(1, k, T), w[k]);
  tail = xx.narrow(1, T, K - 1).detach().clone();
  return out;
}

}  // namespace trecvit

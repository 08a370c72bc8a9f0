#include "blocks/conv1d.h"

#include "blocks/fused_cpu.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Input at time s of sequence b: x for s >= 0, the tail (the K-1 inputs before) for s < 0.
template <typename T>
const T* input_row(const T* x, const T* tail, int64_t b, int64_t s, int64_t T_, int64_t K, int64_t L) {
  return s >= 0 ? x + (b * T_ + s) * L : tail + (b * (K - 1) + (K - 1 + s)) * L;
}

// out[t] = b + x[t] w[K-1] + sum_{k < K-1} x[t+k-(K-1)] w[k]: the tensor-op form's order. The K
// input rows are summed in registers, one pass over the output (KC: K known at compile time,
// so the tap loop unrolls and the channel loop vectorises; 0: any K).
template <typename T, int KC>
void forward_rows(const T* x, const T* tail, const T* w, const T* bias, T* out, int64_t T_, int64_t K, int64_t L,
                  int64_t b0, int64_t b1) {
  std::vector<const T*> any_k(KC > 0 ? 0 : K);
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t t = 0; t < T_; ++t) {
      T* __restrict o = out + (b * T_ + t) * L;
      if constexpr (KC > 0) {
        const T* r[KC];
        for (int k = 0; k < KC; ++k) r[k] = input_row(x, tail, b, t + k - (KC - 1), T_, int64_t(KC), L);
        for (int64_t l = 0; l < L; ++l) {
          T acc = bias[l] + r[KC - 1][l] * w[(KC - 1) * L + l];
          for (int k = 0; k < KC - 1; ++k) acc += r[k][l] * w[k * L + l];
          o[l] = acc;
        }
      } else {
        for (int64_t k = 0; k < K; ++k) any_k[k] = input_row(x, tail, b, t + k - (K - 1), T_, K, L);
        for (int64_t l = 0; l < L; ++l) o[l] = bias[l] + any_k[K - 1][l] * w[(K - 1) * L + l];
        for (int64_t k = 0; k < K - 1; ++k)
          for (int64_t l = 0; l < L; ++l) o[l] += any_k[k][l] * w[k * L + l];
      }
    }
}

// gx[s] = sum_k g[s-k+K-1] w[k] over outputs inside the chunk; dw[k] = sum_t g[t] x[t+k-(K-1)];
// db = sum_t g[t]. Per-sequence partials of dw and db (rows K and K+1 of `part`).
template <typename T>
void backward_rows(const T* x, const T* tail, const T* w, const T* g, T* gx, T* part, int64_t T_, int64_t K,
                   int64_t L, int64_t b0, int64_t b1) {
  for (int64_t b = b0; b < b1; ++b) {
    T* pb = part + b * (K + 1) * L;
    for (int64_t s = 0; s < T_; ++s) {
      T* o = gx + (b * T_ + s) * L;
      for (int64_t l = 0; l < L; ++l) o[l] = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t t = s - k + K - 1;
        if (t >= T_) continue;
        const T* gt = g + (b * T_ + t) * L;
        const T* wk = w + k * L;
        for (int64_t l = 0; l < L; ++l) o[l] += gt[l] * wk[l];
      }
    }
    for (int64_t t = 0; t < T_; ++t) {
      const T* gt = g + (b * T_ + t) * L;
      for (int64_t k = 0; k < K; ++k) {
        const T* in = input_row(x, tail, b, t + k - (K - 1), T_, K, L);
        T* dwk = pb + k * L;
        for (int64_t l = 0; l < L; ++l) dwk[l] += gt[l] * in[l];
      }
      T* db = pb + K * L;
      for (int64_t l = 0; l < L; ++l) db[l] += gt[l];
    }
  }
}

class Conv1DFunction : public torch::autograd::Function<Conv1DFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor tail, torch::Tensor w,
                               torch::Tensor bias) {
    x = x.contiguous();
    tail = tail.contiguous();
    w = w.contiguous();
    bias = bias.contiguous();
    const int64_t B = x.size(0), T_ = x.size(1), L = x.size(2), K = w.size(0);
    auto out = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv1d_forward", [&] {
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        auto run = K == 4 ? forward_rows<scalar_t, 4> : K == 2 ? forward_rows<scalar_t, 2> : forward_rows<scalar_t, 0>;
        run(x.data_ptr<scalar_t>(), tail.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(),
            out.data_ptr<scalar_t>(), T_, K, L, b0, b1);
      });
    });
    ctx->save_for_backward({x, tail, w});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], tail = saved[1], w = saved[2];
    auto g = grads[0].contiguous();
    const int64_t B = x.size(0), T_ = x.size(1), L = x.size(2), K = w.size(0);
    auto gx = torch::empty_like(x);
    auto part = torch::zeros({B, K + 1, L}, x.options());
    auto sums = torch::zeros({K + 1, L}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv1d_backward", [&] {
      scalar_t* pp = part.data_ptr<scalar_t>();
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        backward_rows(x.data_ptr<scalar_t>(), tail.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                      g.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), pp, T_, K, L, b0, b1);
      });
      // Summed over sequences in order (not per thread), so the result is the same at any thread count.
      scalar_t* ps = sums.data_ptr<scalar_t>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < (K + 1) * L; ++j) ps[j] += pp[b * (K + 1) * L + j];
    });
    return {gx, torch::Tensor(), sums.narrow(0, 0, K), sums[K]};
  }
};

// The last K-1 inputs of tail ++ x, oldest first.
torch::Tensor next_tail(const torch::Tensor& x, const torch::Tensor& tail, int64_t K) {
  const int64_t T = x.size(1);
  if (T >= K - 1) return x.narrow(1, T - (K - 1), K - 1).detach().clone();
  return torch::cat({tail.narrow(1, T, K - 1 - T), x}, 1).detach();
}

}  // namespace

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
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.width(), "Conv1D: expected [B, T, ", options.width(),
              "], got ", x.sizes());
  if (K == 1) return x * w[0] + b;
  TORCH_CHECK(tail.dim() == 3 && tail.size(0) == x.size(0) && tail.size(1) == K - 1 && tail.size(2) == x.size(2),
              "Conv1D: tail must be [B, K-1, width]");
  const bool fused = fused_cpu_kernel_applies(x, w) && tail.scalar_type() == w.scalar_type() && !tail.requires_grad();
  auto out = fused ? Conv1DFunction::apply(x, tail, w, b) : conv1d_reference(x, tail, w, b);
  // In place when no graph can hold the old tail: the state keeps its buffer across steps.
  auto next = next_tail(x, tail, K);
  if (torch::GradMode::is_enabled()) tail = next;
  else tail.copy_(next);
  return out;
}

torch::Tensor conv1d_reference(const torch::Tensor& x, const torch::Tensor& tail, const torch::Tensor& w,
                               const torch::Tensor& b) {
  const int64_t K = w.size(0), T = x.size(1);
  // xx[j] = input at time j-(K-1): the window for output t is xx[t .. t+K-1], and
  // xx[t+k] meets tap w[k], so the current frame xx[t+K-1] meets the last tap.
  auto xx = torch::cat({tail, x}, 1);
  auto out = torch::addcmul(b, xx.narrow(1, K - 1, T), w[K - 1]);
  for (int64_t k = 0; k < K - 1; ++k) out.addcmul_(xx.narrow(1, k, T), w[k]);
  return out;
}

}  // namespace trecvit

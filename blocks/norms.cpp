#include "blocks/norms.h"

#include "blocks/fused_cpu.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// dscale is summed over fixed blocks of rows, in block order, so it is the same at any thread count.
constexpr int64_t kRowsPerBlock = 64;

// Eight partial sums: the compiler keeps them in vector lanes (a single running sum would not
// vectorise without reassociating floats).
template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[j + l] * b[j + l];
  T s = 0;
  for (; j < n; ++j) s += a[j] * b[j];
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// r = rsqrt(mean(x^2) + eps) per row; y = x * r * w with w = 1 + scale.
template <typename T>
void forward_rows(const T* x, const T* w, T* y, T* rstd, int64_t D, T eps, int64_t r0, int64_t r1) {
  for (int64_t i = r0; i < r1; ++i) {
    const T* xi = x + i * D;
    T* yi = y + i * D;
    const T r = T(1) / std::sqrt(dot(xi, xi, D) / T(D) + eps);
    rstd[i] = r;
    for (int64_t j = 0; j < D; ++j) yi[j] = xi[j] * r * w[j];
  }
}

// With g = dL/dy and dr/dx = -r^3 x / D:
//   dL/dx     = r w g - x r^3 / D * sum_j(g_j w_j x_j)
//   dL/dscale = sum over rows of g x r
template <typename T>
void backward_rows(const T* x, const T* w, const T* rstd, const T* g, T* gx, T* dscale, int64_t D, int64_t r0,
                   int64_t r1, std::vector<T>& gw) {
  for (int64_t i = r0; i < r1; ++i) {
    const T* xi = x + i * D;
    const T* gi = g + i * D;
    T* gxi = gx + i * D;
    const T r = rstd[i];
    for (int64_t j = 0; j < D; ++j) gw[j] = gi[j] * w[j];
    const T c = dot(gw.data(), xi, D) * r * r * r / T(D);
    for (int64_t j = 0; j < D; ++j) {
      gxi[j] = r * gw[j] - xi[j] * c;
      dscale[j] += gi[j] * xi[j] * r;
    }
  }
}

class RMSNormFunction : public torch::autograd::Function<RMSNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor scale, double eps) {
    x = x.contiguous();
    const int64_t D = x.size(-1), R = x.numel() / D;
    auto w = (scale + 1).contiguous();
    auto y = torch::empty_like(x);
    auto rstd = torch::empty({R}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_forward", [&] {
      const scalar_t *px = x.data_ptr<scalar_t>(), *pw = w.data_ptr<scalar_t>();
      scalar_t *py = y.data_ptr<scalar_t>(), *pr = rstd.data_ptr<scalar_t>();
      at::parallel_for(0, R, kRowsPerBlock, [&](int64_t r0, int64_t r1) {
        forward_rows(px, pw, py, pr, D, static_cast<scalar_t>(eps), r0, r1);
      });
    });
    ctx->save_for_backward({x, w, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], w = saved[1], rstd = saved[2];
    auto g = grads[0].contiguous();
    const int64_t D = x.size(-1), R = x.numel() / D;
    const int64_t blocks = (R + kRowsPerBlock - 1) / kRowsPerBlock;
    auto gx = torch::empty_like(x);
    auto partial = torch::zeros({blocks, D}, x.options());
    auto dscale = torch::zeros({D}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_backward", [&] {
      const scalar_t *px = x.data_ptr<scalar_t>(), *pw = w.data_ptr<scalar_t>(), *pr = rstd.data_ptr<scalar_t>(),
                     *pg = g.data_ptr<scalar_t>();
      scalar_t *pgx = gx.data_ptr<scalar_t>(), *pp = partial.data_ptr<scalar_t>(), *pd = dscale.data_ptr<scalar_t>();
      at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
        std::vector<scalar_t> gw(D);
        for (int64_t b = b0; b < b1; ++b)
          backward_rows(px, pw, pr, pg, pgx, pp + b * D, D, b * kRowsPerBlock,
                        std::min(R, (b + 1) * kRowsPerBlock), gw);
      });
      for (int64_t b = 0; b < blocks; ++b)
        for (int64_t j = 0; j < D; ++j) pd[j] += pp[b * D + j];
    });
    return {gx, dscale, torch::Tensor()};
  }
};

}  // namespace

RMSNormImpl::RMSNormImpl(const RMSNormOptions& options_) : options(options_) { reset(); }

void RMSNormImpl::reset() { scale = register_parameter("scale", torch::zeros({options.dim()})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == options.dim(), "RMSNorm: expected [..., ", options.dim(), "], got ",
              x.sizes());
  if (fused_cpu_kernel_applies(x, scale)) return RMSNormFunction::apply(x, scale, options.eps());
  return rms_norm_reference(x, scale, options.eps());
}

torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& scale, double eps) {
  auto var = x.square().mean(-1, /*keepdim=*/true);
  return x * torch::rsqrt(var + eps) * (scale + 1);
}

}  // namespace trecvit

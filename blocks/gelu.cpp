#include "blocks/gelu.h"

#include <ATen/Parallel.h>

#include "blocks/fused_cpu.h"
#include "blocks/gelu_math.h"
#include "blocks/simd_kernels.h"

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kGrain = 1 << 14;  // elements per task: big enough to amortise a thread hand-off

template <typename scalar_t>
void forward_range(const scalar_t* x, scalar_t* y, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (!detail::float_kernels().empty()) return detail::float_kernels()[0].gelu_forward(x, y, n);
  }
  detail::gelu_forward_loop<scalar_t, scalar_t>(x, y, n);
}

template <typename scalar_t>
void backward_range(const scalar_t* x, const scalar_t* g, scalar_t* dx, int64_t n) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (!detail::float_kernels().empty()) return detail::float_kernels()[0].gelu_backward(x, g, dx, n);
  }
  detail::gelu_backward_loop<scalar_t, scalar_t>(x, g, dx, n);
}

class GeluTanhFunction : public torch::autograd::Function<GeluTanhFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x) {
    x = x.contiguous();
    auto y = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gelu_tanh_forward", [&] {
      const scalar_t* px = x.data_ptr<scalar_t>();
      scalar_t* py = y.data_ptr<scalar_t>();
      at::parallel_for(0, x.numel(), kGrain, [&](int64_t i0, int64_t i1) { forward_range(px + i0, py + i0, i1 - i0); });
    });
    ctx->save_for_backward({x});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto x = ctx->get_saved_variables()[0];
    // Recording a graph of the backward (create_graph): LibTorch's own, which is differentiable.
    if (torch::GradMode::is_enabled()) return {torch::gelu_backward(grads[0], x, "tanh")};
    auto g = grads[0].contiguous();
    auto dx = torch::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gelu_tanh_backward", [&] {
      const scalar_t *px = x.data_ptr<scalar_t>(), *pg = g.data_ptr<scalar_t>();
      scalar_t* pdx = dx.data_ptr<scalar_t>();
      at::parallel_for(0, x.numel(), kGrain,
                       [&](int64_t i0, int64_t i1) { backward_range(px + i0, pg + i0, pdx + i0, i1 - i0); });
    });
    return {dx};
  }
};

}  // namespace

torch::Tensor gelu_tanh(const torch::Tensor& x) {
  if (!fused_cpu_kernel_applies(x, x)) return gelu_tanh_reference(x);
  return GeluTanhFunction::apply(x);
}

}  // namespace trecvit

#include "blocks/rglru_scan.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <type_traits>

#include "blocks/rglru_math.h"
#include "blocks/rglru_reference.h"
#include "blocks/simd_kernels.h"

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using detail::ScanDims;

}  // namespace


namespace {

ScanDims dims_of(const torch::Tensor& v, const torch::Tensor& gates) {
  TORCH_CHECK(v.dim() == 3, "rglru_scan: v must be [B, T, L], got ", v.sizes());
  TORCH_CHECK(gates.dim() == 4 && gates.size(1) == v.size(0) * v.size(1) && gates.size(2) == 2 &&
                  gates.size(0) * gates.size(3) == v.size(2),
              "rglru_scan: gates must be [H, B*T, 2, L/H], got ", gates.sizes(), " for v ", v.sizes());
  return {v.size(0), v.size(1), v.size(2), gates.size(0), gates.size(3)};
}

template <typename T>
T* ptr_or_null(const torch::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// Sequences are independent: split them over threads, each running the whole time loop.
template <typename scalar_t>
void run_forward(const ScanDims& d, const torch::Tensor& v, const torch::Tensor& g, const torch::Tensor& sp,
                 const torch::Tensor& h0, const torch::Tensor& reset, torch::Tensor& h) {
  const bool* r = ptr_or_null<bool>(reset);
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (!detail::float_kernels().empty()) {
        detail::float_kernels()[0].scan_forward(d, v.data_ptr<float>(), g.data_ptr<float>(), sp.data_ptr<float>(),
                                                ptr_or_null<float>(h0), r, h.data_ptr<float>(), b0, b1);
        return;
      }
    }
    detail::forward_rows<scalar_t, scalar_t>(d, v.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
                                             sp.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(h0), r,
                                             h.data_ptr<scalar_t>(), b0, b1);
  });
}

template <typename scalar_t>
void run_backward(const ScanDims& d, const torch::Tensor& v, const torch::Tensor& g, const torch::Tensor& sp,
                  const torch::Tensor& h0, const torch::Tensor& reset, const torch::Tensor& h,
                  const torch::Tensor& dh, torch::Tensor& dv, torch::Tensor& dg, torch::Tensor& dsp_rows,
                  torch::Tensor& dh0) {
  const bool* r = ptr_or_null<bool>(reset);
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<scalar_t> carry(d.L);
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (!detail::float_kernels().empty()) {
        detail::float_kernels()[0].scan_backward(
            d, v.data_ptr<float>(), g.data_ptr<float>(), sp.data_ptr<float>(), ptr_or_null<float>(h0), r,
            h.data_ptr<float>(), dh.data_ptr<float>(), dv.data_ptr<float>(), dg.data_ptr<float>(),
            dsp_rows.data_ptr<float>(), ptr_or_null<float>(dh0), carry.data(), b0, b1);
        return;
      }
    }
    detail::backward_rows<scalar_t, scalar_t>(
        d, v.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), sp.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(h0), r,
        h.data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(), dv.data_ptr<scalar_t>(), dg.data_ptr<scalar_t>(),
        dsp_rows.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(dh0), carry.data(), b0, b1);
  });
}

class RGLRUScanFunction : public torch::autograd::Function<RGLRUScanFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor v, torch::Tensor gates, torch::Tensor a_param,
                               torch::Tensor h0, torch::Tensor reset) {
    const ScanDims d = dims_of(v, gates);
    v = v.contiguous();
    gates = gates.contiguous();
    a_param = a_param.contiguous();
    // Autograd functions take no undefined inputs: "absent" arrives as an empty tensor.
    if (h0.numel() == 0) h0 = torch::Tensor();
    if (reset.numel() == 0) reset = torch::Tensor();
    if (h0.defined()) h0 = h0.contiguous();
    if (reset.defined()) reset = reset.to(torch::kBool).contiguous();
    auto h = torch::empty_like(v);
    auto sp = torch::softplus(a_param);
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "rglru_scan_forward",
                               [&] { run_forward<scalar_t>(d, v, gates, sp, h0, reset, h); });
    ctx->save_for_backward({v, gates, a_param, h0, reset, h});
    return h;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto v = saved[0], gates = saved[1], a_param = saved[2], h0 = saved[3], reset = saved[4], h = saved[5];
    const ScanDims d = dims_of(v, gates);
    auto dh = grads[0].contiguous();
    auto dv = torch::empty_like(v);
    auto dg = torch::empty_like(gates);
    auto dsp_rows = torch::zeros({d.B, d.L}, v.options());
    torch::Tensor dh0 = h0.defined() ? torch::empty_like(h0) : torch::Tensor();
    auto sp = torch::softplus(a_param);
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "rglru_scan_backward", [&] {
      run_backward<scalar_t>(d, v, gates, sp, h0, reset, h, dh, dv, dg, dsp_rows, dh0);
    });
    auto da_param = dsp_rows.sum(0) * torch::sigmoid(a_param);  // d softplus(p)/dp = sigmoid(p)
    return {dv, dg, da_param, dh0, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rglru_scan(const torch::Tensor& v, const torch::Tensor& gates, const torch::Tensor& a_param,
                         const torch::Tensor& h0, const torch::Tensor& reset) {
  TORCH_CHECK(v.scalar_type() == gates.scalar_type() && v.scalar_type() == a_param.scalar_type(),
              "rglru_scan: v, gates and a_param must share a dtype");
  TORCH_CHECK(v.scalar_type() == torch::kFloat || v.scalar_type() == torch::kDouble,
              "rglru_scan: float32 or float64 only (the state is kept in the input precision)");
  TORCH_CHECK(a_param.dim() == 1 && a_param.size(0) == v.size(2), "rglru_scan: a_param must be [L]");
  TORCH_CHECK(!h0.defined() || (h0.dim() == 2 && h0.size(0) == v.size(0) && h0.size(1) == v.size(2)),
              "rglru_scan: h0 must be [B, L]");
  TORCH_CHECK(!reset.defined() || (reset.dim() == 1 && reset.size(0) == v.size(0)), "rglru_scan: reset must be [B]");
  if (!v.is_cpu()) {
    // The fused loop is a CPU kernel; on an accelerator the bulk tensor-op form runs instead.
    auto [gx, ga] = split_gate_logits(gates, v.size(0), v.size(1));
    return rglru_reference(v, gx, ga, a_param, h0, reset);
  }
  auto none = torch::empty({0}, v.options());
  return RGLRUScanFunction::apply(v, gates, a_param, h0.defined() ? h0 : none,
                                  reset.defined() ? reset : none.to(torch::kBool));
}

}  // namespace trecvit

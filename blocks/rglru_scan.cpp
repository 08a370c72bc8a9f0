#include "blocks/rglru_scan.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
template <typename T>
inline T softplus(T x) {  // log(1 + e^x), stable for large |x| (jnp.logaddexp(x, 0))
  return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

struct Dims {
  int64_t B, T, L, H, bw;
};

Dims dims_of(const torch::Tensor& v, const torch::Tensor& gates) {
  TORCH_CHECK(v.dim() == 3, "rglru_scan: v must be [B, T, L], got ", v.sizes());
  TORCH_CHECK(gates.dim() == 4 && gates.size(1) == v.size(0) * v.size(1) && gates.size(2) == 2 &&
                  gates.size(0) * gates.size(3) == v.size(2),
              "rglru_scan: gates must be [H, B*T, 2, L/H], got ", gates.sizes(), " for v ", v.sizes());
  return {v.size(0), v.size(1), v.size(2), gates.size(0), gates.size(3)};
}

template <typename scalar_t>
void scan_forward(const Dims& d, const scalar_t* v, const scalar_t* g, const scalar_t* p, const scalar_t* h0,
                  const bool* reset, scalar_t* h) {
  std::vector<scalar_t> sp(d.L);
  for (int64_t l = 0; l < d.L; ++l) sp[l] = softplus(p[l]);
  const int64_t M = d.B * d.T;
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const scalar_t* prev = h0 ? h0 + b * d.L : nullptr;
      for (int64_t t = 0; t < d.T; ++t) {
        const bool start = (t == 0) && (reset == nullptr || reset[b]);
        const int64_t m = b * d.T + t;
        const scalar_t* v_t = v + m * d.L;
        scalar_t* h_t = h + m * d.L;
        for (int64_t hd = 0; hd < d.H; ++hd) {
          const scalar_t* gx = g + ((hd * M + m) * 2) * d.bw;
          const scalar_t* gr = gx + d.bw;
          for (int64_t j = 0; j < d.bw; ++j) {
            const int64_t l = hd * d.bw + j;
            const scalar_t i_t = sigmoid(gx[j]);
            const scalar_t r_t = sigmoid(gr[j]);
            const scalar_t log_a = scalar_t(-kRGLRUC) * r_t * sp[l];
            const scalar_t a = std::exp(log_a);
            const scalar_t a_sq = std::exp(scalar_t(2) * log_a);
            const scalar_t gated_x = v_t[l] * i_t;
            if (start) {
              h_t[l] = gated_x;  // multiplier 1, incoming state ignored
            } else {
              const scalar_t normalized_x = gated_x * std::sqrt(scalar_t(1) - a_sq);
              const scalar_t h_prev = prev ? prev[l] : scalar_t(0);
              h_t[l] = a * h_prev + normalized_x;
            }
          }
        }
        prev = h_t;
      }
    }
  });
}

template <typename scalar_t>
void scan_backward(const Dims& d, const scalar_t* v, const scalar_t* g, const scalar_t* p, const scalar_t* h0,
                   const bool* reset, const scalar_t* h, const scalar_t* dh, scalar_t* dv, scalar_t* dg,
                   scalar_t* dsp_rows, scalar_t* dh0) {
  std::vector<scalar_t> sp(d.L);
  for (int64_t l = 0; l < d.L; ++l) sp[l] = softplus(p[l]);
  const int64_t M = d.B * d.T;
  const scalar_t min_sqrt_in = scalar_t(1.0 / (4.0 * kRGLRUMaxSqrtGradient * kRGLRUMaxSqrtGradient));
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<scalar_t> carry(d.L);  // dL/dh_{t} flowing back through a_{t+1}
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(carry.begin(), carry.end(), scalar_t(0));
      scalar_t* dsp = dsp_rows + b * d.L;
      for (int64_t t = d.T - 1; t >= 0; --t) {
        const bool start = (t == 0) && (reset == nullptr || reset[b]);
        const int64_t m = b * d.T + t;
        const scalar_t* v_t = v + m * d.L;
        const scalar_t* dh_t = dh + m * d.L;
        const scalar_t* h_prev = t > 0 ? h + (m - 1) * d.L : (h0 ? h0 + b * d.L : nullptr);
        scalar_t* dv_t = dv + m * d.L;
        for (int64_t hd = 0; hd < d.H; ++hd) {
          const int64_t goff = ((hd * M + m) * 2) * d.bw;
          const scalar_t* gx = g + goff;
          const scalar_t* gr = gx + d.bw;
          scalar_t* dgx = dg + goff;
          scalar_t* dgr = dgx + d.bw;
          for (int64_t j = 0; j < d.bw; ++j) {
            const int64_t l = hd * d.bw + j;
            const scalar_t grad = dh_t[l] + carry[l];
            const scalar_t i_t = sigmoid(gx[j]);
            const scalar_t r_t = sigmoid(gr[j]);
            const scalar_t log_a = scalar_t(-kRGLRUC) * r_t * sp[l];
            const scalar_t a = std::exp(log_a);
            const scalar_t a_sq = std::exp(scalar_t(2) * log_a);
            scalar_t mult = 1, dlog_a = 0;
            if (!start) {
              const scalar_t one_minus = scalar_t(1) - a_sq;
              mult = std::sqrt(one_minus);
              const scalar_t dmult = grad * v_t[l] * i_t;
              const scalar_t da_sq = -dmult * scalar_t(0.5) / std::sqrt(std::max(one_minus, min_sqrt_in));
              const scalar_t da = h_prev ? grad * h_prev[l] : scalar_t(0);
              dlog_a = da * a + da_sq * scalar_t(2) * a_sq;
              carry[l] = grad * a;
            } else {
              carry[l] = 0;
            }
            dv_t[l] = grad * i_t * mult;
            dgx[j] = grad * v_t[l] * mult * i_t * (scalar_t(1) - i_t);
            dgr[j] = dlog_a * scalar_t(-kRGLRUC) * sp[l] * r_t * (scalar_t(1) - r_t);
            dsp[l] += dlog_a * scalar_t(-kRGLRUC) * r_t;
          }
        }
      }
      if (dh0) std::copy(carry.begin(), carry.end(), dh0 + b * d.L);
    }
  });
}

class RGLRUScanFunction : public torch::autograd::Function<RGLRUScanFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor v, torch::Tensor gates, torch::Tensor a_param,
                               torch::Tensor h0, torch::Tensor reset) {
    const Dims d = dims_of(v, gates);
    v = v.contiguous();
    gates = gates.contiguous();
    a_param = a_param.contiguous();
    // Autograd functions take no undefined inputs: "absent" arrives as an empty tensor.
    if (h0.numel() == 0) h0 = torch::Tensor();
    if (reset.numel() == 0) reset = torch::Tensor();
    if (h0.defined()) h0 = h0.contiguous();
    if (reset.defined()) reset = reset.to(torch::kBool).contiguous();
    auto h = torch::empty_like(v);
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "rglru_scan_forward", [&] {
      scan_forward<scalar_t>(d, v.data_ptr<scalar_t>(), gates.data_ptr<scalar_t>(), a_param.data_ptr<scalar_t>(),
                             h0.defined() ? h0.data_ptr<scalar_t>() : nullptr,
                             reset.defined() ? reset.data_ptr<bool>() : nullptr, h.data_ptr<scalar_t>());
    });
    ctx->save_for_backward({v, gates, a_param, h0, reset, h});
    return h;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto v = saved[0], gates = saved[1], a_param = saved[2], h0 = saved[3], reset = saved[4], h = saved[5];
    const Dims d = dims_of(v, gates);
    auto dh = grads[0].contiguous();
    auto dv = torch::empty_like(v);
    auto dg = torch::empty_like(gates);
    auto dsp_rows = torch::zeros({d.B, d.L}, v.options());
    torch::Tensor dh0 = h0.defined() ? torch::empty_like(h0) : torch::Tensor();
    AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "rglru_scan_backward", [&] {
      scan_backward<scalar_t>(d, v.data_ptr<scalar_t>(), gates.data_ptr<scalar_t>(), a_param.data_ptr<scalar_t>(),
                              h0.defined() ? h0.data_ptr<scalar_t>() : nullptr,
                              reset.defined() ? reset.data_ptr<bool>() : nullptr, h.data_ptr<scalar_t>(),
                              dh.data_ptr<scalar_t>(), dv.data_ptr<scalar_t>(), dg.data_ptr<scalar_t>(),
                              dsp_rows.data_ptr<scalar_t>(), dh0.defined() ? dh0.data_ptr<scalar_t>() : nullptr);
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
  auto none = torch::empty({0}, v.options());
  return RGLRUScanFunction::apply(v, gates, a_param, h0.defined() ? h0 : none,
                                  reset.defined() ? reset : none.to(torch::kBool));
}

}  // namespace trecvit

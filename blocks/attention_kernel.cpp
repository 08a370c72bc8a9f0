// spatial_attention on the CPU: the per-group loops of blocks/attention_math.h under one autograd
// function, run over the (b, t, head) groups of the projections in place.
#include <algorithm>
#include <atomic>
#include <cmath>

#include "blocks/attention.h"
#include "blocks/fused_cpu.h"
#include "blocks/parallel_tasks.h"
#include "blocks/simd_kernels.h"

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The (b, t, head) groups of a [B, N, T, D] tensor.
struct Groups {
  int64_t B, N, T, D, H;
  explicit Groups(const torch::Tensor& x, int64_t heads)
      : B(x.size(0)), N(x.size(1)), T(x.size(2)), D(x.size(3)), H(heads) {}
  int64_t count() const { return B * T * H; }
  int64_t offset(int64_t g) const {  // element (0, 0) of group g
    const int64_t h = g % H, t = (g / H) % T, b = g / (H * T);
    return (b * N * T + t) * D + h * (D / H);
  }
  detail::AttentionDims dims() const {
    const int64_t hd = D / H;
    return {N, hd, T * D, 1.0 / std::sqrt(static_cast<double>(hd))};
  }
};

// fn(group, scratch) for every group, the groups pulled by the intra-op threads, each thread with
// its own scratch. A group's result depends on its own rows alone, so nothing depends on the
// thread count or the order.
template <typename S, typename Fn>
void for_each_group(const Groups& gr, int64_t scratch_per_group, const torch::TensorOptions& opt, const Fn& fn) {
  const int64_t G = gr.count();
  const int64_t slots = std::max<int64_t>(1, std::min<int64_t>(G, at::get_num_threads()));
  auto scratch = torch::empty({slots, scratch_per_group}, opt);
  S* base = scratch.data_ptr<S>();
  std::atomic<int64_t> next_slot{0};
  parallel_tasks(
      G, [&] { return base + next_slot.fetch_add(1) * scratch_per_group; },
      [&](int64_t g, S* slot) { fn(g, slot); });
}

// The widest vector build for float, the portable loop otherwise (and for double).
template <typename S>
struct GroupLoops {
  decltype(&detail::attention_forward_group<S, S>) forward = detail::attention_forward_group<S, S>;
  decltype(&detail::attention_backward_group<S, S>) backward = detail::attention_backward_group<S, S>;
  GroupLoops() {
    if constexpr (std::is_same_v<S, float>) {
      if (!detail::float_kernels().empty()) {
        forward = detail::float_kernels()[0].attention_forward;
        backward = detail::float_kernels()[0].attention_backward;
      }
    }
  }
};

class SpatialAttentionFunction : public torch::autograd::Function<SpatialAttentionFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in, const torch::Tensor& k_in,
                               const torch::Tensor& v_in, int64_t heads) {
    // Forward runs with grad mode off, so a contiguous copy would not require grad: ask the
    // arguments, and save them (not the copies) so a graph of the backward reaches them.
    const bool keep = q_in.requires_grad() || k_in.requires_grad() || v_in.requires_grad();
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const Groups gr(q, heads);
    const auto d = gr.dims();
    auto o = torch::empty_like(q);
    torch::Tensor p;
    if (keep) p = torch::empty({gr.count(), d.N, d.Np()}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "spatial_attention_forward", [&] {
      const GroupLoops<scalar_t> loops;
      const scalar_t *pq = q.data_ptr<scalar_t>(), *pk = k.data_ptr<scalar_t>(), *pv = v.data_ptr<scalar_t>();
      scalar_t* po = o.data_ptr<scalar_t>();
      scalar_t* pp = keep ? p.data_ptr<scalar_t>() : nullptr;
      for_each_group<scalar_t>(gr, d.forward_scratch(), q.options(), [&](int64_t g, scalar_t* scratch) {
        const int64_t off = gr.offset(g);
        loops.forward(d, pq + off, pk + off, pv + off, po + off, pp ? pp + g * d.N * d.Np() : nullptr, scratch);
      });
    });
    if (keep) ctx->save_for_backward({q_in, k_in, v_in, p});
    ctx->saved_data["heads"] = heads;
    return o;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const int64_t heads = ctx->saved_data["heads"].toInt();
    if (torch::GradMode::is_enabled()) return differentiable_backward(ctx, saved, grads[0], heads);
    const auto q = saved[0].contiguous(), k = saved[1].contiguous(), v = saved[2].contiguous();
    const auto& p = saved[3];
    auto dout = grads[0].contiguous();
    const Groups gr(q, heads);
    const auto d = gr.dims();
    auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "spatial_attention_backward", [&] {
      const GroupLoops<scalar_t> loops;
      const scalar_t *pq = q.data_ptr<scalar_t>(), *pk = k.data_ptr<scalar_t>(), *pv = v.data_ptr<scalar_t>();
      const scalar_t *pp = p.data_ptr<scalar_t>(), *pdo = dout.data_ptr<scalar_t>();
      scalar_t *pdq = dq.data_ptr<scalar_t>(), *pdk = dk.data_ptr<scalar_t>(), *pdv = dv.data_ptr<scalar_t>();
      for_each_group<scalar_t>(gr, d.backward_scratch(), q.options(), [&](int64_t g, scalar_t* scratch) {
        const int64_t off = gr.offset(g);
        loops.backward(d, pq + off, pk + off, pv + off, pp + g * d.N * d.Np(), pdo + off, pdq + off, pdk + off,
                       pdv + off, scratch);
      });
    });
    return {dq, dk, dv, torch::Tensor()};
  }

 private:
  // Recording a graph of the backward (create_graph): the tensor-op form's, which is differentiable.
  static variable_list differentiable_backward(AutogradContext* ctx, const variable_list& saved,
                                               const torch::Tensor& dout, int64_t heads) {
    std::vector<torch::Tensor> inputs;
    for (size_t i = 0; i < 3; ++i)
      if (ctx->needs_input_grad(i)) inputs.push_back(saved[i]);
    auto o = spatial_attention_reference(saved[0], saved[1], saved[2], heads);
    auto g = torch::autograd::grad({o}, inputs, {dout}, /*retain_graph=*/true, /*create_graph=*/true);
    variable_list out;
    size_t j = 0;
    for (size_t i = 0; i < 3; ++i) out.push_back(ctx->needs_input_grad(i) ? g[j++] : torch::Tensor());
    out.push_back(torch::Tensor());
    return out;
  }
};

}  // namespace

torch::Tensor spatial_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                int64_t num_heads) {
  TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && q.sizes() == v.sizes(),
              "spatial_attention: q, k, v must be [B, N, T, D] of one shape");
  TORCH_CHECK(num_heads > 0 && q.size(3) % num_heads == 0, "spatial_attention: width ", q.size(3),
              " is not divisible by ", num_heads, " heads");
  const bool fused = fused_cpu_kernel_applies(q, k) && fused_cpu_kernel_applies(q, v) && k.is_cpu() && v.is_cpu() &&
                     q.size(1) > 0;
  if (!fused) return spatial_attention_reference(q, k, v, num_heads);
  return SpatialAttentionFunction::apply(q, k, v, num_heads);
}

}  // namespace trecvit

#include "blocks/product_keys.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "blocks/product_key_select.h"

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename T>
inline void axpy(T* y, T alpha, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename T>
void scores_backward(int64_t M, int64_t h, int64_t n, int64_t k, int64_t dk2, const T* q, const T* keys,
                     const int64_t* ids, const T* ds, T* dq, T* dkeys) {
  const int64_t dk = 2 * dk2;
  // dq: per token, from the k selected sub-key pairs of each head.
  at::parallel_for(0, M, 32, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t hd = 0; hd < h; ++hd) {
        T* dqm = dq + (m * h + hd) * dk;
        for (int64_t a = 0; a < k; ++a) {
          const int64_t slot = (m * h + hd) * k + a, i = ids[slot] / n, j = ids[slot] % n;
          axpy(dqm, ds[slot], keys + ((2 * hd) * n + i) * dk2, dk2);
          axpy(dqm + dk2, ds[slot], keys + ((2 * hd + 1) * n + j) * dk2, dk2);
        }
      }
  });
  // dkeys: one task per (head, half) owns its sub-key rows, so no two threads write one row.
  at::parallel_for(0, 2 * h, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t hd = b / 2, half = b % 2;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t a = 0; a < k; ++a) {
          const int64_t slot = (m * h + hd) * k + a;
          const int64_t row = half ? ids[slot] % n : ids[slot] / n;
          axpy(dkeys + (b * n + row) * dk2, ds[slot], q + (m * h + hd) * dk + half * dk2, dk2);
        }
    }
  });
}

class ProductKeyScoresFunction : public torch::autograd::Function<ProductKeyScoresFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor keys, int64_t k, int64_t kh,
                               int64_t chunk) {
    q = q.contiguous();
    keys = keys.contiguous();
    auto [scores, ids] = detail::product_key_select(q, keys, k, kh, chunk);
    ctx->mark_non_differentiable({ids});
    ctx->save_for_backward({q, keys, ids});
    return {scores, ids};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    auto q = s[0], keys = s[1], ids = s[2];
    auto dq = torch::zeros_like(q);
    auto dkeys = torch::zeros_like(keys);
    if (grads[0].defined()) {
      auto ds = grads[0].contiguous();
      AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "product_key_scores_backward", [&] {
        scores_backward<scalar_t>(q.size(0), keys.size(0), keys.size(2), ids.size(2), keys.size(3),
                                  q.data_ptr<scalar_t>(), keys.data_ptr<scalar_t>(), ids.data_ptr<int64_t>(),
                                  ds.data_ptr<scalar_t>(), dq.data_ptr<scalar_t>(), dkeys.data_ptr<scalar_t>());
      });
    }
    return {dq, dkeys, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void check_topk_args(const torch::Tensor& q, const torch::Tensor& keys, int64_t k, int64_t kh) {
  TORCH_CHECK(keys.dim() == 4 && keys.size(1) == 2, "product keys: sub_keys must be [h, 2, n, d_k/2], got ",
              keys.sizes());
  const int64_t h = keys.size(0), n = keys.size(2), dk = 2 * keys.size(3);
  TORCH_CHECK((q.dim() == 2 && q.size(1) == h * dk) || (q.dim() == 3 && q.size(1) == h && q.size(2) == dk),
              "product keys: q must be [M, ", h, " * ", dk, "] or [M, ", h, ", ", dk, "], got ", q.sizes());
  TORCH_CHECK(q.scalar_type() == keys.scalar_type(), "product keys: q and sub_keys must share a dtype");
  TORCH_CHECK(k >= 1 && k <= n, "product keys: topk must be in [1, n = ", n, "], got ", k);
  TORCH_CHECK(kh >= k && kh <= n, "product keys: half_topk must be in [topk = ", k, ", n = ", n, "], got ", kh,
              " (a smaller per-half top-k is not exact)");
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> product_key_topk(const torch::Tensor& q, const torch::Tensor& sub_keys,
                                                         int64_t k, int64_t half_k, int64_t chunk_tokens) {
  check_topk_args(q, sub_keys, k, half_k);
  return detail::product_key_select(q.reshape({q.size(0), -1}).contiguous(), sub_keys.contiguous(), k, half_k,
                   chunk_tokens > 0 ? chunk_tokens : q.size(0));
}

std::pair<torch::Tensor, torch::Tensor> product_key_scores(const torch::Tensor& q, const torch::Tensor& sub_keys,
                                                           int64_t k, int64_t half_k, int64_t chunk_tokens) {
  check_topk_args(q, sub_keys, k, half_k);
  auto out = ProductKeyScoresFunction::apply(q.reshape({q.size(0), -1}), sub_keys, k, half_k,
                                             chunk_tokens > 0 ? chunk_tokens : q.size(0));
  return {out[0], out[1]};
}

ProductKeyRouterImpl::ProductKeyRouterImpl(const ProductKeyRouterOptions& options_) : options(options_) { reset(); }

void ProductKeyRouterImpl::reset() {
  const auto& o = options;
  n_ = std::llround(std::sqrt(double(o.num_keys())));
  TORCH_CHECK(n_ * n_ == o.num_keys(), "channel_mixer.num_experts: must be a perfect square, got ", o.num_keys());
  TORCH_CHECK(o.key_dim() > 0 && o.key_dim() % 2 == 0, "channel_mixer.key_dim: must be even and > 0, got ",
              o.key_dim());
  TORCH_CHECK(o.topk() >= 1 && o.topk() <= n_, "channel_mixer.topk: must be in [1, ", n_, "], got ", o.topk());
  TORCH_CHECK(half_topk() >= o.topk() && half_topk() <= n_, "channel_mixer.half_topk: must be in [topk, ", n_,
              "], got ", half_topk());
  TORCH_CHECK(o.query_norm() == "batch" || o.query_norm() == "layer" || o.query_norm() == "none",
              "channel_mixer.query_norm: must be batch, layer or none, got ", o.query_norm());
  const int64_t D = o.dim(), h = o.heads(), dk = o.key_dim();
  query_proj = register_module("query_proj", torch::nn::Linear(torch::nn::LinearOptions(D, h * dk).bias(o.query_bias())));
  if (o.query_norm() == "batch") batch_norm = register_module("batch_norm", torch::nn::BatchNorm1d(h * dk));
  if (o.query_norm() == "layer") {
    ln_weight = register_parameter("ln_weight", torch::ones({h * dk}));
    ln_bias = register_parameter("ln_bias", torch::zeros({h * dk}));
  }
  // Unit-variance queries (after the norm) and sub-keys of variance 1/d_k give scores of
  // variance about 1 (two halves of d_k/2 terms each).
  sub_keys = register_parameter("sub_keys", torch::randn({h, 2, n_, dk / 2}) / std::sqrt(double(dk)));
  torch::NoGradGuard no_grad;
  query_proj->weight.normal_(0, 1.0 / std::sqrt(double(D)));
  if (o.query_bias()) query_proj->bias.zero_();
}

int64_t ProductKeyRouterImpl::chunk_tokens() const {
  if (options.chunk_tokens() > 0) return options.chunk_tokens();
  // About 1 MiB of scores per head (both halves), so they are read back from L2.
  const int64_t per_token = 2 * n_ * int64_t(sizeof(float));
  return std::max<int64_t>(16, (int64_t(1) << 20) / per_token);
}

torch::Tensor ProductKeyRouterImpl::query(const torch::Tensor& x) {
  auto q = query_proj(x);
  if (batch_norm) return batch_norm(q);
  if (ln_weight.defined()) {
    const int64_t M = q.size(0), h = options.heads(), dk = options.key_dim();
    return torch::layer_norm(q.view({M, h, dk}), {dk}, {}, {}, 1e-5).view({M, h * dk}) * ln_weight + ln_bias;
  }
  return q;
}

Routing ProductKeyRouterImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == options.dim(), "product-key router: x must be [M, ", options.dim(),
              "], got ", x.sizes());
  auto [scores, ids] = product_key_scores(query(x), sub_keys, options.topk(), half_topk(), chunk_tokens());
  // The softmax over the k retrieved scores runs in fp32 even for lower-precision models.
  auto gates = scores.scalar_type() == torch::kDouble ? torch::softmax(scores, -1)
                                                      : torch::softmax(scores.to(torch::kFloat), -1).to(scores.scalar_type());
  return {ids, gates};
}

int64_t ProductKeyRouterImpl::num_params() const {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  return n;
}

int64_t ProductKeyRouterImpl::flops_gemm() const {
  const int64_t D = options.dim(), h = options.heads(), dk = options.key_dim();
  return 2 * D * h * dk + 2 * h * n_ * dk;
}

int64_t ProductKeyRouterImpl::flops_topk() const {
  const int64_t kh = half_topk();
  return options.heads() * (2 * n_ + kh * kh);  // one comparison per sub-key score and per candidate
}

}  // namespace trecvit

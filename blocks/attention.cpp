#include "blocks/attention.h"

#include <cmath>

namespace trecvit {

SpatialAttentionImpl::SpatialAttentionImpl(const SpatialAttentionOptions& options_) : options(options_) {
  TORCH_CHECK(options.num_heads() > 0 && options.dim() % options.num_heads() == 0, "SpatialAttention: dim ",
              options.dim(), " must be divisible by num_heads ", options.num_heads());
  reset();
}

void SpatialAttentionImpl::reset() {
  const int64_t D = options.dim();
  query = register_module("query", torch::nn::Linear(D, D));
  key = register_module("key", torch::nn::Linear(D, D));
  value = register_module("value", torch::nn::Linear(D, D));
  out = register_module("out", torch::nn::Linear(D, D));
  torch::NoGradGuard no_grad;
  for (auto* lin : {&query, &key, &value, &out}) {
    torch::nn::init::xavier_uniform_((*lin)->weight);
    (*lin)->bias.zero_();
  }
}

torch::Tensor SpatialAttentionImpl::forward(const torch::Tensor& x_in) {
  auto x = x_in.dim() == 3 ? x_in.unsqueeze(2) : x_in;  // [B, N, T, D]
  auto y = out(spatial_attention(query(x), key(x), value(x), options.num_heads()));
  return x_in.dim() == 3 ? y.squeeze(2) : y;
}

torch::Tensor spatial_attention_reference(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                          const torch::Tensor& v_in, int64_t num_heads) {
  const int64_t B = q_in.size(0), N = q_in.size(1), T = q_in.size(2), D = q_in.size(3);
  const int64_t H = num_heads, hd = D / H;
  // [B, N, T, H, hd] -> [B, T, H, N, hd]
  auto heads = [&](const torch::Tensor& y) {
    return y.view({B, N, T, H, hd}).permute({0, 2, 3, 1, 4}).reshape({B * T * H, N, hd});
  };
  auto q = heads(q_in), k = heads(k_in), v = heads(v_in);
  torch::Tensor o;
#if TORCH_VERSION_MAJOR >= 2
  o = at::scaled_dot_product_attention(q, k, v);
#else
  // The 1/sqrt(hd) scale rides on the matmul's alpha (beta = 0: the zero-dimensional input is
  // never read).
  auto logits = torch::baddbmm(torch::zeros({}, q.options()), q, k.transpose(1, 2), /*beta=*/0,
                               /*alpha=*/1.0 / std::sqrt(static_cast<double>(hd)));
  o = torch::bmm(torch::softmax(logits, -1), v);
#endif
  return o.view({B, T, H, N, hd}).permute({0, 3, 1, 2, 4}).reshape({B, N, T, D});
}

}  // namespace trecvit

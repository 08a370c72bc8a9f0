#include "blocks/pkm.h"

#include <cmath>

#include "blocks/expert_lookup.h"

namespace trecvit {

PKMOptions pkm_options(const ChannelMixerOptions& o, int64_t dim) {
  return PKMOptions(dim, o.num_experts)
      .heads(o.heads)
      .topk(o.topk)
      .half_topk(o.half_topk)
      .key_dim(o.key_dim)
      .query_norm(o.query_norm)
      .chunk_tokens(o.chunk_tokens)
      .sparse_grad(o.sparse_grad);
}

PKMImpl::PKMImpl(const PKMOptions& options_) : options(options_), stats_(options_.num_slots()) { reset(); }

void PKMImpl::reset() {
  const auto& o = options;
  router = register_module("router", ProductKeyRouter(ProductKeyRouterOptions(o.dim(), o.num_slots())
                                                          .heads(o.heads())
                                                          .topk(o.topk())
                                                          .half_topk(o.half_topk())
                                                          .key_dim(o.key_dim())
                                                          .query_norm(o.query_norm())
                                                          .query_bias(true)
                                                          .chunk_tokens(o.chunk_tokens())));
  // XLM initialises the values N(0, 1/D); the gates of each head sum to 1.
  values = register_parameter("values", torch::empty({o.num_slots(), o.dim()}));
  advise_huge_pages(values);
  torch::NoGradGuard no_grad;
  values.normal_(0, 1.0 / std::sqrt(double(o.dim())));
}

torch::Tensor PKMImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(-1) == options.dim(), "PKM: expected [..., ", options.dim(), "], got ", x.sizes());
  auto flat = x.reshape({-1, options.dim()});
  auto r = router(flat);
  const int64_t M = flat.size(0), S = options.heads() * options.topk();
  stats_.add(r.ids, r.gates, M);
  return weighted_row_sum(r.ids.view({M, S}), r.gates.reshape({M, S}), values, options.sparse_grad()).view(x.sizes());
}

std::vector<torch::Tensor> PKMImpl::sparse_grad_parameters() const {
  if (!options.sparse_grad()) return {};
  return {values};
}

MixerCost PKMImpl::cost() const {
  const int64_t N = options.num_slots(), D = options.dim(), hk = options.heads() * options.topk();
  MixerCost c;
  c.params_total = N * D + router->num_params();
  c.params_active = hk * D + router->num_params();
  c.flops_router = router->flops_gemm() + router->flops_topk();
  c.flops_experts = 2 * hk * D;
  return c;
}

}  // namespace trecvit

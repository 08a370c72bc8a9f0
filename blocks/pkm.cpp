#include "blocks/pkm.h"

#include <cmath>

#include "blocks/expert_lookup.h"
#include "blocks/product_key_fields.h"

namespace trecvit {

ChannelMixerType pkm_mixer_type() {
  auto rows = product_key_fields<PKMOptions>();
  rows.insert(rows.begin(), field<PKMOptions>("num_experts", [](PKMOptions& o) -> auto& { return o.num_slots(); },
                                              "memory slots N = n^2", Check::at_least(1)));
  rows.push_back(TRECVIT_ARG_FIELD(PKMOptions, sparse_grad, "row-sparse gradients for the value table"));
  return mixer_type<PKMImpl, PKMOptions>(
      "pkm", "PKM (Lample et al. 2019, Large Memory Layers with Product Keys): a product-key memory of values.", rows,
      [](const MixerContext& c) { return PKMOptions(c.dim); },
      product_key_finish<PKMOptions>,
      [](const PKMOptions& o) { return product_key_check(o, o.num_slots()); });
}

PKMImpl::PKMImpl(const PKMOptions& options_) : options(options_) { reset(); }

void PKMImpl::reset() {
  stats_ = RoutingStats(options.num_slots());  // a clone collects its own statistics
  const auto& o = options;
  router = register_module("router", ProductKeyRouter(router_options(o, o.dim(), o.num_slots()).query_bias(true)));
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

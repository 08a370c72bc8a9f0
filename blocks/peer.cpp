#include "blocks/peer.h"

#include <cmath>

#include "blocks/product_key_fields.h"

namespace trecvit {

ChannelMixerType peer_mixer_type() {
  auto rows = product_key_fields<PEEROptions>();
  rows.insert(rows.begin(), TRECVIT_ARG_FIELD(PEEROptions, num_experts, "single-neuron experts N = n^2", Check::at_least(1)));
  rows.push_back(TRECVIT_ARG_FIELD(PEEROptions, activation, "expert activation (gelu: tanh form)", Check::one_of({"gelu", "relu"})));
  rows.push_back(TRECVIT_ARG_FIELD(PEEROptions, sparse_grad, "row-sparse gradients for the expert tables"));
  return mixer_type<PEERImpl, PEEROptions>(
      "peer", "PEER (He 2024, Mixture of A Million Experts): product-key retrieval of single-neuron experts.", rows,
      [](const MixerContext& c) { return PEEROptions(c.dim); },
      product_key_finish<PEEROptions>,
      [](const PEEROptions& o) { return product_key_check(o, o.num_experts()); });
}

PEERImpl::PEERImpl(const PEEROptions& options_) : options(options_) { reset(); }

void PEERImpl::reset() {
  stats_ = RoutingStats(options.num_experts());  // a clone collects its own statistics
  const auto& o = options;
  TORCH_CHECK(o.activation() == "gelu" || o.activation() == "relu",
              "channel_mixer.activation: must be gelu or relu, got ", o.activation());
  router = register_module("router", ProductKeyRouter(router_options(o, o.dim(), o.num_experts())));
  const int64_t N = o.num_experts(), D = o.dim();
  // Not N(0, 1) tables: u ~ N(0, 1/D) gives unit-variance pre-activations for the unit-variance
  // (LayerNorm-ed) input; v ~ N(0, 1/(h k)) is the fan-in of the h k active neurons.
  up = register_parameter("up", torch::empty({N, D}));
  down = register_parameter("down", torch::empty({N, D}));
  advise_huge_pages(up);
  advise_huge_pages(down);
  torch::NoGradGuard no_grad;
  up.normal_(0, 1.0 / std::sqrt(double(D)));
  down.normal_(0, 1.0 / std::sqrt(double(o.heads() * o.topk())));
}

torch::Tensor PEERImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.size(-1) == options.dim(), "PEER: expected [..., ", options.dim(), "], got ", x.sizes());
  auto flat = x.reshape({-1, options.dim()});
  auto r = router(flat);
  const int64_t M = flat.size(0), S = options.heads() * options.topk();
  stats_.add(r.ids, r.gates, M);
  auto y = single_neuron_experts(flat, r.ids.view({M, S}), r.gates.reshape({M, S}), up, down,
                                 options.activation() == "relu" ? ExpertActivation::kRelu : ExpertActivation::kGelu,
                                 options.sparse_grad());
  return y.view(x.sizes());
}

std::vector<torch::Tensor> PEERImpl::sparse_grad_parameters() const {
  if (!options.sparse_grad()) return {};
  return {up, down};
}

MixerCost PEERImpl::cost() const {
  const int64_t N = options.num_experts(), D = options.dim(), hk = options.heads() * options.topk();
  MixerCost c;
  c.params_total = 2 * N * D + router->num_params();
  c.params_active = 2 * hk * D + router->num_params();  // every sub-key is scored for every token
  c.flops_router = router->flops_gemm() + router->flops_topk();
  c.flops_experts = 4 * hk * D;
  return c;
}

int64_t PEERImpl::train_working_bytes(int64_t tokens) const {
  const int64_t M = tokens, D = options.dim(), h = options.heads(), k = options.topk(), dk = options.key_dim();
  const int64_t N = options.num_experts(), n = router->n(), S = h * k, f = sizeof(float);
  const int64_t threads = at::get_num_threads();
  const int64_t touched = std::min(N, M * S);  // rows with a gradient (at most one per slot)
  int64_t b = 0;
  b += 8 * M * h * dk * f;                 // query: projection, norm output and statistics, their gradients
  b += 2 * h * n * dk / 2 * f * 2;         // transposed sub-keys for the fused scoring, sub-key gradient
  b += threads * 2 * 8 * (n + dk) * f;     // per-thread scoring tiles (6 tokens x n, both halves)
  b += M * S * (3 * 8 + 8 * f);            // ids, plan order and token; scores, gates and their copies
  b += (N + 1) * 8 + 2 * touched * 8;      // counting sort; touched rows and group offsets
  b += (2 + 2 * threads) * M * D * f;      // y, dx and the per-thread token accumulators
  b += M * D * f;                          // dy made contiguous
  const int64_t table_rows = options.sparse_grad() ? touched : N;
  b += 2 * table_rows * D * f;             // the two table gradients (touched rows only when sparse)
  return b;
}

}  // namespace trecvit

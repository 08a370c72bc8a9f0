#include "blocks/expert_mlps.h"

#include "blocks/norms.h"

namespace trecvit {

torch::Tensor expert_mlps(const torch::Tensor& x, const torch::Tensor& ids, const torch::Tensor& gates,
                          const torch::Tensor& w1, const torch::Tensor& w2, ExpertActivation act) {
  TORCH_CHECK(x.dim() == 2 && ids.dim() == 2 && ids.size(0) == x.size(0) && gates.sizes() == ids.sizes(),
              "expert_mlps: x [M, D], ids and gates [M, K] expected, got ", x.sizes(), ", ", ids.sizes(), ", ",
              gates.sizes());
  TORCH_CHECK(w1.dim() == 3 && w2.dim() == 3 && w1.size(0) == w2.size(0) && w1.size(1) == x.size(1) &&
                  w2.size(1) == w1.size(2) && w2.size(2) == x.size(1),
              "expert_mlps: w1 [E, D, G] and w2 [E, G, D] expected, got ", w1.sizes(), ", ", w2.sizes());
  const int64_t K = ids.size(1), E = w1.size(0);
  if (ids.numel() == 0) return torch::zeros_like(x);
  auto flat = ids.reshape(-1);
  auto order = std::get<1>(flat.sort(/*stable=*/true, 0, false));  // slots grouped by expert, in token order
  auto counts = torch::bincount(flat, {}, E).cpu();
  const int64_t* cnt = counts.data_ptr<int64_t>();
  auto token = order.div(K, "floor");
  auto xs = x.index_select(0, token);
  auto gs = gates.reshape(-1).index_select(0, order);
  // One split/unbind each: slicing per expert (narrow, w1[e]) would give every slice its own
  // dense full-size gradient in the backward.
  auto w1s = w1.unbind(0), w2s = w2.unbind(0);
  auto xe = xs.split_with_sizes(c10::IntArrayRef(cnt, E), 0);
  std::vector<torch::Tensor> outs;
  for (int64_t e = 0; e < E; ++e) {
    if (cnt[e] == 0) continue;
    auto hidden = xe[e].mm(w1s[e]);
    hidden = act == ExpertActivation::kGelu ? gelu_tanh(hidden) : torch::relu(hidden);
    outs.push_back(hidden.mm(w2s[e]));
  }
  auto out = torch::cat(outs) * gs.unsqueeze(1);
  return torch::zeros_like(x).index_add(0, token, out);
}

}  // namespace trecvit

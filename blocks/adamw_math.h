#pragma once
// AdamW's per-element update for any lane type V (blocks/simd_lanes.h), in LibTorch's order
// (torch::optim::AdamW): p *= decay; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p += -step (m / (sqrt(v) / sqrt(bc2) + eps)). One pass instead of about ten tensor ops.
#include <cstdint>

#include "blocks/simd_lanes.h"

namespace trecvit::detail {

struct AdamWScalars {
  float decay, beta1, beta2, one_minus_beta1, one_minus_beta2, bc2_sqrt, eps, minus_step;
};

// Internal linkage, as for Lanes (blocks/simd_lanes.h).
namespace {

template <typename V, typename S>
inline void adamw_lanes(const AdamWScalars& c, S* p, const S* g, S* m, S* v, int64_t i) {
  using O = Lanes<V, S>;
  const V gi = O::load(g + i);
  const V pi = O::load(p + i) * O::splat(c.decay);
  const V mi = O::load(m + i) * O::splat(c.beta1) + O::splat(c.one_minus_beta1) * gi;
  const V vi = O::load(v + i) * O::splat(c.beta2) + O::splat(c.one_minus_beta2) * gi * gi;
  O::store(m + i, mi);
  O::store(v + i, vi);
  O::store(p + i, pi + O::splat(c.minus_step) * (mi / (O::sqrt(vi) / O::splat(c.bc2_sqrt) + O::splat(c.eps))));
}

template <typename V, typename S>
void adamw_loop(const AdamWScalars& c, S* p, const S* g, S* m, S* v, int64_t n) {
  int64_t i = 0;
  for (; i + Lanes<V, S>::width <= n; i += Lanes<V, S>::width) adamw_lanes<V, S>(c, p, g, m, v, i);
  for (; i < n; ++i) adamw_lanes<S, S>(c, p, g, m, v, i);
}

}  // namespace

}  // namespace trecvit::detail

#pragma once
// GELU with the tanh approximation (jax.nn.gelu's default), forward and backward loops for any
// lane type (blocks/simd_lanes.h). 0.5 (1 + tanh u) = sigmoid(2u), so
//   gelu(x) = x s,   s = sigmoid(2u),   u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu'(x) = s + x s (1 - s) 2 du/dx,   du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
// one exp and one division per element, where tanh costs more.
#include <cstdint>

#include "blocks/simd_lanes.h"

namespace trecvit::detail {

constexpr double kGeluSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluCubic = 0.044715;

// Internal linkage, as for Lanes (blocks/simd_lanes.h).
namespace {

template <typename V, typename S>
inline V gelu_gate(V x) {  // s = sigmoid(2u)
  using O = Lanes<V, S>;
  const V two_u = O::splat(S(2 * kGeluSqrt2OverPi)) * (x + O::splat(S(kGeluCubic)) * x * x * x);
  return O::splat(S(1)) / (O::splat(S(1)) + O::exp(-two_u));
}

template <typename V, typename S>
void gelu_forward_loop(const S* x, S* y, int64_t n) {
  using O = Lanes<V, S>;
  int64_t i = 0;
  for (; i + O::width <= n; i += O::width) {
    const V xv = O::load(x + i);
    O::store(y + i, xv * gelu_gate<V, S>(xv));
  }
  for (; i < n; ++i) y[i] = x[i] * gelu_gate<S, S>(x[i]);
}

template <typename V, typename S>
inline V gelu_grad(V x, V g) {
  using O = Lanes<V, S>;
  const V one = O::splat(S(1));
  const V s = gelu_gate<V, S>(x);
  const V du = O::splat(S(2 * kGeluSqrt2OverPi)) * (one + O::splat(S(3 * kGeluCubic)) * x * x);
  return g * (s + x * s * (one - s) * du);
}

template <typename V, typename S>
void gelu_backward_loop(const S* x, const S* g, S* dx, int64_t n) {
  using O = Lanes<V, S>;
  int64_t i = 0;
  for (; i + O::width <= n; i += O::width) O::store(dx + i, gelu_grad<V, S>(O::load(x + i), O::load(g + i)));
  for (; i < n; ++i) dx[i] = gelu_grad<S, S>(x[i], g[i]);
}

}  // namespace

}  // namespace trecvit::detail

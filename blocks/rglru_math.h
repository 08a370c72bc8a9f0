#pragma once
// The RG-LRU's per-element math and its loops over (sequence, time, channel), written once
// for any lane type V (blocks/simd_lanes.h): the portable path here, the vector builds in
// simd_avx2.cpp and simd_avx512.cpp.
#include <algorithm>
#include <cstdint>

#include "blocks/simd_lanes.h"

namespace trecvit::detail {

struct ScanDims {
  int64_t B, T, L, H, bw;  // sequences, time, width, gate blocks, block width
};

constexpr double kC = 8.0;                 // log a = -c r softplus(p)
constexpr double kMaxSqrtGradient = 1000.0;  // sqrt backward clamps its input to >= 1/(4 max^2)

// Internal linkage, as for Lanes (blocks/simd_lanes.h).
namespace {

// h_t for one lane group. `start`: time 0 of a new sequence (multiplier 1, state ignored).
template <typename V, typename S>
inline V lru_forward(V gx, V gr, V v, V sp, V h_prev, bool start) {
  using O = Lanes<V, S>;
  const V one = O::splat(S(1));
  const V i_t = one / (one + O::exp(-gx));
  const V r_t = one / (one + O::exp(-gr));
  const V gated_x = v * i_t;
  if (start) return gated_x;
  const V log_a = O::splat(S(-kC)) * r_t * sp;
  const V a = O::exp(log_a);
  const V a_sq = a * a;
  return a * h_prev + gated_x * O::sqrt(one - a_sq);
}

// Gradients of one lane group given grad = dL/dh_t (incoming + carried). Writes dv, dgx, dgr,
// accumulates dsp, and returns the carry dL/dh_{t-1} = a_t grad.
template <typename V, typename S>
inline V lru_backward(V gx, V gr, V v, V sp, V h_prev, bool start, V grad, V& dv, V& dgx, V& dgr, V& dsp) {
  using O = Lanes<V, S>;
  const V one = O::splat(S(1)), zero = O::splat(S(0));
  const V i_t = one / (one + O::exp(-gx));
  const V r_t = one / (one + O::exp(-gr));
  V mult = one, dlog_a = zero, carry = zero;
  if (!start) {
    const V log_a = O::splat(S(-kC)) * r_t * sp;
    const V a = O::exp(log_a);
    const V a_sq = a * a;
    const V one_minus = one - a_sq;
    mult = O::sqrt(one_minus);
    const V dmult = grad * v * i_t;
    const V floor = O::splat(S(1.0 / (4.0 * kMaxSqrtGradient * kMaxSqrtGradient)));
    const V da_sq = -dmult * O::splat(S(0.5)) / O::sqrt(O::max(one_minus, floor));
    dlog_a = grad * h_prev * a + da_sq * O::splat(S(2)) * a_sq;
    carry = grad * a;
  }
  dv = grad * i_t * mult;
  dgx = grad * v * mult * i_t * (one - i_t);
  dgr = dlog_a * O::splat(S(-kC)) * sp * r_t * (one - r_t);
  dsp = dsp + dlog_a * O::splat(S(-kC)) * r_t;
  return carry;
}

// Forward over sequences [b0, b1). Layouts: v, h [B, T, L]; g [H, B*T, 2, bw]; sp = softplus(p) [L];
// h0 [B, L] or null; reset [B] or null (null: every row starts at t = 0).
template <typename V, typename S>
void forward_rows(const ScanDims& d, const S* v, const S* g, const S* sp, const S* h0, const bool* reset, S* h,
                  int64_t b0, int64_t b1) {
  using O = Lanes<V, S>;
  const int64_t M = d.B * d.T;
  const S zero_row = S(0);
  for (int64_t b = b0; b < b1; ++b) {
    const S* prev = h0 ? h0 + b * d.L : nullptr;
    for (int64_t t = 0; t < d.T; ++t) {
      const bool start = t == 0 && (reset == nullptr || reset[b]);
      const int64_t m = b * d.T + t;
      const S* v_t = v + m * d.L;
      S* h_t = h + m * d.L;
      for (int64_t hd = 0; hd < d.H; ++hd) {
        const S* gx = g + (hd * M + m) * 2 * d.bw;
        const S* gr = gx + d.bw;
        int64_t j = 0;
        for (; j + O::width <= d.bw; j += O::width) {
          const int64_t l = hd * d.bw + j;
          const V hp = prev ? O::load(prev + l) : O::splat(zero_row);
          O::store(h_t + l, lru_forward<V, S>(O::load(gx + j), O::load(gr + j), O::load(v_t + l), O::load(sp + l), hp, start));
        }
        for (; j < d.bw; ++j) {  // remainder lanes
          const int64_t l = hd * d.bw + j;
          h_t[l] = lru_forward<S, S>(gx[j], gr[j], v_t[l], sp[l], prev ? prev[l] : S(0), start);
        }
      }
      prev = h_t;
    }
  }
}

// Backward over sequences [b0, b1), newest time first. `carry` is scratch of L elements;
// dsp_rows [B, L] receives per-sequence partial sums (reduced by the caller).
template <typename V, typename S>
void backward_rows(const ScanDims& d, const S* v, const S* g, const S* sp, const S* h0, const bool* reset,
                   const S* h, const S* dh, S* dv, S* dg, S* dsp_rows, S* dh0, S* carry, int64_t b0, int64_t b1) {
  using O = Lanes<V, S>;
  const int64_t M = d.B * d.T;
  for (int64_t b = b0; b < b1; ++b) {
    std::fill(carry, carry + d.L, S(0));
    S* dsp = dsp_rows + b * d.L;
    for (int64_t t = d.T - 1; t >= 0; --t) {
      const bool start = t == 0 && (reset == nullptr || reset[b]);
      const int64_t m = b * d.T + t;
      const S* v_t = v + m * d.L;
      const S* dh_t = dh + m * d.L;
      const S* h_prev = t > 0 ? h + (m - 1) * d.L : (h0 ? h0 + b * d.L : nullptr);
      S* dv_t = dv + m * d.L;
      for (int64_t hd = 0; hd < d.H; ++hd) {
        const int64_t goff = (hd * M + m) * 2 * d.bw;
        const S *gx = g + goff, *gr = gx + d.bw;
        S *dgx = dg + goff, *dgr = dgx + d.bw;
        int64_t j = 0;
        for (; j + O::width <= d.bw; j += O::width) {
          const int64_t l = hd * d.bw + j;
          V dv_l, dgx_l, dgr_l, dsp_l = O::load(dsp + l);
          const V grad = O::load(dh_t + l) + O::load(carry + l);
          const V hp = h_prev ? O::load(h_prev + l) : O::splat(S(0));
          const V c = lru_backward<V, S>(O::load(gx + j), O::load(gr + j), O::load(v_t + l), O::load(sp + l), hp,
                                         start, grad, dv_l, dgx_l, dgr_l, dsp_l);
          O::store(carry + l, c);
          O::store(dv_t + l, dv_l);
          O::store(dgx + j, dgx_l);
          O::store(dgr + j, dgr_l);
          O::store(dsp + l, dsp_l);
        }
        for (; j < d.bw; ++j) {
          const int64_t l = hd * d.bw + j;
          carry[l] = lru_backward<S, S>(gx[j], gr[j], v_t[l], sp[l], h_prev ? h_prev[l] : S(0), start,
                                        dh_t[l] + carry[l], dv_t[l], dgx[j], dgr[j], dsp[l]);
        }
      }
    }
    if (dh0) std::copy(carry, carry + d.L, dh0 + b * d.L);
  }
}

}  // namespace

}  // namespace trecvit::detail

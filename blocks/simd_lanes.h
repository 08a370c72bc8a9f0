#pragma once
// Lane traits for the hand-written loops: the loops are templates over a lane type V with scalar
// type S, so one source serves the portable path (V = S, here) and each vector build
// (blocks/simd_avx2.cpp, simd_avx512.cpp specialise Lanes for 8 and 16 floats, each compiled for
// its instruction set). No LibTorch in these headers, so those translation units stay free of
// the precompiled header's flags.
#include <algorithm>
#include <cmath>

namespace trecvit::detail {

// Internal linkage: each translation unit, compiled for its own instruction set, keeps its own
// copy, so the linker can never pick an AVX-512 build of a scalar helper for the portable path.
namespace {

template <typename V, typename S>
struct Lanes {
  static constexpr int width = 1;
  static V load(const S* p) { return *p; }
  static void store(S* p, V x) { *p = x; }
  static V splat(S x) { return x; }
  static V exp(V x) { return std::exp(x); }
  static V sqrt(V x) { return std::sqrt(x); }
  static V max(V a, V b) { return std::max(a, b); }
  static S hsum(V x) { return x; }  // across the lanes
  static S hmax(V x) { return x; }
};

// e^x for the vector builds, written once: e^x = 2^n e^r with n = round(x / ln 2),
// |r| <= ln 2 / 2, and e^r from Cephes' degree-6 polynomial (about 1 ulp on this range).
// Inlined, unlike a call into libsleef, so a loop's live vectors stay in registers (every
// vector register is caller-saved across a call). A vector Lanes adds min, round (to nearest)
// and times_pow2(p, n) = p 2^n. NaN propagates (the min/max intrinsics return their second
// operand on NaN); the clamp keeps 2^n finite: below -87.3 the result is about 1e-38, not 0,
// far below anything the gates can resolve.
template <typename V>
inline V exp_cephes(V x) {
  using O = Lanes<V, float>;
  x = O::max(O::splat(-87.3f), O::min(O::splat(88.3f), x));
  const V n = O::round(x * O::splat(1.44269504088896341f));
  // ln 2 in two parts so that n * ln2_hi is exact.
  const V r = x - n * O::splat(0.693359375f) - n * O::splat(-2.12194440e-4f);
  V p = O::splat(1.9875691500e-4f);
  p = p * r + O::splat(1.3981999507e-3f);
  p = p * r + O::splat(8.3334519073e-3f);
  p = p * r + O::splat(4.1665795894e-2f);
  p = p * r + O::splat(1.6666665459e-1f);
  p = p * r + O::splat(5.0000001201e-1f);
  p = p * (r * r) + (r + O::splat(1.0f));
  return O::times_pow2(p, n);
}

}  // namespace

}  // namespace trecvit::detail

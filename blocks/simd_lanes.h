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
};

}  // namespace

}  // namespace trecvit::detail

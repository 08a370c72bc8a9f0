// The float loops (RG-LRU scan, GELU, attention, AdamW) with 16-wide AVX-512 lanes and the inlined exp_cephes. This file alone is compiled with -mavx512f -mfma; float_kernels() checks the CPU first.
#include <immintrin.h>

#include "blocks/gelu_math.h"
#include "blocks/simd_kernels.h"

namespace trecvit::detail {

namespace {

using v16f = __m512;

template <>
struct Lanes<v16f, float> {
  static constexpr int width = 16;
  static v16f load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, v16f x) { _mm512_storeu_ps(p, x); }
  static v16f splat(float x) { return _mm512_set1_ps(x); }
  static v16f exp(v16f x) { return exp_cephes(x); }
  static v16f sqrt(v16f x) { return _mm512_sqrt_ps(x); }
  static v16f max(v16f a, v16f b) { return _mm512_max_ps(a, b); }
  static v16f min(v16f a, v16f b) { return _mm512_min_ps(a, b); }
  static v16f round(v16f x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static v16f times_pow2(v16f p, v16f n) { return _mm512_scalef_ps(p, n); }
  static float hsum(v16f x) { return _mm512_reduce_add_ps(x); }
  static float hmax(v16f x) { return _mm512_reduce_max_ps(x); }
};

}  // namespace

// The loops' instantiations for these lanes, used through float_kernels().
const FloatKernels kAvx512Kernels{"avx512", forward_rows<v16f, float>, backward_rows<v16f, float>,
                                gelu_forward_loop<v16f, float>, gelu_backward_loop<v16f, float>,
                                attention_forward_group<v16f, float>, attention_backward_group<v16f, float>,
                                adamw_loop<v16f, float>};

}  // namespace trecvit::detail

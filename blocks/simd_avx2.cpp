// The float loops (RG-LRU scan, GELU, attention, AdamW) with 8-wide AVX2 lanes and the inlined exp_cephes.
// This file alone is compiled with -mavx2 -mfma; float_kernels() checks the CPU first.
#include <immintrin.h>

#include "blocks/gelu_math.h"
#include "blocks/simd_kernels.h"

namespace trecvit::detail {

namespace {

using v8f = __m256;

template <>
struct Lanes<v8f, float> {
  static constexpr int width = 8;
  static v8f load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, v8f x) { _mm256_storeu_ps(p, x); }
  static v8f splat(float x) { return _mm256_set1_ps(x); }
  static v8f exp(v8f x) { return exp_cephes(x); }
  static v8f sqrt(v8f x) { return _mm256_sqrt_ps(x); }
  static v8f max(v8f a, v8f b) { return _mm256_max_ps(a, b); }
  static v8f min(v8f a, v8f b) { return _mm256_min_ps(a, b); }
  static v8f round(v8f x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static v8f times_pow2(v8f p, v8f n) {  // 2^n built in the exponent bits (n in [-126, 127])
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  static float hsum(v8f x) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
  }
  static float hmax(v8f x) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
  }
};

}  // namespace

// The loops' instantiations for these lanes, used through float_kernels().
const FloatKernels kAvx2Kernels{"avx2", forward_rows<v8f, float>, backward_rows<v8f, float>,
                                gelu_forward_loop<v8f, float>, gelu_backward_loop<v8f, float>,
                                attention_forward_group<v8f, float>, attention_backward_group<v8f, float>,
                                adamw_loop<v8f, float>};

}  // namespace trecvit::detail

// The float loops (RG-LRU scan, GELU) with 8-wide AVX2 lanes and an inlined exp.
// This file alone is compiled with -mavx2 -mfma; float_kernels() checks the CPU first.
#include <immintrin.h>

#include "blocks/gelu_math.h"
#include "blocks/simd_kernels.h"

namespace trecvit::detail {

namespace {

using v8f = __m256;

// e^x = 2^n e^r with n = round(x / ln 2), |r| <= ln 2 / 2, and e^r from Cephes' degree-6
// polynomial (about 1 ulp on this range). Inlined, unlike a call into libsleef, so a
// loop's live vectors stay in registers (every ymm register is caller-saved across a call).
// NaN propagates (min/max return their second operand on NaN); the clamp keeps 2^n finite:
// below -87.3 the result is about 1e-38, not 0, far below anything the gates can resolve.
inline v8f exp_avx2(v8f x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.3f), _mm256_min_ps(_mm256_set1_ps(88.3f), x));
  const v8f n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 in two parts so that n * ln2_hi is exact.
  v8f r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  v8f p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

template <>
struct Lanes<v8f, float> {
  static constexpr int width = 8;
  static v8f load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, v8f x) { _mm256_storeu_ps(p, x); }
  static v8f splat(float x) { return _mm256_set1_ps(x); }
  static v8f exp(v8f x) { return exp_avx2(x); }
  static v8f sqrt(v8f x) { return _mm256_sqrt_ps(x); }
  static v8f max(v8f a, v8f b) { return _mm256_max_ps(a, b); }
};

}  // namespace

// The loops' instantiations for these lanes, used through float_kernels().
const FloatKernels kAvx2Kernels{"avx2", forward_rows<v8f, float>, backward_rows<v8f, float>,
                                gelu_forward_loop<v8f, float>, gelu_backward_loop<v8f, float>};

}  // namespace trecvit::detail

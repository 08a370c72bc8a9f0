// The float loops (RG-LRU scan, GELU) with 16-wide AVX-512 lanes: simd_avx2.cpp's math, twice
// the lanes. This file alone is compiled with -mavx512f -mfma; float_kernels() checks the CPU first.
#include <immintrin.h>

#include "blocks/gelu_math.h"
#include "blocks/simd_kernels.h"

namespace trecvit::detail {

namespace {

using v16f = __m512;

// The same range reduction and Cephes polynomial as exp_avx2; scalef applies 2^n exactly.
inline v16f exp_avx512(v16f x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.3f), _mm512_min_ps(_mm512_set1_ps(88.3f), x));
  const v16f n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v16f r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  v16f p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

template <>
struct Lanes<v16f, float> {
  static constexpr int width = 16;
  static v16f load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, v16f x) { _mm512_storeu_ps(p, x); }
  static v16f splat(float x) { return _mm512_set1_ps(x); }
  static v16f exp(v16f x) { return exp_avx512(x); }
  static v16f sqrt(v16f x) { return _mm512_sqrt_ps(x); }
  static v16f max(v16f a, v16f b) { return _mm512_max_ps(a, b); }
};

}  // namespace

// The loops' instantiations for these lanes, used through float_kernels().
const FloatKernels kAvx512Kernels{"avx512", forward_rows<v16f, float>, backward_rows<v16f, float>,
                                gelu_forward_loop<v16f, float>, gelu_backward_loop<v16f, float>};

}  // namespace trecvit::detail

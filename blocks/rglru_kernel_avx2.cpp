// The float RG-LRU loops with 8-wide AVX2 lanes and SLEEF's vectorised exp (1 ulp).
// This file alone is compiled with -mavx2 -mfma; callers check avx2_available() first.
#include <immintrin.h>
#include <sleef.h>

#include "blocks/rglru_math.h"

namespace trecvit::detail {

using v8f = __m256;

template <>
struct Lanes<v8f, float> {
  static constexpr int width = 8;
  static v8f load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, v8f x) { _mm256_storeu_ps(p, x); }
  static v8f splat(float x) { return _mm256_set1_ps(x); }
  static v8f exp(v8f x) { return Sleef_expf8_u10avx2(x); }
  static v8f sqrt(v8f x) { return _mm256_sqrt_ps(x); }
  static v8f max(v8f a, v8f b) { return _mm256_max_ps(a, b); }
};

void forward_rows_avx2(const ScanDims& d, const float* v, const float* g, const float* sp, const float* h0,
                       const bool* reset, float* h, int64_t b0, int64_t b1) {
  forward_rows<v8f, float>(d, v, g, sp, h0, reset, h, b0, b1);
}

void backward_rows_avx2(const ScanDims& d, const float* v, const float* g, const float* sp, const float* h0,
                        const bool* reset, const float* h, const float* dh, float* dv, float* dg, float* dsp_rows,
                        float* dh0, float* carry, int64_t b0, int64_t b1) {
  backward_rows<v8f, float>(d, v, g, sp, h0, reset, h, dh, dv, dg, dsp_rows, dh0, carry, b0, b1);
}

}  // namespace trecvit::detail

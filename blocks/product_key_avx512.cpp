// The fused product-key scoring and per-half selection in 16-lane AVX-512 registers. This file
// alone is compiled with -mavx512f -mfma; product_key_select() checks the CPU first.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "blocks/product_key_kernels.h"

namespace trecvit::detail {
namespace {

constexpr int64_t kRows = kSelectRows;

// 64 keys per step, 24 accumulators in zmm registers; each output is the same chain of fused
// multiply-adds over d as in the AVX2 build, so the two agree bit for bit.
void score_rows(const float* qpack, const float* kt, int64_t dk2, int64_t n, float* out) {
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {
    __m512 acc[kRows][4];
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < 4; ++c) acc[r][c] = _mm512_setzero_ps();
    for (int64_t d = 0; d < dk2; ++d) {
      const float* kd = kt + d * n + j;
      const __m512 k0 = _mm512_loadu_ps(kd), k1 = _mm512_loadu_ps(kd + 16), k2 = _mm512_loadu_ps(kd + 32),
                   k3 = _mm512_loadu_ps(kd + 48);
      for (int r = 0; r < kRows; ++r) {
        const __m512 b = _mm512_set1_ps(qpack[r * dk2 + d]);
        acc[r][0] = _mm512_fmadd_ps(b, k0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(b, k1, acc[r][1]);
        acc[r][2] = _mm512_fmadd_ps(b, k2, acc[r][2]);
        acc[r][3] = _mm512_fmadd_ps(b, k3, acc[r][3]);
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int c = 0; c < 4; ++c) _mm512_storeu_ps(out + r * n + j + 16 * c, acc[r][c]);
  }
  for (; j + 16 <= n; j += 16) {
    __m512 acc[kRows];
    for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t d = 0; d < dk2; ++d) {
      const __m512 k0 = _mm512_loadu_ps(kt + d * n + j);
      for (int r = 0; r < kRows; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(qpack[r * dk2 + d]), k0, acc[r]);
    }
    for (int r = 0; r < kRows; ++r) _mm512_storeu_ps(out + r * n + j, acc[r]);
  }
  for (; j < n; ++j)
    for (int r = 0; r < kRows; ++r) {
      float s = 0;
      for (int64_t d = 0; d < dk2; ++d) s = std::fma(qpack[r * dk2 + d], kt[d * n + j], s);
      out[r * n + j] = s;
    }
}

// Lane i of a 16-lane bitonic stage (blocks of k, partners i ^ j) keeps the smaller of the pair
// when this bit is set; the directions give a descending sort.
constexpr __mmask16 bitonic_min_lanes(int k, int j) {
  unsigned m = 0;
  for (int i = 0; i < 16; ++i)
    if (((i & j) != 0) == ((i & k) == 0)) m |= 1u << i;
  return __mmask16(m);
}

inline __m512 sort16_descending(__m512 x) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int k = 2; k <= 16; k *= 2)
    for (int j = k / 2; j >= 1; j /= 2) {
      const __m512 p = _mm512_permutexvar_ps(_mm512_xor_si512(iota, _mm512_set1_epi32(j)), x);
      x = _mm512_mask_blend_ps(bitonic_min_lanes(k, j), _mm512_max_ps(x, p), _mm512_min_ps(x, p));
    }
  return x;
}

// A bar <= the kh-th largest score: the 32 residue classes mod 32 are 32 disjoint blocks whose
// maxima sit in two registers, and the kh-th largest of those maxima is reached by kh distinct
// elements. It lets about 21 scores of 1024 through at kh = 16. The maxima are ranked by sorting
// networks: with A sorted descending and B ascending, max(A, B) holds the 16 largest of the 32
// and min(A, B) the 16 smallest.
float bar_of_class_maxima(const float* s, int64_t n, int64_t kh) {
  __m512 a = _mm512_loadu_ps(s), b = _mm512_loadu_ps(s + 16);
  for (int64_t j = 32; j < n; j += 32) {
    a = _mm512_max_ps(a, _mm512_loadu_ps(s + j));
    b = _mm512_max_ps(b, _mm512_loadu_ps(s + j + 16));
  }
  const __m512i reverse = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  a = sort16_descending(a);
  b = _mm512_permutexvar_ps(reverse, sort16_descending(b));
  if (kh == 16) return _mm512_reduce_min_ps(_mm512_max_ps(a, b));
  alignas(64) float ranked[16];
  _mm512_store_ps(ranked, sort16_descending(kh < 16 ? _mm512_max_ps(a, b) : _mm512_min_ps(a, b)));
  return ranked[kh < 16 ? kh - 1 : kh - 17];
}

// Rows with n % 32 == 0 and kh <= 32. The scores >= the bar are compressed, in index order, into
// a small list without branches; when there are at most 32, each one's rank (how many are
// larger, plus how many equal ones come earlier: ties to the smaller index) is two compares and
// two popcounts against the whole list, and it is written straight to its place. More than 32
// (heavy ties) go through sorted insertion in index order; fewer than kh (only with NaN scores,
// which no comparison lets through) through plain insertion of the whole row.
void half_topk(const float* s, int64_t n, int64_t kh, float* v, int64_t* idx) {
  constexpr int64_t kCap = 96;
  alignas(64) float cand[kCap + 16];
  alignas(64) int32_t cidx[kCap + 16];
  _mm512_store_ps(cand + 16, _mm512_setzero_ps());  // lanes [c, 32) are read (and masked off) below
  const __m512 bar = _mm512_set1_ps(bar_of_class_maxima(s, n, kh));
  const __m512i step = _mm512_set1_epi32(16);
  __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int64_t c = 0;
  for (int64_t t = 0; t < n; t += 16, lane = _mm512_add_epi32(lane, step)) {
    const __m512 x = _mm512_loadu_ps(s + t);
    const __mmask16 m = _mm512_cmp_ps_mask(x, bar, _CMP_GE_OQ);
    const int64_t at = std::min(c, kCap);  // past the cap the tail is overwritten; the list is not used then
    _mm512_storeu_ps(cand + at, _mm512_maskz_compress_ps(m, x));
    _mm512_storeu_si512(cidx + at, _mm512_maskz_compress_epi32(m, lane));
    c += __builtin_popcount(m);
  }
  int64_t cnt = 0;
  if (c < kh) {
    topk_by_insertion(s, n, kh, v, idx);
  } else if (c > 32) {
    if (c > kCap) {
      const float b = _mm512_cvtss_f32(bar);
      for (int64_t t = 0; t < n; ++t)
        if (s[t] >= b && (cnt < kh || s[t] > v[kh - 1])) insert_sorted(s[t], t, kh, cnt, v, idx);
    } else {
      for (int64_t j = 0; j < c; ++j)
        if (cnt < kh || cand[j] > v[kh - 1]) insert_sorted(cand[j], int64_t(cidx[j]), kh, cnt, v, idx);
    }
  } else {
    const __mmask32 valid = __mmask32((uint64_t(1) << c) - 1);
    const __m512 lo = _mm512_load_ps(cand), hi = _mm512_load_ps(cand + 16);
    alignas(64) float rv[32];
    alignas(64) int32_t ri[32];
    for (int64_t j = 0; j < c; ++j) {
      const __m512 x = _mm512_set1_ps(cand[j]);
      const uint32_t gt = uint32_t(_mm512_cmp_ps_mask(lo, x, _CMP_GT_OQ)) |
                          uint32_t(_mm512_cmp_ps_mask(hi, x, _CMP_GT_OQ)) << 16;
      const uint32_t eq = uint32_t(_mm512_cmp_ps_mask(lo, x, _CMP_EQ_OQ)) |
                          uint32_t(_mm512_cmp_ps_mask(hi, x, _CMP_EQ_OQ)) << 16;
      const int r = __builtin_popcount(gt & valid) + __builtin_popcount(eq & valid & ((uint32_t(1) << j) - 1));
      rv[r] = cand[j];
      ri[r] = cidx[j];
    }
    for (int64_t r = 0; r < kh; ++r) {
      v[r] = rv[r];
      idx[r] = ri[r];
    }
  }
}

}  // namespace

const SelectKernels kAvx512Select{score_rows, half_topk};

}  // namespace trecvit::detail

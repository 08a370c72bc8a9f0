#pragma once
// Pieces of the fused product-key selection (blocks/product_key_select.cpp) shared with its
// AVX-512 build (blocks/product_key_avx512.cpp, compiled for that instruction set alone and
// called only on a CPU that has it).
#include <cstdint>

namespace trecvit::detail {

constexpr int64_t kSelectRows = 6;  // tokens per register tile of the fused scoring

// Inserts x (at index t) into the sorted list v/idx of kh entries (cnt filled so far); on equal
// scores the earlier index stays in front.
template <typename T>
inline void insert_sorted(T x, int64_t t, int64_t kh, int64_t& cnt, T* v, int64_t* idx) {
  int64_t p = cnt < kh ? cnt++ : kh - 1;
  while (p > 0 && x > v[p - 1]) {
    v[p] = v[p - 1];
    idx[p] = idx[p - 1];
    --p;
  }
  v[p] = x;
  idx[p] = t;
}

// The kh best of s[0..n) by insertion alone: short rows, and the fallback of the screened
// scans when fewer than kh scores pass their bar (only NaN scores fail every comparison).
template <typename T>
inline void topk_by_insertion(const T* s, int64_t n, int64_t kh, T* v, int64_t* idx) {
  int64_t cnt = 0;
  for (int64_t t = 0; t < n; ++t)
    if (cnt < kh || s[t] > v[kh - 1]) insert_sorted(s[t], t, kh, cnt, v, idx);
}

struct SelectKernels {
  // out[r, j] = sum_d qpack[r, d] kt[d, j] for kSelectRows rows, each a chain of fused
  // multiply-adds over d in order (so every build gives the same bits).
  void (*score_rows)(const float* qpack, const float* kt, int64_t dk2, int64_t n, float* out);
  // The kh best of s[0..n) into v (descending) and idx, ties to the smaller index.
  void (*half_topk)(const float* s, int64_t n, int64_t kh, float* v, int64_t* idx);
};

#ifdef TRECVIT_HAVE_SIMD_KERNELS
// half_topk here needs n % 32 == 0 and kh <= 32 (avx512_half_topk_fits).
extern const SelectKernels kAvx512Select;
inline bool avx512_half_topk_fits(int64_t n, int64_t kh) { return n % 32 == 0 && kh <= 32; }
#endif

}  // namespace trecvit::detail

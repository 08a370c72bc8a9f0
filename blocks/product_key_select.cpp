#include "blocks/product_key_select.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "blocks/parallel_tasks.h"
#include "blocks/product_key_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TRECVIT_PK_AVX2 1
#endif

namespace trecvit::detail {
namespace {

// The kh best of s[0..n) into v (descending) and idx; ties keep the smaller index.
// Insertions are the cost, so a bar is set first: split the row into kh blocks; the smallest
// block maximum is <= the kh-th largest value (kh distinct elements reach it), so only values
// >= that bar can be in the result, and typically only a few dozen pass it. fp32 rows are
// scanned 4 lanes at a time with SSE; other types take the same path in scalar code.
template <typename T>
inline void half_topk(const T* s, int64_t n, int64_t kh, T* v, int64_t* idx) {
  if (n < 4 * kh) return topk_by_insertion(s, n, kh, v, idx);  // short rows
  int64_t cnt = 0, t = 0;
  const int64_t bs = n / kh;
  T bar = std::numeric_limits<T>::infinity();
  for (int64_t b = 0; b < kh; ++b) {
    const int64_t lo = b * bs, hi = b + 1 == kh ? n : lo + bs;
    T mx = s[lo];
    int64_t i = lo + 1;
#ifdef __SSE2__
    if constexpr (std::is_same_v<T, float>) {
      if (hi - i >= 8) {
        __m128 m = _mm_set1_ps(mx);
        for (; i + 4 <= hi; i += 4) m = _mm_max_ps(m, _mm_loadu_ps(s + i));
        alignas(16) float lanes[4];
        _mm_store_ps(lanes, m);
        mx = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
      }
    }
#endif
    for (; i < hi; ++i) mx = std::max(mx, s[i]);
    bar = std::min(bar, mx);
  }
#ifdef __SSE2__
  if constexpr (std::is_same_v<T, float>) {
    const __m128 b4 = _mm_set1_ps(bar);
    for (; t + 8 <= n; t += 8) {
      int mask = _mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(s + t), b4)) |
                 (_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(s + t + 4), b4)) << 4);
      while (mask) {
        const int64_t i = t + __builtin_ctz(mask);
        mask &= mask - 1;
        if (cnt < kh || s[i] > v[kh - 1]) insert_sorted(s[i], i, kh, cnt, v, idx);
      }
    }
  }
#endif
  for (; t < n; ++t)
    if (s[t] >= bar && (cnt < kh || s[t] > v[kh - 1])) insert_sorted(s[t], t, kh, cnt, v, idx);
  if (cnt < kh) topk_by_insertion(s, n, kh, v, idx);  // NaN scores
}

// Final top-k over the kh^2 candidates, ordered by (score descending, id ascending). Both halves
// are sorted, so a row or column stops as soon as its sums fall below the current k-th score.
template <typename T>
inline void combine(const T* v1, const int64_t* i1, const T* v2, const int64_t* i2, int64_t kh, int64_t n, int64_t k,
                    T* ov, int64_t* oid) {
  int64_t cnt = 0;
  for (int64_t a = 0; a < kh; ++a) {
    if (cnt == k && v1[a] + v2[0] < ov[k - 1]) break;
    for (int64_t b = 0; b < kh; ++b) {
      const T sc = v1[a] + v2[b];
      const int64_t id = i1[a] * n + i2[b];
      if (cnt == k) {
        if (sc < ov[k - 1]) break;
        if (!(sc > ov[k - 1] || id < oid[k - 1])) continue;
      }
      int64_t p = cnt < k ? cnt++ : k - 1;
      while (p > 0 && (sc > ov[p - 1] || (sc == ov[p - 1] && id < oid[p - 1]))) {
        ov[p] = ov[p - 1];
        oid[p] = oid[p - 1];
        --p;
      }
      ov[p] = sc;
      oid[p] = id;
    }
  }
}

// sub: [2, Mc, n], the two halves' sub-key scores of head hd; out: [Mc, h, k] at head hd.
template <typename T>
void select_head(const T* sub, int64_t Mc, int64_t hd, int64_t h, int64_t n, int64_t k, int64_t kh, T* ov,
                 int64_t* oid) {
  at::parallel_for(0, Mc, 16, [&](int64_t m0, int64_t m1) {
    std::vector<T> v1(kh), v2(kh);
    std::vector<int64_t> i1(kh), i2(kh);
    for (int64_t m = m0; m < m1; ++m) {
      half_topk(sub + m * n, n, kh, v1.data(), i1.data());
      half_topk(sub + (Mc + m) * n, n, kh, v2.data(), i2.data());
      const int64_t r = m * h + hd;
      combine(v1.data(), i1.data(), v2.data(), i2.data(), kh, n, k, ov + r * k, oid + r * k);
    }
  });
}

// Generic path (any dtype, any CPU): one head of one chunk at a time, its two [chunk, n] score
// blocks written by a BLAS GEMM and read back by the selection while still in cache.
void select_generic(const torch::Tensor& q, const torch::Tensor& keys, int64_t k, int64_t kh, int64_t chunk,
                    torch::Tensor& scores, torch::Tensor& ids) {
  const int64_t M = q.size(0), h = keys.size(0), n = keys.size(2), dk2 = keys.size(3);
  chunk = std::max<int64_t>(1, std::min(chunk, M));
  auto kt = keys.transpose(2, 3);  // [h, 2, dk2, n]: BLAS reads it transposed
  auto buf = torch::empty({2 * chunk * n}, q.options());
  for (int64_t m0 = 0; m0 < M; m0 += chunk) {
    const int64_t Mc = std::min(chunk, M - m0);
    auto qc = q.narrow(0, m0, Mc).view({Mc, h, 2, dk2});
    auto sub = buf.narrow(0, 0, 2 * Mc * n).view({2, Mc, n});
    for (int64_t hd = 0; hd < h; ++hd) {
      torch::bmm_out(sub, qc.select(1, hd).transpose(0, 1), kt[hd]);  // [2, Mc, dk2] x [2, dk2, n]
      AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "product_key_select", [&] {
        select_head<scalar_t>(sub.data_ptr<scalar_t>(), Mc, hd, h, n, k, kh, scores.data_ptr<scalar_t>() + m0 * h * k,
                              ids.data_ptr<int64_t>() + m0 * h * k);
      });
    }
  }
}

#ifdef TRECVIT_PK_AVX2
constexpr int64_t kRows = kSelectRows;  // 6 x 16 accumulators in 12 ymm registers

// out[r, j] = sum_d qpack[r, d] kt[d, j] for kRows rows; kt is one half's transposed sub-keys.
__attribute__((target("avx2,fma"))) void score_rows_avx2(const float* qpack, const float* kt, int64_t dk2,
                                                          int64_t n, float* out) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 acc[kRows][2];
    for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t d = 0; d < dk2; ++d) {
      const __m256 k0 = _mm256_loadu_ps(kt + d * n + j), k1 = _mm256_loadu_ps(kt + d * n + j + 8);
      for (int r = 0; r < kRows; ++r) {
        const __m256 b = _mm256_broadcast_ss(qpack + r * dk2 + d);
        acc[r][0] = _mm256_fmadd_ps(b, k0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(b, k1, acc[r][1]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      _mm256_storeu_ps(out + r * n + j, acc[r][0]);
      _mm256_storeu_ps(out + r * n + j + 8, acc[r][1]);
    }
  }
  for (; j < n; ++j)  // n not a multiple of 16: the same fused multiply-adds, one key at a time
    for (int r = 0; r < kRows; ++r) {
      float s = 0;
      for (int64_t d = 0; d < dk2; ++d) s = std::fma(qpack[r * dk2 + d], kt[d * n + j], s);
      out[r * n + j] = s;
    }
}

bool avx2_fma() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}

struct Scratch {
  std::vector<float> qpack, sub, v;
  std::vector<int64_t> i;
};

// fp32 with AVX2 + FMA: scoring and selection fused per (6 tokens, head) task, so the scores
// never leave L1/L2, there is no BLAS call (and no second thread pool), and tasks are
// scheduled dynamically. Each half is selected right after it is scored, while its 6 x n
// scores are in L1. Memory: 6 x n floats per thread, whatever M is.
void select_fused(const torch::Tensor& q, const torch::Tensor& keys, int64_t k, int64_t kh, const SelectKernels& kern,
                  torch::Tensor& scores, torch::Tensor& ids) {
  const int64_t M = q.size(0), h = keys.size(0), n = keys.size(2), dk2 = keys.size(3), dk = 2 * dk2;
  auto kt = keys.transpose(2, 3).contiguous();  // [h, 2, dk2, n]
  const float* qp = q.data_ptr<float>();
  const float* ktp = kt.data_ptr<float>();
  float* ov = scores.data_ptr<float>();
  int64_t* oid = ids.data_ptr<int64_t>();
  const int64_t blocks = (M + kRows - 1) / kRows;
  parallel_tasks(
      blocks * h,
      [&] {
        Scratch s;
        s.qpack.resize(kRows * dk2);
        s.sub.resize(kRows * n);
        s.v.resize(2 * kRows * kh), s.i.resize(2 * kRows * kh);
        return s;
      },
      [&](int64_t task, Scratch& s) {
        const int64_t hd = task / blocks, m0 = (task % blocks) * kRows;  // head-major: its keys stay in L2
        const int64_t rows = std::min(kRows, M - m0);
        for (int64_t half = 0; half < 2; ++half) {
          for (int64_t r = 0; r < kRows; ++r) {
            if (r < rows)
              std::copy_n(qp + (m0 + r) * h * dk + hd * dk + half * dk2, dk2, s.qpack.data() + r * dk2);
            else
              std::fill_n(s.qpack.data() + r * dk2, dk2, 0.0f);
          }
          kern.score_rows(s.qpack.data(), ktp + (hd * 2 + half) * dk2 * n, dk2, n, s.sub.data());
          for (int64_t r = 0; r < rows; ++r)
            kern.half_topk(s.sub.data() + r * n, n, kh, s.v.data() + (half * kRows + r) * kh,
                           s.i.data() + (half * kRows + r) * kh);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t o = ((m0 + r) * h + hd) * k, second = (kRows + r) * kh;
          combine(s.v.data() + r * kh, s.i.data() + r * kh, s.v.data() + second, s.i.data() + second, kh, n, k,
                  ov + o, oid + o);
        }
      });
}
#endif

}  // namespace

const std::vector<SelectPath>& select_paths() {
  static const std::vector<SelectPath> paths = [] {
    std::vector<SelectPath> p;
#ifdef TRECVIT_PK_AVX2
#ifdef TRECVIT_HAVE_SIMD_KERNELS
    if (avx2_fma() && __builtin_cpu_supports("avx512f")) p.push_back(SelectPath::kAvx512);
#endif
    if (avx2_fma()) p.push_back(SelectPath::kAvx2);
#endif
    p.push_back(SelectPath::kGeneric);
    return p;
  }();
  return paths;
}

std::pair<torch::Tensor, torch::Tensor> product_key_select(const torch::Tensor& q, const torch::Tensor& keys,
                                                           int64_t k, int64_t kh, int64_t chunk, SelectPath path) {
  torch::NoGradGuard no_grad;
  const int64_t M = q.size(0), h = keys.size(0);
  auto scores = torch::empty({M, h, k}, q.options());
  auto ids = torch::empty({M, h, k}, q.options().dtype(torch::kLong));
  if (M == 0) return {scores, ids};
  const auto& paths = select_paths();
  if (path == SelectPath::kAuto) path = paths.front();
  TORCH_CHECK(std::find(paths.begin(), paths.end(), path) != paths.end(),
              "product_key_select: this CPU cannot run the requested kernel");
#ifdef TRECVIT_PK_AVX2
  if (q.scalar_type() == torch::kFloat && path != SelectPath::kGeneric) {
    const int64_t n = keys.size(2);
    SelectKernels kern{score_rows_avx2, half_topk<float>};
#ifdef TRECVIT_HAVE_SIMD_KERNELS
    if (path == SelectPath::kAvx512) {
      kern.score_rows = kAvx512Select.score_rows;
      if (avx512_half_topk_fits(n, kh)) kern.half_topk = kAvx512Select.half_topk;
    }
#endif
    select_fused(q, keys, k, kh, kern, scores, ids);
    return {scores, ids};
  }
#endif
  select_generic(q, keys, k, kh, chunk, scores, ids);
  return {scores, ids};
}

}  // namespace trecvit::detail

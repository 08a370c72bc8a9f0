#pragma once
// Softmax attention over the N tokens of one (clip, frame, head) group, forward and backward,
// written once for any lane type V (blocks/simd_lanes.h), like the scan and GELU loops:
//   S = scale Q K^T,   P = softmax_rows(S),   O = P V
//   dV = P^T dO,   dP = dO V^T,   dS = P o (dP - rowsum(P o dP)),   dQ = scale dS K,   dK = scale dS^T Q
// A frame has few tokens (16 to 200), so LibTorch 1.13's CPU bmm, which slices the batch and
// dispatches one small GEMM per head, spends most of its time outside arithmetic; here each
// product is a register-tiled loop over the group's rows, read in place from the projections'
// token-major [B, N, T, D] layout (row stride ld = T D), so no head-major copies are made either.
#include <algorithm>
#include <cstdint>

#include "blocks/simd_lanes.h"

namespace trecvit::detail {

// Widths are padded to a multiple of 16 for every build, so the layout of the saved P and of the
// scratch does not depend on which build runs.
constexpr int64_t kAttentionPad = 16;

struct AttentionDims {
  int64_t N, hd, ld;  // tokens, head width, row stride of q, k, v, o and their gradients
  double scale;       // 1 / sqrt(hd)
  int64_t Np() const { return (N + kAttentionPad - 1) / kAttentionPad * kAttentionPad; }
  int64_t hdp() const { return (hd + kAttentionPad - 1) / kAttentionPad * kAttentionPad; }
  // Scratch elements one group needs: forward, and backward.
  int64_t forward_scratch() const { return hdp() * Np() + N * Np() + 2 * N * hdp(); }
  int64_t backward_scratch() const { return hdp() * Np() + N * Np() + 6 * N * hdp(); }
};

// Internal linkage, as for Lanes (blocks/simd_lanes.h).
namespace {

// Register tiles: rows of A broadcast, vectors of B's row loaded, MR x NR accumulators.
template <int W>
struct TileShape {
  static constexpr int MR = 4, NR = 4;  // portable
};
template <>
struct TileShape<8> {  // AVX2: 12 accumulators + 3 loads + 1 broadcast = 16 registers
  static constexpr int MR = 4, NR = 3;
};
template <>
struct TileShape<16> {  // AVX-512: 24 + 4 + 1 of 32 registers
  static constexpr int MR = 6, NR = 4;
};

// C[MR, NR W] = alpha A[MR, K] B[K, NR W], with A's element (r, k) at a[r ars + k aks], so a
// transposed A costs nothing.
template <typename V, typename S, int MR, int NR>
void gemm_tile(int64_t K, S alpha, const S* a, int64_t ars, int64_t aks, const S* b, int64_t ldb, S* c,
               int64_t ldc) {
  using O = Lanes<V, S>;
  constexpr int W = O::width;
  V acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int n = 0; n < NR; ++n) acc[r][n] = O::splat(S(0));
  for (int64_t k = 0; k < K; ++k) {
    V bv[NR];
    for (int n = 0; n < NR; ++n) bv[n] = O::load(b + k * ldb + n * W);
    for (int r = 0; r < MR; ++r) {
      const V av = O::splat(a[r * ars + k * aks]);
      for (int n = 0; n < NR; ++n) acc[r][n] = av * bv[n] + acc[r][n];
    }
  }
  const V al = O::splat(alpha);
  for (int r = 0; r < MR; ++r)
    for (int n = 0; n < NR; ++n) O::store(c + r * ldc + n * W, acc[r][n] * al);
}

template <typename V, typename S, int MR>
void gemm_row_block(int nr, int64_t K, S alpha, const S* a, int64_t ars, int64_t aks, const S* b, int64_t ldb, S* c,
                    int64_t ldc) {
  constexpr int NRmax = TileShape<Lanes<V, S>::width>::NR;
  switch (nr) {
    case 1: return gemm_tile<V, S, MR, 1>(K, alpha, a, ars, aks, b, ldb, c, ldc);
    case 2: return gemm_tile<V, S, MR, (NRmax >= 2 ? 2 : 1)>(K, alpha, a, ars, aks, b, ldb, c, ldc);
    case 3: return gemm_tile<V, S, MR, (NRmax >= 3 ? 3 : 1)>(K, alpha, a, ars, aks, b, ldb, c, ldc);
    default: return gemm_tile<V, S, MR, NRmax>(K, alpha, a, ars, aks, b, ldb, c, ldc);
  }
}

// C[M, cols] = alpha A[M, K] B[K, cols]; cols is a multiple of kAttentionPad.
template <typename V, typename S>
void gemm(int64_t M, int64_t cols, int64_t K, S alpha, const S* a, int64_t ars, int64_t aks, const S* b,
          int64_t ldb, S* c, int64_t ldc) {
  using Shape = TileShape<Lanes<V, S>::width>;
  constexpr int W = Lanes<V, S>::width;
  for (int64_t i = 0; i < M; i += Shape::MR) {
    const int mr = static_cast<int>(std::min<int64_t>(Shape::MR, M - i));
    for (int64_t j = 0; j < cols; j += Shape::NR * W) {
      const int nr = static_cast<int>(std::min<int64_t>(Shape::NR, (cols - j) / W));
      const S* ai = a + i * ars;
      S* cij = c + i * ldc + j;
      switch (mr) {
        case 1: gemm_row_block<V, S, 1>(nr, K, alpha, ai, ars, aks, b + j, ldb, cij, ldc); break;
        case 2: gemm_row_block<V, S, (Shape::MR >= 2 ? 2 : 1)>(nr, K, alpha, ai, ars, aks, b + j, ldb, cij, ldc); break;
        case 3: gemm_row_block<V, S, (Shape::MR >= 3 ? 3 : 1)>(nr, K, alpha, ai, ars, aks, b + j, ldb, cij, ldc); break;
        case 4: gemm_row_block<V, S, (Shape::MR >= 4 ? 4 : 1)>(nr, K, alpha, ai, ars, aks, b + j, ldb, cij, ldc); break;
        case 5: gemm_row_block<V, S, (Shape::MR >= 5 ? 5 : 1)>(nr, K, alpha, ai, ars, aks, b + j, ldb, cij, ldc); break;
        default: gemm_row_block<V, S, Shape::MR>(nr, K, alpha, ai, ars, aks, b + j, ldb, cij, ldc); break;
      }
    }
  }
}

// Rows [N, hd] at stride ld -> [N, hdp] with zero columns from hd. Every operand is packed: in
// place, a row stride of T D floats (a multiple of 4 KiB in the small config at 8 frames) maps a
// group's rows onto a few cache sets, and the products then miss L1 on every row.
template <typename V, typename S>
const S* pack_rows(const AttentionDims& d, const S* src, S* dst) {
  using O = Lanes<V, S>;
  const int64_t hdp = d.hdp(), hd = d.hd;
  for (int64_t i = 0; i < d.N; ++i) {
    const S* s = src + i * d.ld;
    S* t = dst + i * hdp;
    int64_t c = 0;
    for (; c + O::width <= hd; c += O::width) O::store(t + c, O::load(s + c));
    for (; c < hd; ++c) t[c] = s[c];
    for (; c < hdp; ++c) t[c] = S(0);
  }
  return dst;
}

template <typename V, typename S>
void unpack_rows(const AttentionDims& d, const S* src, S* dst) {
  using O = Lanes<V, S>;
  const int64_t hdp = d.hdp(), hd = d.hd;
  for (int64_t i = 0; i < d.N; ++i) {
    const S* s = src + i * hdp;
    S* t = dst + i * d.ld;
    int64_t c = 0;
    for (; c + O::width <= hd; c += O::width) O::store(t + c, O::load(s + c));
    for (; c < hd; ++c) t[c] = s[c];
  }
}

// Packed [N, hdp] -> [hd, Np] with zero columns from N.
template <typename S>
void transpose_packed(const AttentionDims& d, const S* src, S* dst) {
  const int64_t Np = d.Np(), hdp = d.hdp();
  for (int64_t c = 0; c < d.hd; ++c) {
    for (int64_t i = 0; i < d.N; ++i) dst[c * Np + i] = src[i * hdp + c];
    std::fill(dst + c * Np + d.N, dst + (c + 1) * Np, S(0));
  }
}

// Row-wise softmax of s [N, Np] over its first N columns, in place; the padding becomes 0.
template <typename V, typename S>
void softmax_rows(const AttentionDims& d, S* s) {
  using O = Lanes<V, S>;
  constexpr int W = O::width;
  const int64_t N = d.N, Np = d.Np();
  for (int64_t i = 0; i < N; ++i) {
    S* row = s + i * Np;
    S m = row[0];
    int64_t j = 0;
    if (N >= W) {
      V mv = O::load(row);
      for (j = W; j + W <= N; j += W) mv = O::max(mv, O::load(row + j));
      m = O::hmax(mv);
    }
    for (; j < N; ++j) m = std::max(m, row[j]);
    const V mv = O::splat(m);
    for (j = 0; j < Np; j += W) O::store(row + j, O::exp(O::load(row + j) - mv));
    std::fill(row + N, row + Np, S(0));
    V sv = O::splat(S(0));
    for (j = 0; j < Np; j += W) sv = sv + O::load(row + j);
    const V inv = O::splat(S(1) / O::hsum(sv));
    for (j = 0; j < Np; j += W) O::store(row + j, O::load(row + j) * inv);
  }
}

// One group. q, k, v, o: row 0 of the group at stride d.ld. p: the group's [N, Np] probabilities,
// kept for the backward (may point into scratch when there is none).
template <typename V, typename S>
void attention_forward_group(const AttentionDims& d, const S* q, const S* k, const S* v, S* o, S* p, S* scratch) {
  const int64_t N = d.N, Np = d.Np(), hdp = d.hdp();
  S* kt = scratch;  // [hdp, Np]
  S* qb = kt + hdp * Np;  // [N, hdp], then the output
  S* vb = qb + N * hdp;
  if (p == nullptr) p = vb + N * hdp;
  transpose_packed(d, pack_rows<V, S>(d, k, vb), kt);
  gemm<V, S>(N, Np, d.hd, S(d.scale), pack_rows<V, S>(d, q, qb), hdp, 1, kt, Np, p, Np);
  softmax_rows<V, S>(d, p);
  gemm<V, S>(N, hdp, N, S(1), p, Np, 1, pack_rows<V, S>(d, v, vb), hdp, qb, hdp);
  unpack_rows<V, S>(d, qb, o);
}

// One group's gradients from dO (do_) and the forward's P.
template <typename V, typename S>
void attention_backward_group(const AttentionDims& d, const S* q, const S* k, const S* v, const S* p, const S* do_,
                              S* dq, S* dk, S* dv, S* scratch) {
  using O = Lanes<V, S>;
  constexpr int W = O::width;
  const int64_t N = d.N, Np = d.Np(), hdp = d.hdp();
  S* vt = scratch;          // [hdp, Np]
  S* ds = vt + hdp * Np;    // [N, Np]: dP, then dS in place
  S* bufs = ds + N * Np;    // six [N, hdp]: padded dO, K, Q and the three outputs
  const S* dob = pack_rows<V, S>(d, do_, bufs);
  transpose_packed(d, pack_rows<V, S>(d, v, bufs + 3 * N * hdp), vt);
  gemm<V, S>(N, Np, d.hd, S(1), dob, hdp, 1, vt, Np, ds, Np);
  for (int64_t i = 0; i < N; ++i) {
    S* dsi = ds + i * Np;
    const S* pi = p + i * Np;
    V acc = O::splat(S(0));
    for (int64_t j = 0; j < Np; j += W) acc = acc + O::load(pi + j) * O::load(dsi + j);
    const V dv_ = O::splat(O::hsum(acc));
    for (int64_t j = 0; j < Np; j += W) O::store(dsi + j, O::load(pi + j) * (O::load(dsi + j) - dv_));
  }
  const S* kb = pack_rows<V, S>(d, k, bufs + N * hdp);
  const S* qb = pack_rows<V, S>(d, q, bufs + 2 * N * hdp);
  S* g = bufs + 3 * N * hdp;  // dV, dQ, dK
  gemm<V, S>(N, hdp, N, S(1), p, 1, Np, dob, hdp, g, hdp);                     // P^T dO
  gemm<V, S>(N, hdp, N, S(d.scale), ds, Np, 1, kb, hdp, g + N * hdp, hdp);     // dS K
  gemm<V, S>(N, hdp, N, S(d.scale), ds, 1, Np, qb, hdp, g + 2 * N * hdp, hdp);  // dS^T Q
  unpack_rows<V, S>(d, g, dv);
  unpack_rows<V, S>(d, g + N * hdp, dq);
  unpack_rows<V, S>(d, g + 2 * N * hdp, dk);
}

}  // namespace

}  // namespace trecvit::detail

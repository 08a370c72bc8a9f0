#include "blocks/expert_lookup.h"

#include <ATen/Parallel.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <algorithm>
#include <atomic>
#include <memory>
#include <type_traits>
#include <vector>

#include "blocks/parallel_tasks.h"
#include "blocks/simd_kernels.h"

namespace trecvit {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Eight independent partial sums: the compiler vectorises them without -ffast-math.
template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <typename T>
inline void axpy(T* y, T alpha, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// Rows come from tables far larger than the caches: ask for the rows of the group kPrefetch
// ahead while this one is computed. Prefetching into L2 (not L1) measured about 1.7x faster
// here: L1-level prefetches stall once the L1 miss buffers are full.
constexpr int64_t kPrefetch = 4;

template <typename T>
inline void prefetch_row(const T* row, int64_t n) {
  const char* p = reinterpret_cast<const char*>(row);
  const int64_t bytes = n * int64_t(sizeof(T));
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 0, 1);
}

template <typename T>
inline T activate(ExpertActivation act, T z) {
  return act == ExpertActivation::kGelu ? gelu_tanh_scalar(z) : (z > T(0) ? z : T(0));
}
template <typename T>
inline T activate_grad(ExpertActivation act, T z) {
  return act == ExpertActivation::kGelu ? gelu_tanh_grad_scalar(z) : (z > T(0) ? T(1) : T(0));
}

// act(z) or act'(z) for n values at once: the vector GELU loops where the CPU has them (float),
// else value by value. A ragged tail goes through the vector loop too, padded, so each value
// takes the same code wherever it sits in the batch (with one worker per chunk, a token's
// output is then the same bits alone or batched; more workers sum partial rows in task order).
template <typename T>
void activate_all(ExpertActivation act, bool grad, const T* z, T* out, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (act == ExpertActivation::kGelu && !detail::float_kernels().empty()) {
      const auto& k = detail::float_kernels().front();
      constexpr int64_t kPad = 16;  // a multiple of every build's width
      const float ones[kPad] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
      auto run = [&](const float* zi, float* o, int64_t m) {
        if (!grad) return k.gelu_forward(zi, o, m);
        for (int64_t i = 0; i < m; i += kPad) k.gelu_backward(zi + i, ones, o + i, kPad);
      };
      const int64_t body = n - n % kPad;
      run(z, out, body);
      if (body < n) {
        float zt[kPad] = {}, ot[kPad];
        std::copy(z + body, z + n, zt);
        run(zt, ot, kPad);
        std::copy_n(ot, n - body, out + body);
      }
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) out[i] = grad ? activate_grad(act, z[i]) : activate(act, z[i]);
}

struct Dims {
  int64_t M, S, N, D;
};

// Slots grouped by expert row, per chunk of tokens: the kernels walk each chunk in ascending
// row order, so each touched row is read once per chunk, at increasing addresses, and its
// gradient is summed in place by one thread: the backward is a single pass with no atomics
// (about 15% faster here than a token-order pass plus a separate table-gradient pass). Chunks
// keep the token rows (x, y, dy, dx) in cache. Built once in the forward, reused by the backward.
int64_t chunk_tokens(int64_t D, int64_t elem) {
  return std::clamp<int64_t>((int64_t(4) << 20) / (D * elem), 256, 4096);  // about 4 MiB per token array
}

struct Plan {
  int64_t chunk;         // tokens per chunk
  torch::Tensor rows;    // [G] expert id of each group (ascending within a chunk)
  torch::Tensor start;   // [G + 1] group g owns order[start[g] .. start[g + 1])
  torch::Tensor order;   // [M * S] slot indices m * S + s, in group order
  torch::Tensor token;   // [M * S] the token m of each entry of order
  torch::Tensor chunks;  // [C + 1] chunk c owns groups [chunks[c], chunks[c + 1])
};

// Counting sort of each chunk's slots by expert id: O(chunk slots + N) per chunk.
Plan make_plan(const int64_t* ids, const Dims& d, int64_t chunk) {
  const int64_t C = (d.M + chunk - 1) / chunk;
  std::vector<int64_t> pos(d.N + 1), rows, start, chunks{0};
  auto order = torch::empty({d.M * d.S}, torch::kLong), token = torch::empty({d.M * d.S}, torch::kLong);
  int64_t* ord = order.data_ptr<int64_t>();
  int64_t* tok = token.data_ptr<int64_t>();
  for (int64_t c = 0; c < C; ++c) {
    const int64_t s0 = c * chunk * d.S, s1 = std::min(d.M, (c + 1) * chunk) * d.S;
    std::fill(pos.begin(), pos.end(), 0);
    for (int64_t i = s0; i < s1; ++i) ++pos[ids[i] + 1];
    for (int64_t e = 0; e < d.N; ++e) {
      if (pos[e + 1] > 0) {
        rows.push_back(e);
        start.push_back(s0 + pos[e]);
      }
      pos[e + 1] += pos[e];
    }
    for (int64_t i = s0; i < s1; ++i) {
      const int64_t j = s0 + pos[ids[i]]++;
      ord[j] = i;
      tok[j] = i / d.S;
    }
    chunks.push_back(int64_t(rows.size()));
  }
  start.push_back(d.M * d.S);
  auto vec = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); };
  return {chunk, vec(rows), vec(start), order, token, vec(chunks)};
}

// Per-thread accumulators for the token rows of one chunk (y or dx): threads own disjoint groups
// but share tokens. With one thread they are the output rows themselves.
template <typename T>
struct TokenRows {
  TokenRows(int64_t threads, int64_t rows, int64_t D, T* out) : threads_(threads), rows_(rows), D_(D), out_(out) {
    if (threads > 1) buf_.assign(size_t(threads * rows * D), T(0));
    else std::fill(out, out + rows * D, T(0));
  }
  T* slice(int64_t t) { return threads_ > 1 ? buf_.data() + t * rows_ * D_ : out_; }
  void reduce() {
    if (threads_ == 1) return;
    at::parallel_for(0, rows_, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        T* o = out_ + r * D_;
        std::fill(o, o + D_, T(0));
        for (int64_t t = 0; t < threads_; ++t) axpy(o, T(1), buf_.data() + (t * rows_ + r) * D_, D_);
      }
    });
  }
  int64_t threads_, rows_, D_;
  T* out_;
  std::vector<T> buf_;
};

constexpr int64_t kGroupsPerTask = 256;

// Threads that for_groups may use on chunk c (thread ids are below this).
int64_t workers(const Plan& p, int64_t c) {
  const int64_t* ch = p.chunks.data_ptr<int64_t>();
  const int64_t tasks = (ch[c + 1] - ch[c] + kGroupsPerTask - 1) / kGroupsPerTask;
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tasks));
}

// Runs body(group, thread) over the groups of chunk c, in tasks of kGroupsPerTask groups.
template <typename F>
void for_groups(const Plan& p, int64_t c, F body) {
  const int64_t* ch = p.chunks.data_ptr<int64_t>();
  const int64_t g0 = ch[c], g1 = ch[c + 1], per_task = kGroupsPerTask;
  std::atomic<int64_t> thread_ids{0};
  parallel_tasks(
      (g1 - g0 + per_task - 1) / per_task, [&] { return thread_ids.fetch_add(1); },
      [&](int64_t task, int64_t tid) {
        for (int64_t g = g0 + task * per_task, e = std::min(g1, g + per_task); g < e; ++g) body(g, tid);
      });
}

// Kernels read everything per entry of `order` (gates, z, dg) in that order: gathered once
// into sorted arrays, not looked up at random per slot.
// up == nullptr: the weighted row sum (no up-projection, no activation, no z).
// gs: gates in plan order; zs: out, pre-activations in plan order; as: scratch, g act(z).
// With an up-projection each chunk takes two passes in row order, u . x into zs, then y += g
// act(z) v, with the activation of the whole chunk vectorised in between: each table row is
// still read once, and no scalar tanh runs per slot.
template <typename T>
void lookup_forward(const Dims& d, const Plan& p, const T* x, const T* gs, const T* up, const T* down,
                    ExpertActivation act, T* zs, T* as, T* y) {
  const int64_t* rows = p.rows.data_ptr<int64_t>();
  const int64_t* start = p.start.data_ptr<int64_t>();
  const int64_t* token = p.token.data_ptr<int64_t>();
  const int64_t* ch = p.chunks.data_ptr<int64_t>();
  const int64_t G = p.rows.numel();
  for (int64_t c = 0; c + 1 < p.chunks.numel(); ++c) {
    const int64_t m0 = c * p.chunk, Mc = std::min(p.chunk, d.M - m0);
    if (up) {
      for_groups(p, c, [&](int64_t grp, int64_t) {
        if (grp + kPrefetch < G) prefetch_row(up + rows[grp + kPrefetch] * d.D, d.D);
        const T* u = up + rows[grp] * d.D;
        for (int64_t i = start[grp]; i < start[grp + 1]; ++i) zs[i] = dot(u, x + token[i] * d.D, d.D);
      });
      const int64_t i0 = start[ch[c]], i1 = start[ch[c + 1]];
      activate_all(act, false, zs + i0, as + i0, i1 - i0);
      for (int64_t i = i0; i < i1; ++i) as[i] *= gs[i];
    }
    const T* coef = up ? as : gs;
    TokenRows<T> acc(workers(p, c), Mc, d.D, y + m0 * d.D);
    for_groups(p, c, [&](int64_t grp, int64_t tid) {
      if (grp + kPrefetch < G) prefetch_row(down + rows[grp + kPrefetch] * d.D, d.D);
      const T* v = down + rows[grp] * d.D;
      T* ys = acc.slice(tid) - m0 * d.D;
      for (int64_t i = start[grp]; i < start[grp + 1]; ++i) axpy(ys + token[i] * d.D, coef[i], v, d.D);
    });
    acc.reduce();
  }
}

// One pass in row order per chunk: dg per entry (plan order), dx (per-thread rows), and each
// touched row's table gradients, summed in place:
//   t = down[e] . dy[m];  dg = act(z) t;  cu = g act'(z) t
//   dx[m] += cu up[e];  dup[e] += cu x[m];  ddown[e] += g act(z) dy[m]
// grad_row(group) is where a group's gradient rows go: a dense table row (accumulated, as a row
// recurs in later token chunks) or its own sparse value row (written fresh: no zero-fill pass).
// as, das: act(z) and act'(z) in plan order (unused without an up-projection).
template <typename T, typename RowFn>
void lookup_backward(const Dims& d, const Plan& p, const T* x, const T* gs, const T* up, const T* down,
                     const T* as, const T* das, const T* dy, T* dgs, T* dx, T* dup, T* ddown, RowFn grad_row,
                     bool fresh_rows) {
  const int64_t* rows = p.rows.data_ptr<int64_t>();
  const int64_t* start = p.start.data_ptr<int64_t>();
  const int64_t* token = p.token.data_ptr<int64_t>();
  const int64_t G = p.rows.numel();
  for (int64_t c = 0; c + 1 < p.chunks.numel(); ++c) {
    const int64_t m0 = c * p.chunk, Mc = std::min(p.chunk, d.M - m0);
    std::unique_ptr<TokenRows<T>> acc;
    if (dx) acc = std::make_unique<TokenRows<T>>(workers(p, c), Mc, d.D, dx + m0 * d.D);
    for_groups(p, c, [&](int64_t grp, int64_t tid) {
      if (grp + kPrefetch < G) {
        if (up) prefetch_row(up + rows[grp + kPrefetch] * d.D, d.D);
        prefetch_row(down + rows[grp + kPrefetch] * d.D, d.D);
      }
      const T* u = up ? up + rows[grp] * d.D : nullptr;
      const T* v = down + rows[grp] * d.D;
      T* gu = dup ? dup + grad_row(grp) * d.D : nullptr;
      T* gv = ddown ? ddown + grad_row(grp) * d.D : nullptr;
      if (fresh_rows) {
        if (gu) std::fill(gu, gu + d.D, T(0));
        if (gv) std::fill(gv, gv + d.D, T(0));
      }
      T* dxs = acc ? acc->slice(tid) - m0 * d.D : nullptr;
      for (int64_t i = start[grp]; i < start[grp + 1]; ++i) {
        const int64_t m = token[i];
        const T* dym = dy + m * d.D;
        const T t = dot(v, dym, d.D);
        if (!u) {
          dgs[i] = t;
          if (gv) axpy(gv, gs[i], dym, d.D);
          continue;
        }
        const T a = as[i];
        const T cu = gs[i] * das[i] * t;
        dgs[i] = a * t;
        if (dxs) axpy(dxs + m * d.D, cu, u, d.D);
        if (gu) axpy(gu, cu, x + m * d.D, d.D);
        if (gv) axpy(gv, gs[i] * a, dym, d.D);
      }
    });
    if (acc) acc->reduce();
  }
}

class ExpertLookupFunction : public torch::autograd::Function<ExpertLookupFunction> {
 public:
  // Absent tensors arrive empty (autograd functions take no undefined inputs): x and up are
  // empty for the weighted row sum.
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor gates, torch::Tensor up,
                               torch::Tensor down, torch::Tensor ids, int64_t act, bool sparse_grad) {
    const bool has_up = up.numel() > 0;
    ids = ids.contiguous();
    gates = gates.contiguous();
    down = down.contiguous();
    if (has_up) {
      x = x.contiguous();
      up = up.contiguous();
    }
    const Dims d{ids.size(0), ids.size(1), down.size(0), down.size(1)};
    const Plan plan = make_plan(ids.data_ptr<int64_t>(), d, chunk_tokens(d.D, down.element_size()));
    auto gs = gates.view(-1).index_select(0, plan.order);  // gates in plan order
    auto y = torch::empty({d.M, d.D}, down.options());
    auto zs = has_up ? torch::empty({d.M * d.S}, down.options()) : torch::empty({0}, down.options());
    auto as = torch::empty_like(zs);
    AT_DISPATCH_FLOATING_TYPES(down.scalar_type(), "expert_lookup_forward", [&] {
      lookup_forward<scalar_t>(d, plan, has_up ? x.data_ptr<scalar_t>() : nullptr, gs.data_ptr<scalar_t>(),
                               has_up ? up.data_ptr<scalar_t>() : nullptr, down.data_ptr<scalar_t>(),
                               ExpertActivation(act), has_up ? zs.data_ptr<scalar_t>() : nullptr,
                               has_up ? as.data_ptr<scalar_t>() : nullptr, y.data_ptr<scalar_t>());
    });
    ctx->save_for_backward({x, gs, up, down, zs, plan.rows, plan.start, plan.order, plan.token, plan.chunks});
    ctx->saved_data["act"] = act;
    ctx->saved_data["sparse"] = sparse_grad;
    ctx->saved_data["S"] = d.S;
    ctx->saved_data["chunk"] = plan.chunk;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    auto x = s[0], gs = s[1], up = s[2], down = s[3], zs = s[4];
    const Plan plan{ctx->saved_data["chunk"].toInt(), s[5], s[6], s[7], s[8], s[9]};
    const bool has_up = up.numel() > 0;
    const auto act = ExpertActivation(ctx->saved_data["act"].toInt());
    const bool sparse = ctx->saved_data["sparse"].toBool();
    const int64_t S = ctx->saved_data["S"].toInt();
    const Dims d{gs.numel() / S, S, down.size(0), down.size(1)};
    auto dy = grads[0].contiguous();  // non-contiguous incoming gradients are made dense once
    auto dgs = torch::empty_like(gs);
    const bool want_dx = has_up && ctx->needs_input_grad(0);
    const bool want_up = has_up && ctx->needs_input_grad(2), want_down = ctx->needs_input_grad(3);
    auto dx = want_dx ? torch::empty_like(x) : torch::Tensor();
    // Sparse: one value row per group (a row used in several token chunks appears once per
    // chunk: an uncoalesced COO tensor, summed by to_dense() or coalesce()). Dense: [N, D].
    const int64_t G = plan.rows.numel();
    auto table = [&](bool want) {
      if (!want) return torch::Tensor();
      return sparse ? torch::empty({G, d.D}, down.options()) : torch::zeros({d.N, d.D}, down.options());
    };
    auto dup = table(want_up), ddown = table(want_down);
    const int64_t* rows = plan.rows.data_ptr<int64_t>();
    auto as = torch::empty_like(zs), das = torch::empty_like(zs);
    AT_DISPATCH_FLOATING_TYPES(down.scalar_type(), "expert_lookup_backward", [&] {
      auto ptr = [](const torch::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
      if (has_up) {
        activate_all(act, false, ptr(zs), ptr(as), zs.numel());
        activate_all(act, true, ptr(zs), ptr(das), zs.numel());
      }
      auto run = [&](auto grad_row) {
        lookup_backward<scalar_t>(d, plan, has_up ? ptr(x) : nullptr, ptr(gs), has_up ? ptr(up) : nullptr,
                                  ptr(down), has_up ? ptr(as) : nullptr, has_up ? ptr(das) : nullptr, ptr(dy),
                                  ptr(dgs), ptr(dx), ptr(dup), ptr(ddown), grad_row, sparse);
      };
      if (sparse)
        run([](int64_t grp) { return grp; });
      else
        run([rows](int64_t grp) { return rows[grp]; });
    });
    auto to_sparse = [&](torch::Tensor& values) {
      if (!values.defined() || !sparse) return;
      auto t = torch::sparse_coo_tensor(plan.rows.view({1, G}), values, {d.N, d.D});
      values = plan.chunks.numel() == 2 ? t._coalesced_(true) : t;  // one chunk: unique, sorted rows
    };
    to_sparse(dup);
    to_sparse(ddown);
    auto dg = torch::empty({d.M, d.S}, gs.options());
    dg.view(-1).index_copy_(0, plan.order, dgs);  // back to [M, S] slot order
    return {dx, dg, dup, ddown, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

void check_ids(const torch::Tensor& ids, const torch::Tensor& gates, const torch::Tensor& table, const char* what) {
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kLong, what, ": ids must be [M, S] int64, got ",
              ids.sizes(), " ", ids.scalar_type());
  TORCH_CHECK(gates.sizes() == ids.sizes(), what, ": gates must match ids ", ids.sizes(), ", got ", gates.sizes());
  TORCH_CHECK(table.dim() == 2, what, ": tables must be [N, D], got ", table.sizes());
  TORCH_CHECK(gates.scalar_type() == table.scalar_type(), what, ": gates and tables must share a dtype");
  TORCH_CHECK(table.scalar_type() == torch::kFloat || table.scalar_type() == torch::kDouble, what,
              ": float32 or float64 tables only");
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < table.size(0), what, ": expert ids must be in [0, ", table.size(0), "), got [", lo,
                ", ", hi, "]");
  }
}

}  // namespace

void advise_huge_pages(const torch::Tensor& table) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (!table.is_cpu() || table.nbytes() < 4 * kHuge) return;
  const auto begin = reinterpret_cast<uintptr_t>(table.data_ptr());
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1), hi = (begin + table.nbytes()) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // advice only: errors are harmless
#endif
}

torch::Tensor single_neuron_experts(const torch::Tensor& x, const torch::Tensor& ids, const torch::Tensor& gates,
                                   const torch::Tensor& up, const torch::Tensor& down, ExpertActivation act,
                                   bool sparse_grad) {
  check_ids(ids, gates, down, "single_neuron_experts");
  TORCH_CHECK(up.sizes() == down.sizes(), "single_neuron_experts: up ", up.sizes(), " and down ", down.sizes(),
              " must have the same shape");
  TORCH_CHECK(x.dim() == 2 && x.size(0) == ids.size(0) && x.size(1) == up.size(1),
              "single_neuron_experts: x must be [M, D] = [", ids.size(0), ", ", up.size(1), "], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == up.scalar_type(), "single_neuron_experts: x and tables must share a dtype");
  return ExpertLookupFunction::apply(x, gates, up, down, ids, int64_t(act), sparse_grad);
}

torch::Tensor weighted_row_sum(const torch::Tensor& ids, const torch::Tensor& gates, const torch::Tensor& table,
                               bool sparse_grad) {
  check_ids(ids, gates, table, "weighted_row_sum");
  auto none = torch::empty({0}, table.options());
  return ExpertLookupFunction::apply(none, gates, none, table, ids, int64_t(ExpertActivation::kGelu), sparse_grad);
}

}  // namespace trecvit

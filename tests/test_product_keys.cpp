// Product-key retrieval: the exact top-k against brute force over all N (ties included), the
// chunked scoring, the router's and PKM's gradients by finite differences in double.
#include <limits>

#include "blocks/expert_lookup.h"
#include "blocks/pkm.h"
#include "blocks/product_key_select.h"
#include "blocks/product_keys.h"
#include "tests/test_grad_util.h"

using namespace trecvit;
using trecvit::test::max_abs_diff;

namespace {

// Brute force over all N = n^2: scores s1[i] + s2[j] in the same arithmetic, sorted by (score
// descending, id ascending). q: [M, h, d_k]; keys: [h, 2, n, d_k/2].
std::pair<torch::Tensor, torch::Tensor> brute_force(const torch::Tensor& q, const torch::Tensor& keys, int64_t k) {
  const int64_t M = q.size(0), h = keys.size(0), n = keys.size(2), dk2 = keys.size(3);
  auto qh = q.view({M, h, 2, dk2});
  auto s1 = torch::einsum("mhd,hnd->mhn", {qh.select(2, 0), keys.select(1, 0)});
  auto s2 = torch::einsum("mhd,hnd->mhn", {qh.select(2, 1), keys.select(1, 1)});
  auto all = (s1.unsqueeze(3) + s2.unsqueeze(2)).reshape({M, h, n * n});  // id = i * n + j
  auto [sorted, order] = all.sort(/*stable=*/true, -1, /*descending=*/true);
  return {sorted.narrow(2, 0, k), order.narrow(2, 0, k)};
}

}  // namespace

TEST(ProductKeys, TopKEqualsBruteForceIncludingTies) {
  // Small integers make every score exact in fp32 and produce many ties.
  struct Case {
    int64_t h, k, n, dk, half_k;
  };
  // Short rows take plain insertion; n >= 4 k' rows the screened path (n = 100: vector tails).
  for (auto c : {Case{1, 1, 4, 2, 1}, Case{2, 3, 5, 4, 3}, Case{3, 8, 8, 6, 8}, Case{2, 16, 32, 8, 16},
                 Case{2, 4, 16, 4, 9}, Case{2, 4, 64, 4, 4}, Case{1, 8, 100, 6, 8}}) {
    torch::manual_seed(c.h * 100 + c.k);
    const int64_t M = 37;
    auto q = torch::randint(-2, 3, {M, c.h, c.dk}).to(torch::kFloat);
    auto keys = torch::randint(-2, 3, {c.h, 2, c.n, c.dk / 2}).to(torch::kFloat);
    auto [bs, bi] = brute_force(q, keys, c.k);
    for (int64_t chunk : {int64_t(0), int64_t(5)}) {
      auto [s, ids] = product_key_topk(q, keys, c.k, c.half_k, chunk);
      EXPECT_TRUE(torch::equal(ids, bi)) << "h=" << c.h << " k=" << c.k << " n=" << c.n << " chunk=" << chunk;
      EXPECT_TRUE(torch::equal(s, bs)) << "h=" << c.h << " k=" << c.k << " n=" << c.n;
    }
    // The data really has ties at the cut (otherwise the tie rule would be untested).
    if (c.n >= 8) {
      EXPECT_GT((bs.narrow(2, 1, c.k - 1) == bs.narrow(2, 0, c.k - 1)).sum().item<int64_t>(), 0);
    }
  }
}

TEST(ProductKeys, TopKEqualsBruteForceOnRandomFloats) {
  torch::manual_seed(3);
  for (int64_t n : {7, 24, 128}) {
    auto q = torch::randn({50, 4, 10}, torch::kDouble);
    auto keys = torch::randn({4, 2, n, 5}, torch::kDouble);
    auto [bs, bi] = brute_force(q, keys, 6);
    auto [s, ids] = product_key_topk(q, keys, 6, 6, 16);
    EXPECT_TRUE(torch::equal(ids, bi)) << "n=" << n;
    EXPECT_LT(max_abs_diff(s, bs), 1e-12);
    // fp32 (the fused kernel where the CPU has AVX2): summation order differs from the brute
    // force, so compare what was retrieved by its exact (fp64) scores: a true top-k up to rounding.
    auto [s32, ids32] = product_key_topk(q.to(torch::kFloat), keys.to(torch::kFloat), 6, 6, 16);
    auto qh = q.view({50, 4, 2, 5});
    auto full = (torch::einsum("mhd,hnd->mhn", {qh.select(2, 0), keys.select(1, 0)}).unsqueeze(3) +
                 torch::einsum("mhd,hnd->mhn", {qh.select(2, 1), keys.select(1, 1)}).unsqueeze(2))
                    .reshape({50, 4, n * n});
    auto got = std::get<0>(full.gather(2, ids32).sort(-1, true));
    EXPECT_LT(max_abs_diff(got, bs), 1e-5) << "n=" << n;
    EXPECT_LT(max_abs_diff(s32, got), 1e-5) << "n=" << n;
  }
}

TEST(ProductKeys, EveryKernelPathEqualsBruteForceIncludingTies) {
  // Each kernel this CPU runs (AVX-512, AVX2, generic), on tie-heavy integer data where every
  // fp32 score is exact: all must return the brute force's scores and ids bit for bit. n and
  // the per-half k cover the AVX-512 selection's cases (n % 32 == 0 with k' < 16, == 16, in
  // (16, 32]) and the rows it leaves to the scalar screen (n % 32 != 0, k' > 32).
  struct Case {
    int64_t n, k, half_k;
  };
  const auto& paths = trecvit::detail::select_paths();
  ASSERT_EQ(paths.back(), trecvit::detail::SelectPath::kGeneric);
  for (auto c : {Case{64, 4, 4}, Case{64, 8, 12}, Case{96, 16, 16}, Case{96, 20, 24}, Case{1024, 16, 32},
                 Case{1024, 16, 16}, Case{100, 8, 16}, Case{40, 6, 8}, Case{128, 16, 40}, Case{70, 3, 3}}) {
    torch::manual_seed(c.n + c.half_k);
    const int64_t M = 23, h = 2, dk = 8;
    auto q = torch::randint(-2, 3, {M, h * dk}).to(torch::kFloat);
    auto keys = torch::randint(-2, 3, {h, 2, c.n, dk / 2}).to(torch::kFloat);
    auto [bs, bi] = brute_force(q.view({M, h, dk}), keys, c.k);
    for (auto path : paths) {
      auto [s, ids] = trecvit::detail::product_key_select(q, keys, c.k, c.half_k, 7, path);
      EXPECT_TRUE(torch::equal(ids, bi)) << "n=" << c.n << " k'=" << c.half_k << " path=" << int(path);
      EXPECT_TRUE(torch::equal(s, bs)) << "n=" << c.n << " k'=" << c.half_k << " path=" << int(path);
    }
  }
  // Random floats: the fused kernels share one chain of fused multiply-adds, so they agree
  // exactly with each other (the generic BLAS path sums in its own order).
  for (auto c : {Case{256, 4, 5}, Case{256, 16, 16}, Case{1024, 8, 24}, Case{1024, 16, 32}, Case{96, 8, 8}}) {
    auto q = torch::randn({31, 4 * 16});
    auto keys = torch::randn({4, 2, c.n, 8});
    std::vector<torch::Tensor> fused;
    for (auto path : paths)
      if (path != trecvit::detail::SelectPath::kGeneric)
        fused.push_back(std::get<1>(trecvit::detail::product_key_select(q, keys, c.k, c.half_k, 0, path)));
    for (size_t i = 1; i < fused.size(); ++i)
      EXPECT_TRUE(torch::equal(fused[i], fused[0])) << "n=" << c.n << " k'=" << c.half_k << " path " << i;
  }
}

TEST(ProductKeys, NanScoresStayContainedToTheirToken) {
  // A NaN query poisons its own token's scores; the selection must still return valid ids for
  // it and leave every other token's result equal to the brute force, on every path.
  const int64_t M = 9, h = 2, dk = 8, n = 64, k = 8;
  torch::manual_seed(9);
  auto q = torch::randint(-2, 3, {M, h * dk}).to(torch::kFloat);
  auto keys = torch::randint(-2, 3, {h, 2, n, dk / 2}).to(torch::kFloat);
  q[4][3] = std::numeric_limits<float>::quiet_NaN();  // head 0, first half of token 4
  auto [bs, bi] = brute_force(q.view({M, h, dk}), keys, k);
  auto ok = torch::ones({M}, torch::kBool);
  ok[4] = false;
  torch::Tensor first_ids;
  for (auto path : trecvit::detail::select_paths()) {
    auto [s, ids] = trecvit::detail::product_key_select(q, keys, k, 8, 0, path);
    EXPECT_TRUE(torch::equal(ids.index({ok}), bi.index({ok}))) << "path=" << int(path);
    EXPECT_TRUE(ids.ge(0).all().item<bool>() && ids.lt(n * n).all().item<bool>()) << "path=" << int(path);
    EXPECT_TRUE(torch::equal(ids[4][1], bi[4][1])) << "head 1 of the NaN token is clean";
    // The poisoned head reports NaN scores (never another token's), the same ids on every path.
    EXPECT_TRUE(s[4][0].isnan().all().item<bool>()) << "path=" << int(path);
    if (!first_ids.defined()) first_ids = ids;
    EXPECT_TRUE(torch::equal(ids[4][0], first_ids[4][0])) << "path=" << int(path);
  }
}

TEST(ProductKeys, PerHalfTopKSmallerThanKIsRefused) {
  auto q = torch::randn({3, 1, 4});
  auto keys = torch::randn({1, 2, 8, 2});
  EXPECT_THROW(product_key_topk(q, keys, 4, 3, 0), c10::Error);
  EXPECT_THROW(product_key_topk(q, keys, 9, 9, 0), c10::Error);  // k > n
  EXPECT_THROW(ProductKeyRouter(ProductKeyRouterOptions(4, 64).topk(4).half_topk(2).key_dim(4)), c10::Error);
  EXPECT_THROW(ProductKeyRouter(ProductKeyRouterOptions(4, 60).topk(4).key_dim(4)), c10::Error);
  EXPECT_THROW(ProductKeyRouter(ProductKeyRouterOptions(4, 64).topk(4).key_dim(5)), c10::Error);
}

TEST(ProductKeys, RouterChunkedEqualsUnchunked) {
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    torch::manual_seed(4);
    ProductKeyRouter a(ProductKeyRouterOptions(12, 100).heads(3).topk(4).key_dim(8).chunk_tokens(3));
    ProductKeyRouter b(ProductKeyRouterOptions(12, 100).heads(3).topk(4).key_dim(8).chunk_tokens(1000));
    a->to(dtype);
    b->to(dtype);
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
    }
    auto x = torch::randn({23, 12}, dtype);
    auto ra = a(x), rb = b(x);
    EXPECT_TRUE(torch::equal(ra.ids, rb.ids));
    EXPECT_LT(max_abs_diff(ra.gates, rb.gates), 1e-6);
    EXPECT_LT(max_abs_diff(ra.gates.sum(-1), torch::ones({23, 3})), 1e-6);  // softmax per head
    // Token-wise: a token's routing does not depend on the other tokens of the batch (eval).
    a->eval();
    auto one = a(x.narrow(0, 5, 1));
    EXPECT_TRUE(torch::equal(one.ids, a(x).ids.narrow(0, 5, 1)));
  }
}

TEST(ProductKeys, RouterGradientsMatchFiniteDifferencesInDouble) {
  for (std::string norm : {"batch", "layer", "none"}) {
    torch::manual_seed(5);
    ProductKeyRouter router(ProductKeyRouterOptions(6, 25).heads(2).topk(3).key_dim(4).query_norm(norm).chunk_tokens(2));
    router->to(torch::kDouble);
    auto x = torch::randn({7, 6}, torch::kDouble).requires_grad_(true);
    std::vector<std::pair<std::string, torch::Tensor>> params = {
        {"query", router->query_proj->weight}, {"sub_keys", router->sub_keys}, {"x", x}};
    if (norm == "layer") params.push_back({"ln_weight", router->ln_weight});
    if (norm == "batch") params.push_back({"bn_weight", router->batch_norm->weight});
    trecvit::test::check_gradients([&] { return router(x).gates.reshape({7, -1}); }, params, 6, norm);
  }
}

TEST(PKM, GradientsMatchFiniteDifferencesInDouble) {
  for (bool sparse : {false, true}) {
    torch::manual_seed(6);
    PKM pkm(PKMOptions(6, 16).heads(2).topk(3).key_dim(4).query_norm("layer").sparse_grad(sparse));
    pkm->to(torch::kDouble);
    auto x = torch::randn({5, 6}, torch::kDouble).requires_grad_(true);
    trecvit::test::check_gradients([&] { return pkm(x); },
                                   {{"query", pkm->router->query_proj->weight},
                                    {"query bias", pkm->router->query_proj->bias},
                                    {"sub_keys", pkm->router->sub_keys},
                                    {"values", pkm->values},
                                    {"x", x}},
                                   6, sparse ? "sparse" : "dense");
  }
}

TEST(PKM, EqualsTheWeightedSumOfRetrievedValues) {
  torch::manual_seed(7);
  PKM pkm(PKMOptions(8, 36).heads(2).topk(2).key_dim(4).query_norm("none"));
  auto x = torch::randn({4, 8});
  auto r = pkm->router(x);
  auto expect = (r.gates.unsqueeze(-1) * pkm->values.index_select(0, r.ids.reshape(-1)).view({4, 2, 2, 8})).sum({1, 2});
  EXPECT_LT(max_abs_diff(pkm(x), expect), 1e-6);
}

TEST(ExpertLookup, BadIdsAndShapesAreErrors) {
  auto table = torch::randn({10, 4});
  auto gates = torch::ones({2, 3});
  EXPECT_THROW(weighted_row_sum(torch::full({2, 3}, 10, torch::kLong), gates, table, false), c10::Error);
  EXPECT_THROW(weighted_row_sum(torch::full({2, 3}, -1, torch::kLong), gates, table, false), c10::Error);
  EXPECT_THROW(weighted_row_sum(torch::zeros({2, 2}, torch::kLong), gates, table, false), c10::Error);
  EXPECT_THROW(single_neuron_experts(torch::randn({2, 5}), torch::zeros({2, 3}, torch::kLong), gates, table, table,
                                     ExpertActivation::kGelu, false),
               c10::Error);
}

TEST(ExpertLookup, ATokensOutputDoesNotDependOnItsBatch) {
  // Bit for bit: a token alone, or in any sub-batch, gets what it gets in the full batch (the
  // activations are computed in vector blocks; a token's slots land at different offsets).
  torch::manual_seed(10);
  const int64_t M = 37, S = 5, N = 50, D = 24;
  auto x = torch::randn({M, D});
  auto ids = torch::randint(0, N, {M, S}, torch::kLong);
  auto gates = torch::rand({M, S});
  auto up = torch::randn({N, D}) / 5, down = torch::randn({N, D});
  torch::NoGradGuard ng;
  for (auto act : {ExpertActivation::kGelu, ExpertActivation::kRelu}) {
    auto full = single_neuron_experts(x, ids, gates, up, down, act, false);
    for (int64_t m0 : {0, 3, 20}) {
      for (int64_t len : {1, 2, 7, 17}) {
        if (m0 + len > M) continue;
        auto part = single_neuron_experts(x.narrow(0, m0, len), ids.narrow(0, m0, len), gates.narrow(0, m0, len), up,
                                          down, act, false);
        EXPECT_TRUE(torch::equal(part, full.narrow(0, m0, len))) << "tokens " << m0 << ".." << m0 + len;
      }
    }
  }
}

TEST(ExpertLookup, MatchesPlainOpsAcrossTokenChunks) {
  // D = 1024 makes the kernels work in chunks of 1024 tokens: 2100 tokens span three, and a
  // row used in several chunks must accumulate (dense) or appear once per chunk (sparse).
  torch::manual_seed(8);
  const int64_t M = 2100, S = 3, N = 40, D = 1024;
  auto x = torch::randn({M, D}, torch::requires_grad());
  auto ids = torch::randint(0, N, {M, S}, torch::kLong);
  auto gates = torch::rand({M, S}, torch::requires_grad());
  auto up = (torch::randn({N, D}) / 32).requires_grad_(true);
  auto down = torch::randn({N, D}).requires_grad_(true);
  auto G = torch::randn({D, M}).t();
  // Reference: gather [M, S, D] and let autograd do the rest.
  auto u = up.index_select(0, ids.view(-1)).view({M, S, D});
  auto v = down.index_select(0, ids.view(-1)).view({M, S, D});
  auto z = (u * x.unsqueeze(1)).sum(-1);
  auto ref = (gates * torch::gelu(z, "tanh")).unsqueeze(-1).mul(v).sum(1);
  auto rg = torch::autograd::grad({ref}, {x, gates, up, down}, {G});
  for (bool sparse : {false, true}) {
    auto y = single_neuron_experts(x, ids, gates, up, down, ExpertActivation::kGelu, sparse);
    EXPECT_LT(max_abs_diff(y, ref), 1e-4);
    auto g = torch::autograd::grad({y}, {x, gates, up, down}, {G});
    for (int i = 0; i < 4; ++i) {
      auto gi = g[i].is_sparse() ? g[i].to_dense() : g[i];
      EXPECT_LT(max_abs_diff(gi, rg[i]), 2e-3 * std::max(1.0, rg[i].abs().max().item<double>()))
          << "grad " << i << (sparse ? " sparse" : " dense");
    }
    if (sparse) {
      EXPECT_GT(g[2]._indices().size(1), N);  // rows repeat across the chunks
    }
  }
  // The weighted row sum (PKM values) over the same chunks.
  auto wr = weighted_row_sum(ids, gates, down, true);
  auto wref = (gates.unsqueeze(-1) * down.index_select(0, ids.view(-1)).view({M, S, D})).sum(1);
  EXPECT_LT(max_abs_diff(wr, wref), 1e-4);
  auto gw = torch::autograd::grad({wr}, {gates, down}, {G});
  auto gwr = torch::autograd::grad({wref}, {gates, down}, {G});
  EXPECT_LT(max_abs_diff(gw[0], gwr[0]), 1e-3);
  EXPECT_LT(max_abs_diff(gw[1].to_dense(), gwr[1]), 1e-3);
}

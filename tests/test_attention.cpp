// The attention loops (blocks/attention_math.h) against LibTorch's batched-matmul form: values and
// gradients in double, finite differences, every vector build against the portable loop, the
// thread count, NaN containment, and a graph of the backward.
#include <ATen/Parallel.h>

#include "blocks/attention.h"
#include "blocks/simd_kernels.h"
#include "tests/test_util.h"

using namespace trecvit;
using trecvit::test::expect_grad_matches;
using trecvit::test::max_abs_diff;

namespace {

struct Shape {
  int64_t B, N, T, H, hd;
};

// N off the tile and padding grid, head widths padded (5, 20) and in place (16, 32); one frame.
const Shape kShapes[] = {{2, 21, 2, 2, 5}, {1, 7, 3, 3, 16}, {2, 50, 1, 2, 32}, {1, 1, 2, 1, 20}, {1, 33, 1, 1, 16}};

std::vector<torch::Tensor> qkv(const Shape& s, torch::Dtype dtype, bool grad) {
  std::vector<torch::Tensor> out;
  for (int i = 0; i < 3; ++i)
    out.push_back((torch::randn({s.B, s.N, s.T, s.H * s.hd}, dtype) * 1.5).requires_grad_(grad));
  return out;
}

}  // namespace

TEST(AttentionLoops, EqualReferenceInDoubleValuesAndGradients) {
  torch::manual_seed(11);
  for (const auto& s : kShapes) {
    auto t = qkv(s, torch::kDouble, true);
    auto y = spatial_attention(t[0], t[1], t[2], s.H);
    auto ref = spatial_attention_reference(t[0], t[1], t[2], s.H);
    const std::string what = "N=" + std::to_string(s.N) + " hd=" + std::to_string(s.hd);
    EXPECT_LT(max_abs_diff(y, ref), 1e-13) << what;
    // A non-contiguous upstream gradient.
    auto w = torch::randn({s.H * s.hd, s.T, s.N, s.B}, torch::kDouble).permute({3, 2, 1, 0});
    auto g = torch::autograd::grad({(y * w).sum()}, {t[0], t[1], t[2]});
    auto g_ref = torch::autograd::grad({(ref * w).sum()}, {t[0], t[1], t[2]});
    for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(g[i], g_ref[i]), 1e-12) << what << " input " << i;
  }
}

// q, k, v as views of one projection (non-contiguous), and inputs of which only some need a
// gradient: the values, first and second derivatives still follow the reference.
TEST(AttentionLoops, NonContiguousInputsAndPartialGradients) {
  torch::manual_seed(16);
  const Shape s{2, 9, 2, 2, 5};
  auto qkv_all = torch::randn({s.B, s.N, s.T, 3 * s.H * s.hd}, torch::kDouble).requires_grad_(true);
  auto parts = qkv_all.chunk(3, -1);
  ASSERT_FALSE(parts[0].is_contiguous());
  auto w = torch::randn({s.B, s.N, s.T, s.H * s.hd}, torch::kDouble);
  auto y = spatial_attention(parts[0], parts[1], parts[2], s.H);
  auto ref = spatial_attention_reference(parts[0], parts[1], parts[2], s.H);
  EXPECT_LT(max_abs_diff(y, ref), 1e-13);
  auto g = torch::autograd::grad({(y * w).sum()}, {qkv_all})[0];
  auto g_ref = torch::autograd::grad({(ref * w).sum()}, {qkv_all})[0];
  EXPECT_LT(max_abs_diff(g, g_ref), 1e-12);
  // Only q needs a gradient; k and v are plain non-contiguous tensors.
  auto q = torch::randn({s.B, s.N, s.T, s.H * s.hd}, torch::kDouble).requires_grad_(true);
  auto kv = torch::randn({s.B, s.N, s.T, 2 * s.H * s.hd}, torch::kDouble).chunk(2, -1);
  auto second = [&](bool fused) {
    auto o = fused ? spatial_attention(q, kv[0], kv[1], s.H) : spatial_attention_reference(q, kv[0], kv[1], s.H);
    auto gq = torch::autograd::grad({(o * w).sum()}, {q}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    return std::make_pair(gq.detach(), torch::autograd::grad({(gq * gq).sum()}, {q})[0]);
  };
  auto a = second(true), b = second(false);
  EXPECT_LT(max_abs_diff(a.first, b.first), 1e-12);
  EXPECT_LT(max_abs_diff(a.second, b.second), 1e-11);
}

TEST(AttentionLoops, FiniteDifferenceGradients) {
  torch::manual_seed(12);
  const Shape s{1, 9, 2, 2, 5};
  auto t = qkv(s, torch::kDouble, true);
  auto w = torch::randn({s.B, s.N, s.T, s.H * s.hd}, torch::kDouble);
  auto loss = [&] { return (spatial_attention(t[0], t[1], t[2], s.H) * w).sum(); };
  auto g = torch::autograd::grad({loss()}, {t[0], t[1], t[2]});
  const char* names[] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) expect_grad_matches(loss, t[i], g[i], 24, 1e-6, names[i]);
}

// Each build's group loops against the portable float loops, on one group read at an odd row
// stride from the middle of wider rows.
TEST(AttentionLoops, EveryVectorBuildMatchesThePortableLoop) {
  if (trecvit::detail::float_kernels().empty()) GTEST_SKIP() << "this CPU has no vector build of attention";
  torch::manual_seed(13);
  for (const auto& [N, hd] : std::vector<std::pair<int64_t, int64_t>>{{50, 64}, {197, 32}, {16, 8}, {3, 16}, {40, 20}}) {
    const int64_t ld = 3 * hd + 1, off = hd;
    const trecvit::detail::AttentionDims d{N, hd, ld, 1.0 / std::sqrt(static_cast<double>(hd))};
    auto make = [&] { return torch::randn({N, ld}) * 2; };
    auto q = make(), k = make(), v = make(), dout = make();
    auto run = [&](auto fwd, auto bwd) {
      auto o = torch::zeros({N, ld}), dq = torch::zeros({N, ld}), dk = torch::zeros({N, ld}), dv = torch::zeros({N, ld});
      auto p = torch::empty({N, d.Np()});
      // A canary after the scratch: the loops must stay inside what the dimensions ask for.
      const int64_t need = std::max(d.forward_scratch(), d.backward_scratch());
      std::vector<float> scratch(need + 64, 12345.0f);
      fwd(d, q.data_ptr<float>() + off, k.data_ptr<float>() + off, v.data_ptr<float>() + off, o.data_ptr<float>() + off,
          p.data_ptr<float>(), scratch.data());
      bwd(d, q.data_ptr<float>() + off, k.data_ptr<float>() + off, v.data_ptr<float>() + off, p.data_ptr<float>(),
          dout.data_ptr<float>() + off, dq.data_ptr<float>() + off, dk.data_ptr<float>() + off,
          dv.data_ptr<float>() + off, scratch.data());
      for (int64_t i = need; i < need + 64; ++i) EXPECT_EQ(scratch[i], 12345.0f) << "scratch overrun at " << i - need;
      if (d.Np() > N) {
        EXPECT_EQ(p.narrow(1, N, d.Np() - N).abs().max().item<float>(), 0.0f) << "P's padding is exactly zero";
      }
      return std::vector<torch::Tensor>{o, dq, dk, dv, p};
    };
    auto ref = run(trecvit::detail::attention_forward_group<float, float>, trecvit::detail::attention_backward_group<float, float>);
    // Only the group's columns are written.
    EXPECT_EQ(ref[0].narrow(1, 0, off).abs().max().item<float>(), 0.0f);
    EXPECT_EQ(ref[0].narrow(1, off + hd, ld - off - hd).abs().max().item<float>(), 0.0f);
    for (const auto& kern : trecvit::detail::float_kernels()) {
      auto got = run(kern.attention_forward, kern.attention_backward);
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_LT(max_abs_diff(got[i], ref[i]), 2e-5 * (1 + ref[i].abs().max().item<double>()))
            << kern.name << " N=" << N << " hd=" << hd << " output " << i;
    }
  }
}

TEST(AttentionLoops, SameBitsAtAnyThreadCount) {
  torch::manual_seed(14);
  const Shape s{2, 50, 3, 4, 16};
  auto t = qkv(s, torch::kFloat, true);
  auto w = torch::randn({s.B, s.N, s.T, s.H * s.hd});
  const int threads = at::get_num_threads();
  std::vector<std::vector<torch::Tensor>> runs;
  for (int n : {1, 2, 3}) {
    at::set_num_threads(n);
    auto y = spatial_attention(t[0], t[1], t[2], s.H);
    auto g = torch::autograd::grad({(y * w).sum()}, {t[0], t[1], t[2]});
    runs.push_back({y, g[0], g[1], g[2]});
  }
  at::set_num_threads(threads);
  for (size_t r = 1; r < runs.size(); ++r)
    for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(torch::equal(runs[0][i], runs[r][i])) << "threads run " << r << " " << i;
  // And float stays close to the reference, values and gradients.
  auto ref = spatial_attention_reference(t[0], t[1], t[2], s.H);
  EXPECT_LT(max_abs_diff(runs[0][0], ref), 1e-5);
  auto g_ref = torch::autograd::grad({(ref * w).sum()}, {t[0], t[1], t[2]});
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(runs[0][i + 1], g_ref[i]), 1e-4) << "input " << i;
}

TEST(AttentionLoops, ANaNStaysInItsFrameAndHead) {
  const Shape s{1, 20, 2, 2, 16};
  auto t = qkv(s, torch::kFloat, false);
  t[0][0][3][1][5] = std::nanf("");  // frame 1, head 0, token 3
  auto y = spatial_attention(t[0], t[1], t[2], s.H);
  auto ref = spatial_attention_reference(t[0], t[1], t[2], s.H);
  EXPECT_TRUE(torch::isnan(y[0][3][1].narrow(0, 0, 16)).all().item<bool>()) << "the poisoned row";
  EXPECT_EQ(torch::isnan(y).sum().item<int64_t>(), torch::isnan(ref).sum().item<int64_t>());
  EXPECT_FALSE(torch::isnan(y.select(2, 0)).any().item<bool>()) << "the other frame";
  EXPECT_FALSE(torch::isnan(y.select(2, 1).narrow(2, 16, 16)).any().item<bool>()) << "the other head";
}

// create_graph: the backward is recorded through the tensor-op form, so second derivatives exist
// and agree with the reference's.
TEST(AttentionLoops, GradientOfTheGradientMatchesTheReference) {
  torch::manual_seed(15);
  const Shape s{1, 6, 2, 2, 3};
  auto t = qkv(s, torch::kDouble, true);
  auto w = torch::randn({s.B, s.N, s.T, s.H * s.hd}, torch::kDouble);
  auto second = [&](bool fused) {
    auto y = fused ? spatial_attention(t[0], t[1], t[2], s.H) : spatial_attention_reference(t[0], t[1], t[2], s.H);
    auto g = torch::autograd::grad({(y * w).sum()}, {t[0], t[2]}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    return torch::autograd::grad({(g[0] * g[0]).sum() + (g[1] * g[1]).sum()}, {t[0], t[1], t[2]});
  };
  auto a = second(true), b = second(false);
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(a[i], b[i]), 1e-11) << "input " << i;
}

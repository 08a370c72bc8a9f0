// Block-level semantics: norms, the causal conv's tap order and streaming, the fused RG-LRU
// scan against the naive reference (values and gradients), attention and the MLP.
#include "blocks/attention.h"
#include "blocks/conv1d.h"
#include "blocks/gelu_math.h"
#include "blocks/mlp.h"
#include "blocks/norms.h"
#include "blocks/recurrent_block.h"
#include "blocks/rglru.h"
#include "blocks/rglru_reference.h"
#include "blocks/rglru_scan.h"
#include "blocks/simd_kernels.h"
#include "tests/test_util.h"

using namespace trecvit;
using trecvit::test::expect_grad_matches;
using trecvit::test::max_abs_diff;

TEST(RMSNorm, KnownAnswerWithOnePlusScale) {
  RMSNorm norm(RMSNormOptions(2));
  auto x = torch::tensor({{3.0f, 4.0f}});
  const double r = 1.0 / std::sqrt(12.5 + 1e-6);
  EXPECT_NEAR(norm(x)[0][0].item<double>(), 3 * r, 1e-6);
  {
    torch::NoGradGuard ng;
    norm->scale.fill_(0.5);  // (1 + scale) multiplies
  }
  EXPECT_NEAR(norm(x)[0][1].item<double>(), 4 * r * 1.5, 1e-6);
}

// The fused CPU kernel against the tensor-op form: values and gradients in double, with more
// rows than one block (64) and a width that is not a multiple of the 8 partial sums.
TEST(RMSNorm, FusedEqualsReferenceAndFiniteDifferences) {
  torch::manual_seed(3);
  RMSNorm norm(RMSNormOptions(13));
  norm->to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    norm->scale.normal_(0, 0.5);
  }
  auto x = (torch::randn({3, 70, 13}, torch::kDouble) * 2).requires_grad_(true);
  auto y = norm(x);
  auto ref = rms_norm_reference(x, norm->scale, 1e-6);
  EXPECT_LT(max_abs_diff(y, ref), 1e-13);
  auto w = torch::randn({13, 70, 3}, torch::kDouble).permute({2, 1, 0});  // non-contiguous upstream
  auto g = torch::autograd::grad({(y * w).sum()}, {x, norm->scale});
  auto g_ref = torch::autograd::grad({(ref * w).sum()}, {x, norm->scale});
  EXPECT_LT(max_abs_diff(g[0], g_ref[0]), 1e-12);
  EXPECT_LT(max_abs_diff(g[1], g_ref[1]), 1e-11);
  auto loss = [&] { return (norm(x) * w).sum(); };
  expect_grad_matches(loss, x, g[0], 16, 1e-6, "x");
  expect_grad_matches(loss, norm->scale, g[1], 13, 1e-6, "scale");

  auto xf = x.detach().to(torch::kFloat);
  RMSNorm normf(RMSNormOptions(13));
  {
    torch::NoGradGuard ng;
    normf->scale.copy_(norm->scale);
  }
  EXPECT_LT(max_abs_diff(normf(xf), ref), 1e-5);
}

// dscale is summed in fixed row blocks, so the thread count does not change a single bit.
TEST(RMSNorm, FusedGradientIsTheSameAtAnyThreadCount) {
  torch::manual_seed(4);
  RMSNorm norm(RMSNormOptions(40));
  auto x = torch::randn({300, 40}).requires_grad_(true);
  auto w = torch::randn({300, 40});
  const int threads = at::get_num_threads();
  std::vector<torch::Tensor> per_count;
  for (int n : {1, 2, 3}) {
    at::set_num_threads(n);
    per_count.push_back(torch::autograd::grad({(norm(x) * w).sum()}, {norm->scale})[0]);
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(per_count[0], per_count[1]));
  EXPECT_TRUE(torch::equal(per_count[0], per_count[2]));
}

TEST(LayerNorm, UsesFlaxEpsilon) {
  auto ln = make_layer_norm(4);
  EXPECT_DOUBLE_EQ(ln->options.eps(), 1e-6);
}

TEST(GELU, IsTheTanhApproximation) {
  auto x = torch::tensor({1.5}, torch::kDouble);
  const double expected = 0.5 * 1.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * (1.5 + 0.044715 * 1.5 * 1.5 * 1.5)));
  EXPECT_NEAR(gelu_tanh(x).item<double>(), expected, 1e-12);
}

TEST(GELU, FusedEqualsReferenceAndFiniteDifferences) {
  torch::manual_seed(11);
  // 40,003 elements: more than one parallel task, and a remainder after the vector lanes;
  // the tails reach |x| = 20, where the gate saturates.
  auto x = (torch::randn({40003}, torch::kDouble) * 4).clamp(-20, 20);
  x[0] = 20.0;
  x[1] = -20.0;
  x[2] = 0.0;
  auto w = torch::randn({40003}, torch::kDouble);
  auto xd = x.clone().requires_grad_(true), xr = x.clone().requires_grad_(true);
  auto yd = gelu_tanh(xd), yr = gelu_tanh_reference(xr);
  EXPECT_LT(max_abs_diff(yd, yr), 1e-13);
  auto gd = torch::autograd::grad({(yd * w).sum()}, {xd})[0];
  auto gr = torch::autograd::grad({(yr * w).sum()}, {xr})[0];
  EXPECT_LT(max_abs_diff(gd, gr), 1e-12);
  auto small = torch::randn({2, 7}, torch::kDouble).requires_grad_(true);
  auto sw = torch::randn({7, 2}, torch::kDouble).t();  // a non-contiguous upstream gradient
  auto loss = [&] { return (gelu_tanh(small) * sw).sum(); };
  expect_grad_matches(loss, small, torch::autograd::grad({loss()}, {small})[0], 14, 1e-7, "gelu x");
  // Double backward (create_graph) goes through LibTorch's differentiable GELU backward.
  auto g1 = torch::autograd::grad({loss()}, {small}, {}, true, true)[0];
  auto gg = torch::autograd::grad({g1.sum()}, {small})[0];
  auto sr = small.detach().clone().requires_grad_(true);
  auto r1 = torch::autograd::grad({(gelu_tanh_reference(sr) * sw).sum()}, {sr}, {}, true, true)[0];
  EXPECT_LT(max_abs_diff(gg, torch::autograd::grad({r1.sum()}, {sr})[0]), 1e-12);
  // Float, through whichever build this CPU runs, against LibTorch's float GELU.
  auto xf = x.to(torch::kFloat).requires_grad_(true), xfr = x.to(torch::kFloat).requires_grad_(true);
  auto yf = gelu_tanh(xf), yfr = gelu_tanh_reference(xfr);
  EXPECT_LT(max_abs_diff(yf, yr), 4e-6);
  EXPECT_LT(max_abs_diff(yf, yr), 2 * max_abs_diff(yfr, yr) + 1e-6) << "no worse than LibTorch's float GELU";
  auto gf = torch::autograd::grad({(yf * w.to(torch::kFloat)).sum()}, {xf})[0];
  EXPECT_LT(max_abs_diff(gf, gr), 1e-5);
  // Every vector build against the portable float loop.
  auto xc = x.to(torch::kFloat), g = w.to(torch::kFloat);
  auto y0 = torch::empty_like(xc), dx0 = torch::empty_like(xc);
  trecvit::detail::gelu_forward_loop<float, float>(xc.data_ptr<float>(), y0.data_ptr<float>(), xc.numel());
  trecvit::detail::gelu_backward_loop<float, float>(xc.data_ptr<float>(), g.data_ptr<float>(), dx0.data_ptr<float>(),
                                                    xc.numel());
  auto nan_in = torch::full({17}, std::nanf("")), nan_out = torch::empty_like(nan_in);
  trecvit::detail::gelu_forward_loop<float, float>(nan_in.data_ptr<float>(), nan_out.data_ptr<float>(), 17);
  EXPECT_TRUE(torch::isnan(nan_out).all().item<bool>()) << "portable: NaN in, NaN out";
  if (trecvit::detail::float_kernels().empty()) GTEST_SKIP() << "this CPU has no vector build of GELU";
  for (const auto& k : trecvit::detail::float_kernels()) {
    auto y = torch::empty_like(xc), dx = torch::empty_like(xc);
    k.gelu_forward(xc.data_ptr<float>(), y.data_ptr<float>(), xc.numel());
    k.gelu_backward(xc.data_ptr<float>(), g.data_ptr<float>(), dx.data_ptr<float>(), xc.numel());
    EXPECT_LT(max_abs_diff(y, y0), 4e-6) << k.name;
    EXPECT_LT(max_abs_diff(dx, dx0), 4e-6) << k.name;
    k.gelu_forward(nan_in.data_ptr<float>(), nan_out.data_ptr<float>(), 17);
    EXPECT_TRUE(torch::isnan(nan_out).all().item<bool>()) << k.name << ": NaN in, NaN out";
  }
}

TEST(Conv1D, LastTapMultipliesTheCurrentFrame) {
  Conv1D conv(Conv1DOptions(1, 4));
  {
    torch::NoGradGuard ng;
    conv->w.copy_(torch::tensor({{1.0f}, {10.0f}, {100.0f}, {1000.0f}}));
    conv->b.fill_(0.5);
  }
  auto x = torch::zeros({1, 6, 1});
  x[0][0][0] = 1;  // impulse at t = 0
  auto out = conv(x).view(-1);
  // out[t] = w[K-1-t] + b for t < K, then only the bias.
  std::vector<double> expected = {1000.5, 100.5, 10.5, 1.5, 0.5, 0.5};
  for (int t = 0; t < 6; ++t) EXPECT_NEAR(out[t].item<double>(), expected[t], 1e-4) << "t=" << t;
}

TEST(Conv1D, StreamingChunksEqualOffline) {
  torch::manual_seed(1);
  Conv1D conv(Conv1DOptions(5, 4));
  auto x = torch::randn({3, 11, 5});
  auto offline = conv(x);
  for (int64_t chunk : {1, 2, 3, 11}) {
    auto tail = torch::zeros({3, 3, 5});
    std::vector<torch::Tensor> parts;
    for (int64_t t = 0; t < 11; t += chunk) parts.push_back(conv->forward_stream(x.narrow(1, t, std::min(chunk, 11 - t)), tail));
    EXPECT_LT(max_abs_diff(torch::cat(parts, 1), offline), 1e-6) << "chunk " << chunk;
  }
}

// The fused conv against the tensor-op form over tail ++ x, values and gradients in double, with
// a streamed (non-zero) tail and chunks shorter and longer than the K-1 taps of history.
TEST(Conv1D, FusedEqualsReferenceAndFiniteDifferences) {
  torch::manual_seed(2);
  for (int64_t K : {3, 4}) {  // 4: the unrolled taps of the released model; 3: any K
    Conv1D conv(Conv1DOptions(6, K));
    conv->to(torch::kDouble);
    {
      torch::NoGradGuard ng;
      conv->b.normal_();
    }
    for (int64_t T : {2, 7}) {
      const std::string what = "K=" + std::to_string(K) + " T=" + std::to_string(T);
      auto x = torch::randn({3, T, 6}, torch::kDouble).requires_grad_(true);
      auto tail0 = torch::randn({3, K - 1, 6}, torch::kDouble);
      auto tail = tail0.clone();
      auto y = conv->forward_stream(x, tail);
      auto ref = conv1d_reference(x, tail0, conv->w, conv->b);
      EXPECT_LT(max_abs_diff(y, ref), 1e-14) << what;
      EXPECT_TRUE(torch::equal(tail, torch::cat({tail0, x.detach()}, 1).narrow(1, T, K - 1))) << what;
      auto wgt = torch::randn({6, T, 3}, torch::kDouble).permute({2, 1, 0});
      auto g = torch::autograd::grad({(y * wgt).sum()}, {x, conv->w, conv->b});
      auto g_ref = torch::autograd::grad({(ref * wgt).sum()}, {x, conv->w, conv->b});
      for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(g[i], g_ref[i]), 1e-12) << what << " input " << i;
      auto loss = [&] {
        auto t = tail0.clone();
        return (conv->forward_stream(x, t) * wgt).sum();
      };
      expect_grad_matches(loss, x, g[0], 12, 1e-6, what + " x");
      expect_grad_matches(loss, conv->w, g[1], 12, 1e-6, what + " w");
      expect_grad_matches(loss, conv->b, g[2], 6, 1e-6, what + " b");
    }
  }
}

namespace {

struct ScanInputs {
  torch::Tensor v, gates, a_param, h0, reset;
};

ScanInputs scan_inputs(int64_t B, int64_t T, int64_t L, int64_t H, torch::Dtype dtype, bool with_h0) {
  torch::manual_seed(7);
  auto opt = torch::TensorOptions(dtype);
  ScanInputs s;
  s.v = torch::randn({B, T, L}, opt).requires_grad_(true);
  s.gates = torch::randn({H, B * T, 2, L / H}, opt).requires_grad_(true);
  s.a_param = (torch::rand({L}, opt) * 4 - 1).requires_grad_(true);
  if (with_h0) {
    s.h0 = torch::randn({B, L}, opt).requires_grad_(true);
    s.reset = torch::zeros({B}, torch::kBool);
    s.reset[0] = true;  // row 0 starts a sequence: its h0 must be ignored
  }
  return s;
}

torch::Tensor reference_of(const ScanInputs& s) {
  auto [gx, ga] = split_gate_logits(s.gates, s.v.size(0), s.v.size(1));
  return rglru_reference(s.v, gx, ga, s.a_param, s.h0, s.reset);
}

}  // namespace

TEST(RGLRUScan, FusedEqualsNaiveValuesAndGradients) {
  for (bool with_h0 : {false, true}) {
    auto s = scan_inputs(3, 9, 8, 2, torch::kDouble, with_h0);
    auto fused = rglru_scan(s.v, s.gates, s.a_param, s.h0, s.reset);
    auto ref = reference_of(s);
    EXPECT_LT(max_abs_diff(fused, ref), 1e-12);
    // A non-contiguous upstream gradient, as LibTorch 1.13's GELU bug needs to be caught.
    auto w = torch::randn({s.v.size(2), s.v.size(1), s.v.size(0)}, torch::kDouble).permute({2, 1, 0});
    std::vector<torch::Tensor> inputs = {s.v, s.gates, s.a_param};
    if (with_h0) inputs.push_back(s.h0);
    auto g_fused = torch::autograd::grad({(fused * w).sum()}, inputs);
    auto g_ref = torch::autograd::grad({(ref * w).sum()}, inputs);
    for (size_t i = 0; i < inputs.size(); ++i) EXPECT_LT(max_abs_diff(g_fused[i], g_ref[i]), 1e-10) << "input " << i;
    if (with_h0) {
      EXPECT_EQ(g_fused[3][0].abs().sum().item<double>(), 0.0) << "reset row must ignore h0";
    }
  }
}

TEST(RGLRUScan, FloatMatchesDouble) {
  auto s = scan_inputs(4, 16, 12, 3, torch::kDouble, true);
  auto ref = rglru_scan(s.v, s.gates, s.a_param, s.h0, s.reset);
  auto f = rglru_scan(s.v.to(torch::kFloat), s.gates.to(torch::kFloat), s.a_param.to(torch::kFloat),
                      s.h0.to(torch::kFloat), s.reset);
  EXPECT_LT(max_abs_diff(f, ref), 1e-5);
}

TEST(RGLRUScan, EveryVectorKernelIsAsAccurateAsThePortableLoop) {
  // Block width 20: one or two full vectors and a remainder, for 8 and 16 lanes.
  const trecvit::detail::ScanDims d{3, 7, 40, 2, 20};
  auto s = scan_inputs(d.B, d.T, d.L, d.H, torch::kFloat, true);  // the exact run sees the same values
  struct Out {
    torch::Tensor h, dv, dg, dsp, dh0;
  };
  auto dh = torch::randn({d.B, d.T, d.L});
  // One forward and backward over the inputs in dtype S, by `k` (null: the portable loop).
  auto run = [&](auto zero, const trecvit::detail::FloatKernels* k) {
    using S = decltype(zero);
    const auto dt = std::is_same_v<S, float> ? torch::kFloat : torch::kDouble;
    auto v = s.v.detach().to(dt), g = s.gates.detach().to(dt), h0 = s.h0.detach().to(dt), up = dh.to(dt);
    auto sp = torch::softplus(s.a_param.detach()).to(dt);
    Out o{torch::empty_like(v), torch::empty_like(v), torch::empty_like(g), torch::zeros({d.B, d.L}, dt),
          torch::empty_like(h0)};
    std::vector<S> carry(d.L);
    auto P = [](const torch::Tensor& t) { return static_cast<S*>(t.data_ptr()); };
    const bool* r = s.reset.data_ptr<bool>();
    if constexpr (std::is_same_v<S, float>) {
      if (k) {
        k->scan_forward(d, P(v), P(g), P(sp), P(h0), r, P(o.h), 0, d.B);
        k->scan_backward(d, P(v), P(g), P(sp), P(h0), r, P(o.h),
                    P(up), P(o.dv), P(o.dg), P(o.dsp),
                    P(o.dh0), carry.data(), 0, d.B);
        return o;
      }
    }
    trecvit::detail::forward_rows<S, S>(d, P(v), P(g), P(sp), P(h0), r,
                                        P(o.h), 0, d.B);
    trecvit::detail::backward_rows<S, S>(d, P(v), P(g), P(sp), P(h0), r,
                                         P(o.h), P(up), P(o.dv),
                                         P(o.dg), P(o.dsp), P(o.dh0), carry.data(), 0,
                                         d.B);
    return o;
  };
  const Out exact = run(0.0, nullptr);
  const Out portable = run(0.0f, nullptr);
  auto err = [](const Out& a, const Out& b) {
    std::vector<double> e;
    for (auto [x, y] : {std::pair{a.h, b.h}, {a.dv, b.dv}, {a.dg, b.dg}, {a.dsp, b.dsp}, {a.dh0, b.dh0}})
      e.push_back(max_abs_diff(x.to(torch::kDouble), y) / y.abs().max().item<double>());
    return e;
  };
  const auto portable_err = err(portable, exact);
  for (double e : portable_err) EXPECT_LT(e, 1e-4) << "the portable float loop itself";
  if (trecvit::detail::float_kernels().empty()) GTEST_SKIP() << "this CPU has no vector build of the scan";
  for (const auto& k : trecvit::detail::float_kernels()) {
    const auto e = err(run(0.0f, &k), exact);
    const char* what[] = {"h", "dv", "dgates", "dsoftplus", "dh0"};
    for (size_t i = 0; i < e.size(); ++i)
      EXPECT_LT(e[i], std::max(4 * portable_err[i], 1e-6)) << k.name << " " << what[i] << " (portable: " << portable_err[i] << ")";
  }
}

TEST(RGLRUScan, EveryBuildCarriesANaNGateForward) {
  // A NaN gate logit (a diverged run) must show as NaN, not be clamped into a number.
  const trecvit::detail::ScanDims d{2, 5, 32, 1, 32};
  auto s = scan_inputs(d.B, d.T, d.L, d.H, torch::kFloat, false);
  auto v = s.v.detach(), g = s.gates.detach().clone();
  auto sp = torch::softplus(s.a_param.detach());
  g[0][d.T + 2][1][3] = std::nanf("");  // sequence 1, time 2, recurrence gate, channel 3
  std::vector<trecvit::detail::FloatKernels> runs = trecvit::detail::float_kernels();
  runs.push_back({"portable", trecvit::detail::forward_rows<float, float>, nullptr, nullptr, nullptr, nullptr, nullptr});
  for (const auto& k : runs) {
    auto h = torch::empty_like(v);
    k.scan_forward(d, v.data_ptr<float>(), g.data_ptr<float>(), sp.data_ptr<float>(), nullptr, nullptr, h.data_ptr<float>(),
              0, d.B);
    EXPECT_TRUE(std::isnan(h[1][2][3].item<float>())) << k.name;
    EXPECT_TRUE(std::isnan(h[1][d.T - 1][3].item<float>())) << k.name << ": carried on";
    EXPECT_FALSE(std::isnan(h[1][2][4].item<float>())) << k.name << ": other channels untouched";
    EXPECT_FALSE(std::isnan(h[0][d.T - 1][3].item<float>())) << k.name << ": other sequences untouched";
  }
}

TEST(RGLRUScan, FiniteDifferenceGradients) {
  auto s = scan_inputs(2, 5, 4, 2, torch::kDouble, true);
  auto w = torch::randn({2, 5, 4}, torch::kDouble);
  auto loss = [&] { return (rglru_scan(s.v, s.gates, s.a_param, s.h0, s.reset) * w).sum(); };
  auto grads = torch::autograd::grad({loss()}, {s.v, s.gates, s.a_param, s.h0});
  expect_grad_matches(loss, s.v, grads[0], 12, 1e-6, "v");
  expect_grad_matches(loss, s.gates, grads[1], 12, 1e-6, "gates");
  expect_grad_matches(loss, s.a_param, grads[2], 4, 1e-6, "a_param");
  expect_grad_matches(loss, s.h0, grads[3], 6, 1e-6, "h0");
}

TEST(RGLRUScan, SqrtGradientIsClippedAt1000) {
  // softplus(p) ~ 0 makes a ~ 1, so 1 - a^2 ~ 0 and the true sqrt gradient explodes.
  auto v = torch::ones({1, 2, 2}, torch::kDouble).requires_grad_(true);
  auto gates = torch::zeros({1, 2, 2, 2}, torch::kDouble).requires_grad_(true);
  auto a_param = torch::full({2}, -30.0, torch::kDouble).requires_grad_(true);
  auto h = rglru_scan(v, gates, a_param, {}, {});
  auto [gx, ga] = split_gate_logits(gates, 1, 2);
  auto ref = rglru_reference(v, gx, ga, a_param, {}, {});
  auto g1 = torch::autograd::grad({h.select(1, 1).sum()}, {gates});
  auto g2 = torch::autograd::grad({ref.select(1, 1).sum()}, {gates});
  EXPECT_TRUE(torch::isfinite(g1[0]).all().item<bool>());
  EXPECT_LT(max_abs_diff(g1[0], g2[0]), 1e-9);
}

TEST(RGLRUScan, FirstFrameIgnoresStateAndUsesMultiplierOne) {
  auto s = scan_inputs(2, 1, 4, 2, torch::kDouble, true);
  s.reset.fill_(true);
  auto h = rglru_scan(s.v, s.gates, s.a_param, s.h0, s.reset);
  auto i_t = torch::sigmoid(split_gate_logits(s.gates, 2, 1).first);
  EXPECT_LT(max_abs_diff(h, s.v * i_t), 1e-14);
}

TEST(RGLRU, StreamingStateEqualsOffline) {
  torch::manual_seed(3);
  RGLRU lru(RGLRUOptions(8, 2));
  auto v = torch::randn({3, 10, 8});
  auto offline = lru(v);
  auto first = lru(v.narrow(1, 0, 4));
  auto rest = lru(v.narrow(1, 4, 6), first.select(1, 3), torch::zeros({3}, torch::kBool));
  EXPECT_LT(max_abs_diff(torch::cat({first, rest}, 1), offline), 1e-6);
}

TEST(RGLRU, GateWeightsKeptWithoutAutogradFollowEveryParameterChange) {
  // Without autograd the concatenated gate weights are kept between calls; any change to a gate
  // parameter (in place, a new tensor, a dtype move, a clone's own weights) must be seen at once.
  torch::manual_seed(5);
  RGLRU lru(RGLRUOptions(8, 2));
  auto v = torch::randn({2, 5, 8});
  auto with_autograd = [&](RGLRU& m, const torch::Tensor& x) { return m(x).detach(); };
  torch::NoGradGuard ng;
  auto check = [&](RGLRU& m, const torch::Tensor& x, const char* what) {
    auto cached = m(x);
    torch::AutoGradMode on(true);
    EXPECT_TRUE(torch::equal(cached, with_autograd(m, x))) << what;
  };
  check(lru, v, "first call");
  check(lru, v, "second call");
  lru->a_gate_w.mul_(1.5);
  check(lru, v, "a_gate_w changed in place");
  lru->input_gate_b.add_(0.25);
  check(lru, v, "input_gate_b changed in place");
  lru->input_gate_w.set_data(torch::randn_like(lru->input_gate_w));
  check(lru, v, "input_gate_w given new data");
  auto copy = std::dynamic_pointer_cast<RGLRUImpl>(lru->clone());
  RGLRU twin(copy);
  twin->a_gate_b.fill_(-1.0);
  check(twin, v, "clone changed");
  check(lru, v, "original after its clone changed");
  EXPECT_FALSE(torch::equal(twin(v), lru(v)));
  lru->to(torch::kDouble);
  check(lru, v.to(torch::kDouble), "moved to double");
}

TEST(RGLRU, InitialisationMatchesTheRing) {
  torch::manual_seed(0);
  RGLRU lru(RGLRUOptions(4096, 4).min_rad(0.5));
  // At r = 1/8 (unit exponent) a = exp(-softplus(p)) lies in [min_rad, 0.999].
  auto a = torch::exp(-torch::softplus(lru->a_param.to(torch::kDouble)));
  EXPECT_GE(a.min().item<double>(), 0.5 - 1e-4);
  EXPECT_LE(a.max().item<double>(), 0.999 + 1e-4);
  // a^2 is uniform: its mean is the midpoint of [0.25, 0.998].
  EXPECT_NEAR((a * a).mean().item<double>(), (0.25 + 0.999 * 0.999) / 2, 0.02);
}

TEST(RecurrentBlock, StreamingEqualsOfflineAndCarriesState) {
  torch::manual_seed(4);
  RecurrentBlock block(RecurrentBlockOptions(6, 8, 2));
  auto x = torch::randn({2, 7, 6});
  auto offline = block(x);
  auto state = block->initial_state(2, x.options());
  auto reset = torch::ones({2}, torch::kBool);
  std::vector<torch::Tensor> outs;
  for (int64_t t = 0; t < 7; ++t) {
    outs.push_back(block->forward(x.narrow(1, t, 1), &state, reset));
    reset = torch::zeros({2}, torch::kBool);
  }
  EXPECT_LT(max_abs_diff(torch::cat(outs, 1), offline), 1e-6);
}

TEST(SpatialAttention, MatchesExplicitFormulaAndNeverMixesFrames) {
  torch::manual_seed(5);
  SpatialAttention att(SpatialAttentionOptions(8, 2));
  att->to(torch::kDouble);
  auto x = torch::randn({2, 5, 3, 8}, torch::kDouble);  // [B, N, T, D]
  auto y = att(x);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t) {
      auto f = x[b].select(1, t);  // [N, D]
      auto q = att->query(f), k = att->key(f), v = att->value(f);
      std::vector<torch::Tensor> heads;
      for (int64_t h = 0; h < 2; ++h) {
        auto qh = q.narrow(1, 4 * h, 4), kh = k.narrow(1, 4 * h, 4), vh = v.narrow(1, 4 * h, 4);
        heads.push_back(torch::softmax(qh.matmul(kh.t()) / 2.0, -1).matmul(vh));
      }
      auto expected = att->out(torch::cat(heads, 1));
      EXPECT_LT(max_abs_diff(y[b].select(1, t), expected), 1e-12);
    }
}

// The scale folded into the logits' matmul must carry its gradient to q, k and the input.
TEST(SpatialAttention, FiniteDifferenceGradients) {
  torch::manual_seed(6);
  SpatialAttention att(SpatialAttentionOptions(8, 2));
  att->to(torch::kDouble);
  auto x = torch::randn({1, 4, 2, 8}, torch::kDouble).requires_grad_(true);
  auto w = torch::randn({8, 2, 4, 1}, torch::kDouble).permute({3, 2, 1, 0});
  auto loss = [&] { return (att(x) * w).sum(); };
  auto g = torch::autograd::grad({loss()}, {x, att->query->weight, att->key->weight, att->value->weight});
  expect_grad_matches(loss, x, g[0], 16, 1e-6, "x");
  expect_grad_matches(loss, att->query->weight, g[1], 12, 1e-6, "query");
  expect_grad_matches(loss, att->key->weight, g[2], 12, 1e-6, "key");
  expect_grad_matches(loss, att->value->weight, g[3], 12, 1e-6, "value");
}

TEST(MLP, FiniteDifferenceGradientsWithNonContiguousUpstream) {
  torch::manual_seed(6);
  MLP mlp(MLPOptions(4, 16));
  mlp->to(torch::kDouble);
  auto x = torch::randn({3, 5, 4}, torch::kDouble).requires_grad_(true);
  auto w = torch::randn({4, 5, 3}, torch::kDouble).permute({2, 1, 0});
  auto loss = [&] { return (mlp(x) * w).sum(); };
  auto g = torch::autograd::grad({loss()}, {x, mlp->fc1->weight});
  expect_grad_matches(loss, x, g[0], 10, 1e-6, "x");
  expect_grad_matches(loss, mlp->fc1->weight, g[1], 10, 1e-6, "fc1.weight");
}

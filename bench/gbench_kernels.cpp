// Google Benchmark micro-benchmarks of the kernels under the model: the fused RG-LRU scan
// against the naive per-step loop, the fused RMSNorm, causal conv and GELU against their
// tensor-op forms, attention's loops against LibTorch's batched matmuls, the trainer's AdamW
// update, fp32 GEMM at a TRecViT-S layer's shapes, and PEER's stages at the large
// configuration (N = 1024^2, D = 256, 8 heads of 16, 1024 tokens) with the expert stage's
// memory bound.
// Run: [TRECVIT_THREADS=1] build/bench/gbench_kernels [--benchmark_filter=Scan]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "blocks/attention.h"
#include "blocks/conv1d.h"
#include "blocks/expert_lookup.h"
#include "blocks/gelu.h"
#include "blocks/norms.h"
#include "blocks/peer.h"
#include "blocks/product_key_select.h"
#include "blocks/product_keys.h"
#include "blocks/parse_number.h"
#include "blocks/rglru.h"
#include "blocks/rglru_reference.h"
#include "blocks/rglru_scan.h"
#include "blocks/runtime.h"
#include "models/config_locator.h"
#include "models/trecvit.h"
#include "train/optim.h"

namespace {

using namespace trecvit;

struct ScanCase {
  torch::Tensor v, gates, gx, ga, a_param;
  ScanCase(int64_t B, int64_t T, int64_t L, int64_t H) {
    torch::manual_seed(0);
    RGLRU lru(RGLRUOptions(L, H));
    v = torch::randn({B, T, L}, torch::requires_grad());
    gates = lru->gate_logits(v).detach().requires_grad_(true);
    auto split = split_gate_logits(gates.detach(), B, T);
    gx = split.first.requires_grad_(true);
    ga = split.second.requires_grad_(true);
    a_param = lru->a_param.detach().clone().requires_grad_(true);
  }
};

void ScanFused(benchmark::State& st) {
  ScanCase c(100, st.range(0), 768, 6);
  const bool backward = st.range(1);
  for (auto _ : st) {
    auto h = rglru_scan(c.v, c.gates, c.a_param, {}, {});
    if (backward) h.sum().backward();
    benchmark::DoNotOptimize(h.data_ptr());
  }
}

void ScanNaive(benchmark::State& st) {
  ScanCase c(100, st.range(0), 768, 6);
  const bool backward = st.range(1);
  for (auto _ : st) {
    auto h = rglru_reference(c.v, c.gx, c.ga, c.a_param, {}, {});
    if (backward) h.sum().backward();
    benchmark::DoNotOptimize(h.data_ptr());
  }
}

void Gemm(benchmark::State& st) {
  const int64_t M = st.range(0), K = st.range(1), N = st.range(2);
  auto a = torch::randn({M, K}), b = torch::randn({K, N}), c = torch::empty({M, N});
  for (auto _ : st) torch::mm_out(c, a, b);
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * M * K * N, benchmark::Counter::kIsIterationInvariantRate);
}

// One small-config layer at 112 px, batch 1, 8 frames: 50 token series of 8 frames.
void RMSNormKernel(benchmark::State& st) {
  RMSNorm norm(RMSNormOptions(384));
  auto x = torch::randn({50, 8, 384}, torch::requires_grad());
  const bool fused = st.range(0), backward = st.range(1);
  for (auto _ : st) {
    auto y = fused ? norm(x) : rms_norm_reference(x, norm->scale, 1e-6);
    if (backward) y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
}

void Conv1DKernel(benchmark::State& st) {
  Conv1D conv(Conv1DOptions(768, 4));
  auto x = torch::randn({50, 8, 768}, torch::requires_grad());
  auto tail = torch::zeros({50, 3, 768});
  const bool fused = st.range(0), backward = st.range(1);
  for (auto _ : st) {
    auto y = fused ? conv(x) : conv1d_reference(x, tail, conv->w, conv->b);
    if (backward) y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
}

// The MLP's hidden layer: 50 tokens x 8 frames x 1536.
void GeluKernel(benchmark::State& st) {
  auto x = torch::randn({50, 8, 1536}, torch::requires_grad());
  const bool fused = st.range(0), backward = st.range(1);
  for (auto _ : st) {
    auto y = fused ? gelu_tanh(x) : gelu_tanh_reference(x);
    if (backward) y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
}

// Attention over a frame's tokens, q, k, v [B, N, T, D]: the demo's layer (16 clips x 8 frames of
// 16 tokens, 2 heads of 32), a small-config layer at 112 px (8 frames of 50 tokens, 6 heads of 64),
// the streaming step's (one frame) and 224 px (197 tokens).
void AttentionKernel(benchmark::State& st) {
  const int64_t shapes[4][5] = {{16, 16, 8, 64, 2}, {1, 50, 8, 384, 6}, {1, 50, 1, 384, 6}, {1, 197, 8, 384, 6}};
  const auto* s = shapes[st.range(2)];
  const bool fused = st.range(0), backward = st.range(1);
  std::vector<torch::Tensor> t;
  for (int i = 0; i < 3; ++i) t.push_back(torch::randn({s[0], s[1], s[2], s[3]}, torch::requires_grad(backward)));
  for (auto _ : st) {
    auto y = fused ? spatial_attention(t[0], t[1], t[2], s[4]) : spatial_attention_reference(t[0], t[1], t[2], s[4]);
    if (backward) y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  const double flop = 4.0 * s[0] * s[2] * s[1] * s[1] * s[3] * (backward ? 3 : 1);
  st.counters["FLOP/s"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
}

// The trainer's update for the demo model's parameters: the global-norm clip and AdamW.
void OptimizerStep(benchmark::State& st) {
  torch::manual_seed(0);
  TRecViT model(load_config(find_config("demo-peer")));
  auto params = model->parameters();
  for (auto& p : params) p.mutable_grad() = torch::randn_like(p) * 1e-3;
  auto opt = make_adamw(*model, 1e-4, 0.05);
  const bool clip = st.range(0);
  for (auto _ : st) {
    if (clip) torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt->step();
  }
  int64_t n = 0;
  for (auto& p : params) n += p.numel();
  st.counters["params"] = static_cast<double>(params.size());
  st.counters["elements"] = static_cast<double>(n);
}
BENCHMARK(OptimizerStep)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK(AttentionKernel)->ArgsProduct({{1, 0}, {0, 1}, {0, 1, 2, 3}})->ArgNames({"fused", "backward", "shape"})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(RMSNormKernel)->ArgsProduct({{1, 0}, {0, 1}})->ArgNames({"fused", "backward"})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(Conv1DKernel)->ArgsProduct({{1, 0}, {0, 1}})->ArgNames({"fused", "backward"})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(GeluKernel)->ArgsProduct({{1, 0}, {0, 1}})->ArgNames({"fused", "backward"})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(ScanFused)->ArgsProduct({{16, 32, 64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
// PEER's stages at N = 1024^2, D = 256, h = 8, k = 16, d_k = 128, 1024 tokens: the router's
// query (projection and BatchNorm), its fused score-and-select, and the expert stage.
struct PeerCase {
  PEER peer{PEEROptions(256).sparse_grad(true)};
  torch::Tensor x = torch::randn({1024, 256}), q, ids, gates;
  PeerCase() {
    torch::NoGradGuard ng;
    q = peer->router->query(x).contiguous();
    auto r = peer->router->forward(x);
    ids = r.ids.view({1024, 128});
    gates = r.gates.reshape({1024, 128});
  }
};
PeerCase& peer_case() {
  static PeerCase c;
  return c;
}

void PeerQuery(benchmark::State& st) {
  auto& c = peer_case();
  torch::NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize(c.peer->router->query(c.x).data_ptr());
}

// Arg: the kernel path, 0 = the widest this CPU runs (AVX-512, AVX2, generic in select_paths() order).
void PeerScoreSelect(benchmark::State& st) {
  auto& c = peer_case();
  auto& r = *c.peer->router;
  const auto& paths = trecvit::detail::select_paths();
  if (st.range(0) >= int64_t(paths.size())) return st.SkipWithError("this CPU lacks that kernel");
  const auto path = paths[st.range(0)];
  st.SetLabel(path == trecvit::detail::SelectPath::kAvx512 ? "avx512" : path == trecvit::detail::SelectPath::kAvx2 ? "avx2" : "generic");
  torch::NoGradGuard ng;
  auto q = c.q.reshape({c.q.size(0), -1}).contiguous();
  for (auto _ : st)
    benchmark::DoNotOptimize(
        trecvit::detail::product_key_select(q, r.sub_keys, r.options.topk(), r.half_topk(), 4096, path).first.data_ptr());
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * 1024 * 8 * 1024 * 128, benchmark::Counter::kIsIterationInvariantRate);
}

void PeerExperts(benchmark::State& st) {
  auto& c = peer_case();
  torch::NoGradGuard ng;
  for (auto _ : st)
    benchmark::DoNotOptimize(
        single_neuron_experts(c.x, c.ids, c.gates, c.peer->up, c.peer->down, ExpertActivation::kGelu, true).data_ptr());
  st.counters["bytes/s"] = benchmark::Counter(1024.0 * 128 * 2 * 256 * 4, benchmark::Counter::kIsIterationInvariantRate);
}

// The expert stage's memory bound: the same up and down rows read once each, in the ascending
// id order the stage walks them, and only summed (no dot products, no activation, no writes).
void PeerRowReads(benchmark::State& st) {
  auto& c = peer_case();
  auto ids = std::get<0>(c.ids.reshape(-1).sort());
  const int64_t* id = ids.data_ptr<int64_t>();
  const float* up = c.peer->up.data_ptr<float>();
  const float* down = c.peer->down.data_ptr<float>();
  const int64_t D = c.peer->up.size(1), S = ids.numel();
  std::vector<float> acc(D);
  for (auto _ : st) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t i = 0; i < S; ++i) {
      if (i + 4 < S)
        for (int64_t o = 0; o < D; o += 16) {
          __builtin_prefetch(up + id[i + 4] * D + o, 0, 1);
          __builtin_prefetch(down + id[i + 4] * D + o, 0, 1);
        }
      const float *u = up + id[i] * D, *v = down + id[i] * D;
      for (int64_t j = 0; j < D; ++j) acc[j] += u[j] + v[j];
    }
    benchmark::DoNotOptimize(acc.data());
  }
  st.counters["bytes/s"] = benchmark::Counter(double(S) * 2 * D * 4, benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(PeerQuery)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(PeerScoreSelect)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(PeerExperts)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(PeerRowReads)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(ScanNaive)->ArgsProduct({{16, 32, 64}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();
// Small config, 112 px, batch 1, 8 frames: M = 8 * 50 tokens.
BENCHMARK(Gemm)->Args({400, 384, 768})->Args({400, 768, 384})->Args({400, 384, 1536})->Args({400, 1536, 384})
    ->Args({1024, 1024, 1024})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  trecvit::apply_thread_wait_policy(argv);
  // TRECVIT_THREADS=N: N threads (default: every core), e.g. 1 when pinned with taskset.
  const char* threads = std::getenv("TRECVIT_THREADS");
  trecvit::configure_runtime(threads ? trecvit::parse_int(threads).value_or(0) : 0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

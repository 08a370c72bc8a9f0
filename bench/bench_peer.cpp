// PEER against a naive formulation in plain LibTorch ops and dense MLPs, plus PKM and the MoEs.
// Every variant runs in a child process of its own (this binary, `--set child=<variant>`), so
// its peak resident memory (VmHWM) is its own: a retaining allocator would otherwise lend one
// variant's freed pages to the next. The parent measures the machine (GEMM rate, copy
// bandwidth) and checks the goals:
//   PEER forward+backward >= 2.5x the naive tokens/s at <= 0.6x its peak memory;
//   PEER forward >= 50% of the rate its router matrix products allow at the measured GEMM rate;
//   the expert stage's bandwidth against the machine's copy bandwidth.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "bench/common.h"
#include "bench/harness.h"
#include "blocks/expert_lookup.h"
#include "blocks/mlp.h"
#include "blocks/moe.h"
#include "blocks/norms.h"
#include "blocks/peer.h"
#include "blocks/pkm.h"
#include "blocks/sigma_moe.h"
#include "models/npz.h"

namespace trecvit::bench {
namespace {

int64_t status_bytes(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::strtoll(line.c_str() + key.size() + 1, nullptr, 10) * 1024;  // "  123 kB"
  return -1;
}

struct Shape {
  int64_t N, D, h, k, dk, tokens;
};

Shape shape_of(const Args& a) {
  auto get = [&](const char* key) { return a.get_int(key, "0"); };
  return {get("N"), get("D"), get("h"), get("k"), get("dk"), get("tokens")};
}

// The formulation a port would write first: gather u and v as [M, h, k, D] tensors, einsum,
// and let autograd scatter dense [N, D] table gradients (index_select's backward).
torch::Tensor naive_peer(PEERImpl& p, const torch::Tensor& x, torch::Tensor* ids_out = nullptr) {
  const int64_t M = x.size(0), D = p.options.dim(), h = p.options.heads(), k = p.options.topk();
  const int64_t n = p.router->n(), dk = p.options.key_dim();
  auto q = p.router->query(x).view({M, h, 2, dk / 2});
  auto s = torch::einsum("mhcd,hcnd->mhcn", {q, p.router->sub_keys});  // [M, h, 2, n]
  auto [v1, i1] = s.select(2, 0).topk(k);
  auto [v2, i2] = s.select(2, 1).topk(k);
  auto [scores, c] = (v1.unsqueeze(3) + v2.unsqueeze(2)).view({M, h, k * k}).topk(k);
  auto ids = (i1.gather(2, c.div(k, "floor")) * n + i2.gather(2, c.remainder(k))).view(-1);
  if (ids_out) *ids_out = ids.view({M, h, k});
  auto g = torch::softmax(scores, -1);
  auto u = p.up.index_select(0, ids).view({M, h, k, D});
  auto a = gelu_tanh(torch::einsum("mhkd,md->mhk", {u, x})) * g;
  auto v = p.down.index_select(0, ids).view({M, h, k, D});
  return torch::einsum("mhk,mhkd->md", {a, v});
}

// One variant, measured in this (child) process.
nlohmann::json run_variant(const std::string& variant, const Args& args) {
  const Shape s = shape_of(args);
  torch::manual_seed(0);
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> fwd;
  std::shared_ptr<PEERImpl> peer;
  if (variant == "peer" || variant == "peer_sparse" || variant == "naive_peer") {
    peer = std::make_shared<PEERImpl>(
        PEEROptions(s.D, s.N).heads(s.h).topk(s.k).key_dim(s.dk).sparse_grad(variant == "peer_sparse"));
    module = peer;
    if (variant == "naive_peer")
      fwd = [peer](const torch::Tensor& x) { return naive_peer(*peer, x); };
    else
      fwd = [peer](const torch::Tensor& x) { return peer->forward(x); };
  } else if (variant == "mlp_hk" || variant == "mlp_4d") {
    auto m = std::make_shared<MLPImpl>(MLPOptions(s.D, variant == "mlp_hk" ? s.h * s.k : 4 * s.D));
    module = m;
    fwd = [m](const torch::Tensor& x) { return m->forward(x); };
  } else if (variant == "pkm") {
    auto m = std::make_shared<PKMImpl>(PKMOptions(s.D, s.N).heads(s.h).topk(s.k).key_dim(s.dk));
    module = m;
    fwd = [m](const torch::Tensor& x) { return m->forward(x); };
  } else if (variant == "moe") {  // 16 experts of 2D, top-2: the active width of the 4D MLP
    auto m = std::make_shared<MoEImpl>(MoEOptions(s.D, 16, 2 * s.D).topk(2));
    module = m;
    fwd = [m](const torch::Tensor& x) { return m->forward(x); };
  } else if (variant == "sigma_moe") {  // 8 of 64 experts of 128: the active width of the 4D MLP at D = 256
    auto m = std::make_shared<SigmaMoEImpl>(SigmaMoEOptions(s.D, 64, 128).topk(std::max<int64_t>(1, s.D / 32)));
    module = m;
    fwd = [m](const torch::Tensor& x) { return m->forward(x); };
  } else {
    throw std::runtime_error("bench peer: unknown variant '" + variant + "'");
  }
  if (const std::string dump = args.get("dump", ""); !dump.empty()) {
    // Parameters, input and train-mode output for bench/eager/peer_eager.py --check.
    TORCH_CHECK(peer, "bench peer: --set dump needs a PEER variant (peer, peer_sparse), got '", variant, "'");
    TORCH_CHECK(peer->router->batch_norm, "bench peer: --set dump expects the query BatchNorm");
    torch::NoGradGuard ng;
    auto x = torch::randn({s.tokens, s.D});
    auto r = peer->router->forward(x);
    NamedArrays arrays;
    for (const auto& p : peer->named_parameters()) arrays.emplace_back(p.key(), p.value());
    arrays.insert(arrays.end(), {{"x", x}, {"y", peer->forward(x)}, {"ids", r.ids}});
    write_npz(dump, arrays);
    return {{"variant", variant}, {"dump", dump}};
  }
  auto params = module->parameters();
  int64_t param_bytes = 0;
  for (auto& p : params) param_bytes += p.nbytes();
  auto x = torch::randn({s.tokens, s.D}, torch::requires_grad());
  auto G = torch::randn({s.tokens, s.D});
  auto clear = [&] {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    x.mutable_grad() = torch::Tensor();
  };
  std::ofstream("/proc/self/clear_refs") << "5";  // peak RSS from here on
  const int64_t rss0 = status_bytes("VmRSS");
  const double f = median_seconds([&] {
    torch::NoGradGuard ng;
    fwd(x);
  }, args.repeats);
  const double fb = median_seconds([&] {
    clear();
    fwd(x).backward(G);
  }, args.repeats);
  const int64_t peak = status_bytes("VmHWM");
  clear();
  nlohmann::json out = {{"variant", variant},       {"forward_s", f},
                        {"forward_backward_s", fb}, {"peak_rss_bytes", peak},
                        {"rss_before_bytes", rss0}, {"param_bytes", param_bytes}};
  if (peer) {
    torch::NoGradGuard ng;
    auto r = peer->router->forward(x);
    const int64_t S = s.h * s.k;
    auto ids = r.ids.view({s.tokens, S}), gates = r.gates.reshape({s.tokens, S});
    out["expert_forward_s"] = median_seconds([&] {
      single_neuron_experts(x, ids, gates, peer->up, peer->down, ExpertActivation::kGelu, false);
    }, args.repeats);
    out["router_forward_s"] = median_seconds([&] { peer->router->forward(x); }, args.repeats);
    // Agreement: the same experts per (token, head) up to the order of equal-looking scores
    // (summation order differs, so a near-tie at the k-th place may flip), and the outputs of
    // the tokens routed identically.
    torch::Tensor naive_ids;
    auto yn = naive_peer(*peer, x, &naive_ids);
    auto same = (std::get<0>(naive_ids.sort(-1)) == std::get<0>(r.ids.sort(-1))).all(-1).all(-1);  // [M]
    out["tokens_routed_identically"] = same.sum().item<int64_t>();
    out["max_abs_diff_identically_routed"] = (yn - peer->forward(x)).abs().amax(1).masked_select(same).max().item<double>();
  }
  return out;
}

nlohmann::json run_child(const std::string& variant, const Shape& s, const Args& args) {
  const std::string arguments = "bench peer --json --repeats " + std::to_string(args.repeats) + " --set child=" +
                                variant + fmt::format(" --set N={} --set D={} --set h={} --set k={} --set dk={} --set tokens={}",
                                                      s.N, s.D, s.h, s.k, s.dk, s.tokens);
  try {
    return run_self_json("", arguments);
  } catch (const std::exception& e) {
    return {{"variant", variant}, {"error", e.what()}};
  }
}

double copy_bandwidth(int64_t floats, int repeats) {
  torch::NoGradGuard ng;
  auto src = torch::randn({floats}), dst = torch::empty_like(src);
  const double sec = median_seconds([&] { dst.copy_(src); }, repeats);
  return 2.0 * double(src.nbytes()) / sec;  // read + write
}

}  // namespace

nlohmann::json bench_peer(const Args& args) {
  const std::string child = args.get("child", "");
  if (!child.empty()) return run_variant(child, args);

  const double gemm = gemm_flops(1024, 1024, 1024, args.repeats);
  const double copy_bw = copy_bandwidth(args.quick ? int64_t(4) << 20 : int64_t(64) << 20, args.repeats);  // 256 MiB
  print_row("machine", {{"GEMM", fmt::format("{:.1f} GFLOP/s", gemm / 1e9)},
                        {"copy", fmt::format("{:.1f} GB/s", copy_bw / 1e9)}});
  std::vector<Shape> shapes;
  std::vector<std::string> variants = {"peer", "peer_sparse", "naive_peer", "mlp_hk", "mlp_4d"};
  if (args.quick) {
    shapes.push_back({32 * 32, 32, 2, 4, 8, 64});
  } else {
    shapes.push_back({1024 * 1024, 256, 8, 16, 128, args.get_int("tokens", "4096")});
    shapes.push_back({512 * 512, 768, 8, 16, 128, args.get_int("tokens768", "2048")});
  }
  nlohmann::json results = nlohmann::json::array();
  for (size_t si = 0; si < shapes.size(); ++si) {
    const Shape& s = shapes[si];
    auto vs = variants;
    if (si == 0) vs.insert(vs.end(), {"pkm", "moe", "sigma_moe"});
    std::map<std::string, nlohmann::json> r;
    for (auto& v : vs) {
      r[v] = run_child(v, s, args);
      const auto& j = r[v];
      if (j.contains("error")) {
        print_row(v, {{"error", j["error"].get<std::string>()}});
        continue;
      }
      print_row(fmt::format("N={} D={} {}", s.N, s.D, v),
                {{"fwd", fmt::format("{:.0f} tok/s", s.tokens / j["forward_s"].get<double>())},
                 {"fwd+bwd", fmt::format("{:.0f} tok/s", s.tokens / j["forward_backward_s"].get<double>())},
                 {"peak", fmt::format("{:.0f} MiB", j["peak_rss_bytes"].get<double>() / 1048576)},
                 {"params", fmt::format("{:.0f} MiB", j["param_bytes"].get<double>() / 1048576)}});
    }
    nlohmann::json row = {{"N", s.N}, {"D", s.D}, {"h", s.h}, {"k", s.k}, {"dk", s.dk}, {"tokens", s.tokens},
                          {"variants", r}};
    auto ok = [&](const char* v) { return r.count(v) && !r[v].contains("error"); };
    if (ok("peer") && ok("naive_peer") && ok("peer_sparse")) {
      const auto &p = r["peer"], &ps = r["peer_sparse"], &nv = r["naive_peer"];
      const double n = std::sqrt(double(s.N));
      const double router_flops = 2.0 * s.D * s.h * s.dk + 2.0 * s.h * n * s.dk;  // per token, matrix products
      const double peer_fwd_rate = s.tokens / p["forward_s"].get<double>();
      const double allowed = gemm / router_flops;
      const double expert_bytes = double(s.tokens) * (s.h * s.k * 2 * s.D + 2 * s.D) * 4;  // rows read, x, y
      const double expert_bw = expert_bytes / p["expert_forward_s"].get<double>();
      auto speed = [&](const nlohmann::json& a) {
        return nv["forward_backward_s"].get<double>() / a["forward_backward_s"].get<double>();
      };
      auto mem = [&](const nlohmann::json& a) {
        return a["peak_rss_bytes"].get<double>() / nv["peak_rss_bytes"].get<double>();
      };
      row["goals"] = {
          {"fwd_bwd_speedup_vs_naive_dense_grad", speed(p)},
          {"fwd_bwd_speedup_vs_naive_sparse_grad", speed(ps)},
          {"peak_memory_ratio_vs_naive_dense_grad", mem(p)},
          {"peak_memory_ratio_vs_naive_sparse_grad", mem(ps)},
          {"speed_goal_2_5x_met", speed(p) >= 2.5 && speed(ps) >= 2.5},
          {"memory_goal_0_6x_met_dense_grad", mem(p) <= 0.6},
          {"memory_goal_0_6x_met_sparse_grad", mem(ps) <= 0.6},
          {"router_gemm_flops_per_token", router_flops},
          {"forward_tokens_per_s", peer_fwd_rate},
          {"router_bound_tokens_per_s", allowed},
          {"fraction_of_router_bound", peer_fwd_rate / allowed},
          {"router_goal_50pct_met", peer_fwd_rate >= 0.5 * allowed},
          {"expert_stage_bandwidth_Bps", expert_bw},
          {"expert_stage_fraction_of_copy_bandwidth", expert_bw / copy_bw},
          {"naive_tokens_routed_identically", nv["tokens_routed_identically"]},
          {"naive_max_abs_diff_identically_routed", nv["max_abs_diff_identically_routed"]}};
      const auto& g = row["goals"];
      print_row(fmt::format("N={} D={} goals", s.N, s.D),
                {{"fwd+bwd vs naive", fmt::format("{:.2f}x dense-grad, {:.2f}x sparse-grad (goal 2.5x)",
                                                  g["fwd_bwd_speedup_vs_naive_dense_grad"].get<double>(),
                                                  g["fwd_bwd_speedup_vs_naive_sparse_grad"].get<double>())},
                 {"peak vs naive", fmt::format("{:.2f} dense-grad, {:.2f} sparse-grad (goal 0.6)",
                                               mem(p), mem(ps))},
                 {"fwd vs router bound", fmt::format("{:.0f}% (goal 50%)", 100 * peer_fwd_rate / allowed)},
                 {"expert stage", fmt::format("{:.1f} GB/s = {:.0f}% of copy", expert_bw / 1e9, 100 * expert_bw / copy_bw)}});
    }
    results.push_back(row);
  }
  return {{"benchmark", "peer"},
          {"gemm_flops", gemm},
          {"copy_bandwidth_Bps", copy_bw},
          {"threads", at::get_num_threads()},
          {"results", results}};
}

}  // namespace trecvit::bench

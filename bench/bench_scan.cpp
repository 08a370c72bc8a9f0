// The fused RG-LRU scan against the naive per-time-step loop of tensor ops.
#include <fmt/format.h>

#include "bench/harness.h"
#include "blocks/rglru.h"
#include "blocks/rglru_reference.h"
#include "blocks/rglru_scan.h"

namespace trecvit::bench {

nlohmann::json bench_scan(const Args& args) {
  // Default: one small-config layer at 112 px, batch 2: 2 * 50 token series, L = 768, 6 heads.
  const int64_t B = args.get_int("series", args.quick ? "8" : "100");
  const int64_t L = args.get_int("width", args.quick ? "32" : "768");
  const int64_t H = args.get_int("heads", args.quick ? "2" : "6");
  std::vector<int64_t> Ts = args.quick ? std::vector<int64_t>{8} : std::vector<int64_t>{16, 32, 64};
  torch::manual_seed(0);
  RGLRU lru(RGLRUOptions(L, H));
  nlohmann::json out = nlohmann::json::array();
  for (int64_t T : Ts) {
    auto v = torch::randn({B, T, L}, torch::requires_grad());
    auto gates = lru->gate_logits(v).detach().requires_grad_(true);
    auto [gx, ga] = split_gate_logits(gates.detach(), B, T);
    gx.requires_grad_(true);
    ga.requires_grad_(true);
    auto fused_f = median_seconds([&] {
      torch::NoGradGuard ng;
      rglru_scan(v, gates, lru->a_param, {}, {});
    }, args.repeats);
    auto naive_f = median_seconds([&] {
      torch::NoGradGuard ng;
      rglru_reference(v, gx, ga, lru->a_param, {}, {});
    }, args.repeats);
    auto fused_fb = median_seconds([&] { rglru_scan(v, gates, lru->a_param, {}, {}).sum().backward(); }, args.repeats);
    auto naive_fb = median_seconds([&] { rglru_reference(v, gx, ga, lru->a_param, {}, {}).sum().backward(); },
                                   args.repeats);
    print_row(fmt::format("scan series={} L={} T={}", B, L, T),
              {{"fwd", fmt::format("{:.2f} ms vs naive {:.2f} ms ({:.1f}x)", fused_f * 1e3, naive_f * 1e3, naive_f / fused_f)},
               {"fwd+bwd", fmt::format("{:.2f} ms vs {:.2f} ms ({:.1f}x)", fused_fb * 1e3, naive_fb * 1e3, naive_fb / fused_fb)}});
    out.push_back({{"T", T}, {"series", B}, {"width", L},
                   {"fused_forward_s", fused_f}, {"naive_forward_s", naive_f}, {"forward_speedup", naive_f / fused_f},
                   {"fused_forward_backward_s", fused_fb}, {"naive_forward_backward_s", naive_fb},
                   {"forward_backward_speedup", naive_fb / fused_fb}});
  }
  return {{"benchmark", "scan"}, {"results", out}};
}

}  // namespace trecvit::bench

// Many streams in one batched step vs one step per stream: what `trecvit stream` gains by
// advancing every source with a new frame together.
#include <fmt/format.h>

#include <chrono>

#include "bench/common.h"
#include "bench/harness.h"
#include "bench/stream_parts.h"
#include "models/accounting.h"

namespace trecvit::bench {

nlohmann::json stream_batched(const Args& args) {
  const auto cfg = bench_config(args.get("config", args.quick ? "tiny" : "small"),
                                args.get_int("size", args.quick ? "32" : "112"));
  const auto streams = parse_int_list(args.get("streams", args.quick ? "1,4" : "1,4,16"));
  const int steps = (int)args.get_int("steps", args.quick ? "3" : "8");
  torch::manual_seed(0);
  TRecViT model(cfg);
  model->eval();
  torch::NoGradGuard ng;
  const double flops_frame = account(*model).flops_per_frame;
  nlohmann::json out = nlohmann::json::array();
  for (int64_t B : streams) {
    auto frames = torch::randint(0, 256, {B, 1, cfg.image_height, cfg.image_width, 3}, torch::kByte);
    auto together = model->init_stream(B);
    const double batched = median_seconds([&] { model->advance(together, frames); }, steps);
    std::vector<StreamState> alone;
    for (int64_t b = 0; b < B; ++b) alone.push_back(model->init_stream(1));
    // One round: every stream advanced by its own step, one after another.
    const double separate = median_seconds(
        [&] {
          for (int64_t b = 0; b < B; ++b) model->advance(alone[b], frames.narrow(0, b, 1));
        },
        steps);
    // Latency of a frame: until its stream's prediction exists (on average half a round when separate).
    const double separate_latency = separate * (B + 1) / (2.0 * B);
    // The ceiling: the GEMM rate at the layer's shapes for B and for 1 stream's tokens.
    auto gemm_at = [&](int64_t streams_in_step) {
      const int64_t M = streams_in_step * cfg.num_tokens(), D = cfg.width, L = cfg.lru_width, F = cfg.mlp_dim;
      return gemm_flops_mix({{M, D, L}, {M, D, L}, {M, L, D}, {M, D, D}, {M, D, D}, {M, D, D}, {M, D, D}, {M, D, F}, {M, F, D}},
                            steps);
    };
    const double gemm_b = gemm_at(B), gemm_1 = gemm_at(1);
    const double frac_batched = flops_frame * B / batched / gemm_b, frac_separate = flops_frame * B / separate / gemm_1;
    print_row(fmt::format("stream {}@{} x{}", cfg.name, cfg.image_height, B),
              {{"batched", fmt::format("{:.1f} frames/s, latency {:.1f} ms", B / batched, batched * 1e3)},
               {"separate", fmt::format("{:.1f} frames/s, latency {:.1f} ms", B / separate, separate_latency * 1e3)},
               {"speed-up", fmt::format("{:.2f}x", separate / batched)},
               {"of GEMM", fmt::format("{:.0f}% vs {:.0f}%", 100 * frac_batched, 100 * frac_separate)}});
    out.push_back({{"streams", B}, {"batched_step_s", batched}, {"batched_frames_per_s", B / batched},
                   {"separate_round_s", separate}, {"separate_frames_per_s", B / separate},
                   {"separate_latency_s", separate_latency}, {"speedup", separate / batched},
                   {"gemm_gflops_batched_shapes", gemm_b / 1e9}, {"gemm_gflops_single_shapes", gemm_1 / 1e9},
                   {"fraction_of_gemm_batched", frac_batched}, {"fraction_of_gemm_separate", frac_separate}});
  }
  return {{"config", cfg.name}, {"image_size", cfg.image_height}, {"results", out}};
}

}  // namespace trecvit::bench

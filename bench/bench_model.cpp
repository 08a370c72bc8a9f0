// Forward and forward+backward throughput against the machine's GEMM rate, measured in
// the same run at the model's own matrix shapes.
#include <fmt/format.h>

#include "bench/harness.h"
#include "bench/common.h"
#include "bench/op_profile.h"
#include "models/accounting.h"

namespace trecvit::bench {


nlohmann::json bench_model(const Args& args) {
  const int64_t T = args.get_int("frames", args.quick ? "2" : "4");
  const int64_t B = args.get_int("batch", "1");
  std::vector<std::pair<std::string, int64_t>> runs;
  if (args.quick)
    runs = {{"tiny", 32}};
  else
    runs = {{"small", 112}, {"small", 224}, {"base", 112}, {"base", 224}};
  if (args.get("config", "") != "") runs = {{args.get("config", ""), args.get_int("size", "224")}};
  nlohmann::json out = nlohmann::json::array();
  for (auto& [name, size] : runs) {
    auto cfg = bench_config(name, size);
    torch::manual_seed(0);
    TRecViT model(cfg);
    auto frames = torch::randint(0, 256, {B, T, size, size, 3}, torch::kByte);
    const double flops = double(account(*model).flops_per_frame) * B * T;
    model->eval();
    double fwd = median_seconds([&] {
      torch::NoGradGuard ng;
      model->forward(frames);
    }, args.repeats);
    model->train();
    double fwdbwd = median_seconds([&] {
      model->zero_grad(/*set_to_none=*/true);  // as the trainer does
      model->forward(frames).sum().backward();
    }, std::max(1, args.repeats / 2));
    const int64_t M = B * T * cfg.num_tokens(), D = cfg.width, L = cfg.lru_width, F = cfg.mlp_dim;
    double gemm = gemm_flops_mix({{M, D, L}, {M, D, L}, {M, L, D}, {M, D, D}, {M, D, D}, {M, D, D}, {M, D, D},
                                  {M, D, F}, {M, F, D}}, args.repeats);
    nlohmann::json r = {{"config", name},
                        {"image_size", size},
                        {"batch", B},
                        {"frames", T},
                        {"gflop_per_clip", flops / 1e9},
                        {"forward_s", fwd},
                        {"forward_gflops", flops / fwd / 1e9},
                        {"forward_backward_s", fwdbwd},
                        {"forward_backward_gflops", 3 * flops / fwdbwd / 1e9},
                        {"gemm_gflops_model_shapes", gemm / 1e9},
                        {"forward_fraction_of_gemm", flops / fwd / gemm},
                        {"forward_backward_fraction_of_gemm", 3 * flops / fwdbwd / gemm},
                        {"frames_per_s_forward", B * T / fwd}};
    print_row(fmt::format("{}@{} B={} T={}", name, size, B, T),
              {{"fwd", fmt::format("{:.1f} GFLOP/s ({:.0f}% GEMM)", flops / fwd / 1e9, 100 * flops / fwd / gemm)},
               {"fwd+bwd", fmt::format("{:.1f} GFLOP/s ({:.0f}%)", 3 * flops / fwdbwd / 1e9, 300 * flops / fwdbwd / gemm)},
               {"gemm", fmt::format("{:.1f} GFLOP/s", gemm / 1e9)},
               {"frames/s", fmt::format("{:.1f}", B * T / fwd)}});
    if (const int64_t top = args.get_int("profile", "0"); top > 0) {
      r["profile_forward_backward"] = profile_table(
          "fwd+bwd", [&] {
            model->zero_grad(/*set_to_none=*/true);
            model->forward(frames).sum().backward();
          },
          top);
    }
    out.push_back(r);
  }
  return {{"benchmark", "model"}, {"results", out}};
}

}  // namespace trecvit::bench

// Streaming cost per frame as the history grows, against re-running the offline forward
// over the whole history (what a model without exact streaming must do).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <sstream>

#include "bench/common.h"
#include "bench/harness.h"
#include "bench/op_profile.h"
#include "blocks/parse_number.h"
#include "bench/stream_parts.h"
#include "models/accounting.h"

namespace trecvit::bench {
namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

std::vector<int64_t> parse_int_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    const auto n = parse_int(tok);
    if (!n) throw std::invalid_argument("'" + s + "': expected comma-separated integers");
    out.push_back(*n);
  }
  return out;
}

nlohmann::json stream_history(const Args& args) {
  const auto cfg = bench_config(args.get("config", args.quick ? "tiny" : "small"),
                                args.get_int("size", args.quick ? "32" : "112"));
  const int64_t frames = args.get_int("frames", args.quick ? "30" : "1000");
  const auto batches = parse_int_list(args.get("batches", args.quick ? "1,2" : "1,8"));
  const auto marks = parse_int_list(args.get("marks", args.quick ? "1,10,30" : "1,100,1000"));
  const auto offline_hist = parse_int_list(args.get("offline", args.quick ? "1,4,16" : "1,10,100"));
  torch::manual_seed(0);
  TRecViT model(cfg);
  model->eval();
  torch::NoGradGuard ng;
  const double flops_frame = account(*model).flops_per_frame;
  nlohmann::json out = nlohmann::json::array();
  for (int64_t B : batches) {
    auto state = model->init_stream(B);
    const int64_t state_bytes0 = state.bytes();
    std::vector<double> step_s;
    auto frame = torch::randint(0, 256, {B, 1, cfg.image_height, cfg.image_width, 3}, torch::kByte);
    int64_t allocations_after_first = 0;
    for (int64_t t = 0; t < frames; ++t) {
      auto t0 = std::chrono::steady_clock::now();
      model->step(state, frame);
      step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (t == 0) allocations_after_first = -cpu_tensor_allocations();
    }
    allocations_after_first += cpu_tensor_allocations();
    nlohmann::json profile;
    if (const int64_t top = args.get_int("profile", "0"); top > 0)
      profile = profile_table(fmt::format("step B={}", B), [&] { model->step(state, frame); }, top);
    const int64_t M = B * cfg.num_tokens(), D = cfg.width, L = cfg.lru_width, F = cfg.mlp_dim;
    const std::vector<std::array<int64_t, 3>> layer = {{M, D, L}, {M, D, L}, {M, L, D}, {M, D, D}, {M, D, D},
                                                       {M, D, D}, {M, D, D}, {M, D, F}, {M, F, D}};
    const double gemm = gemm_flops_mix(layer, args.repeats);
    // The same products with every layer's own matrices: at batch 1 a step reads all the weights
    // (more than the caches hold for the larger configs), which one layer's mix, reused, never does.
    std::vector<std::array<int64_t, 3>> all_layers;
    for (int64_t l = 0; l < cfg.depth; ++l) all_layers.insert(all_layers.end(), layer.begin(), layer.end());
    const double gemm_all = gemm_flops_mix(all_layers, args.repeats);
    nlohmann::json per_mark = nlohmann::json::object();
    std::vector<std::pair<std::string, std::string>> cols;
    double first = 0;
    for (int64_t m : marks) {
      if (m > frames) continue;
      // Median over a window of up to 5 frames ending at frame m (frame 1: the first 5).
      const int64_t hi = std::max<int64_t>(m, std::min<int64_t>(5, frames)), lo = std::max<int64_t>(1, hi - 4);
      const double s = median_of({step_s.begin() + (lo - 1), step_s.begin() + hi});
      if (first == 0) first = s;
      per_mark[std::to_string(m)] = {{"seconds", s},
                                     {"fraction_of_gemm", flops_frame * B / s / gemm},
                                     {"fraction_of_gemm_all_layers", flops_frame * B / s / gemm_all}};
      cols.push_back({fmt::format("frame {}", m),
                      fmt::format("{:.2f} ms ({:.0f}% GEMM, {:.0f}% all-layer GEMM)", s * 1e3,
                                  100 * flops_frame * B / s / gemm, 100 * flops_frame * B / s / gemm_all)});
    }
    const double last = per_mark[std::to_string(marks.back())]["seconds"];
    cols.push_back({"ratio last/first", fmt::format("{:.3f}", last / first)});
    cols.push_back({"tensor buffers allocated after frame 1", std::to_string(allocations_after_first)});
    print_row(fmt::format("stream {}@{} B={}", cfg.name, cfg.image_height, B), cols);
    // Offline: the whole history re-run to get the logits after its last frame.
    nlohmann::json offline = nlohmann::json::object();
    std::vector<std::pair<std::string, std::string>> ocols;
    for (int64_t h : offline_hist) {
      auto clip = torch::randint(0, 256, {B, h, cfg.image_height, cfg.image_width, 3}, torch::kByte);
      const double s = median_seconds([&] { model->forward(clip); }, h >= 50 ? 1 : 3);
      offline[std::to_string(h)] = s;
      ocols.push_back({fmt::format("history {}", h), fmt::format("{:.2f} ms", s * 1e3)});
    }
    print_row(fmt::format("offline re-run {}@{} B={}", cfg.name, cfg.image_height, B), ocols);
    out.push_back({{"batch", B},
                   {"frames", frames},
                   {"per_frame", per_mark},
                   {"ratio_last_to_first", last / first},
                   {"state_bytes", state_bytes0},
                   {"state_bytes_after", state.bytes()},
                   {"tensor_allocations_after_first_frame", allocations_after_first},
                   {"profile_step", profile},
                   {"gemm_gflops", gemm / 1e9},
                   {"gemm_gflops_all_layers", gemm_all / 1e9},
                   {"offline_rerun_seconds", offline}});
  }
  return {{"config", cfg.name}, {"image_size", cfg.image_height}, {"results", out}};
}

nlohmann::json bench_stream(const Args& args) {
  nlohmann::json out = {{"benchmark", "stream"}};
  std::stringstream parts(args.get("parts", args.quick ? "history,batched" : "batched,live,history"));
  std::string part;
  while (std::getline(parts, part, ',')) {
    if (part == "history") out["history"] = stream_history(args);
    else if (part == "batched") out["batched"] = stream_batched(args);
    else if (part == "live") out["live"] = stream_live(args);
    else throw std::invalid_argument("bench stream: parts: unknown part '" + part + "' (history, batched, live)");
  }
  return out;
}

}  // namespace trecvit::bench

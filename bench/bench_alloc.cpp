// A training step with the retaining allocator (jemalloc, retain + no decay, linked into the
// binary) against the same binary re-run with decay 0, which hands freed pages back to the
// kernel at once as glibc does for large blocks: every step then re-faults its temporaries.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "bench/common.h"
#include "bench/harness.h"
#include "blocks/runtime.h"

namespace trecvit::bench {
namespace {

double train_step_seconds(const Args& args) {
  auto cfg = bench_config(args.get("config", args.quick ? "tiny" : "small"),
                          args.get_int("size", args.quick ? "32" : "112"));
  const int64_t B = args.get_int("batch", "2"), T = args.get_int("frames", args.quick ? "2" : "8");
  torch::manual_seed(0);
  TRecViT model(cfg);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4));
  auto frames = torch::randint(0, 256, {B, T, cfg.image_height, cfg.image_width, 3}, torch::kByte);
  auto labels = torch::randint(0, cfg.num_classes, {B}, torch::kLong);
  return median_seconds([&] {
    opt.zero_grad();
    torch::nn::functional::cross_entropy(model->forward(frames), labels).backward();
    opt.step();
  }, args.repeats, 2);
}

}  // namespace

nlohmann::json bench_alloc(const Args& args) {
  const double here = train_step_seconds(args);
  const std::string allocator = runtime_info().allocator;
  if (args.get("child", "0") == "1") return {{"step_s", here}, {"allocator", allocator}};
  // Re-run this benchmark in a child with a non-retaining allocator configuration.
  std::string arguments = "bench alloc --json --repeats " + std::to_string(args.repeats) +
                          (args.quick ? " --quick" : "") + " --set child=1";
  for (auto& kv : args.extra) arguments += " --set " + kv;
  double other = -1;
  std::string other_alloc = "unavailable";
  try {
    auto j = run_self_json("MALLOC_CONF=retain:false,dirty_decay_ms:0,muzzy_decay_ms:0", arguments);
    other = j.at("step_s");
    other_alloc = j.at("allocator");
  } catch (const std::exception&) {
  }
  print_row("training step", {{"retaining (" + allocator + ")", fmt::format("{:.1f} ms", here * 1e3)},
                              {"non-retaining (" + other_alloc + ", decay 0)", fmt::format("{:.1f} ms", other * 1e3)},
                              {"speedup", other > 0 ? fmt::format("{:.2f}x", other / here) : "n/a"}});
  return {{"benchmark", "alloc"}, {"retaining_step_s", here}, {"retaining_allocator", allocator},
          {"non_retaining_step_s", other}, {"non_retaining_allocator", other_alloc},
          {"speedup", other > 0 ? other / here : 0.0}};
}

}  // namespace trecvit::bench

// Data loading against training: the threaded VideoLoader's clips/s on its own, the trainer's
// clips/s on batches already in memory, and the trainer fed by the loader. If the loader is not
// the bottleneck, the last equals the second. Videos are a generated Something-Something-Fashion
// set in a temp dir (VP9, 16 frames at 12 fps), larger than the crops so every clip is resized.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "bench/common.h"
#include "bench/harness.h"
#include "datasets/annotations.h"
#include "datasets/loader.h"
#include "datasets/ssf_generator.h"
#include "train/trainer.h"
#include "jobs/video_source.h"

namespace trecvit::bench {
namespace {

namespace fs = std::filesystem;

struct RemoveDir {  // the generated videos go, however the benchmark ends
  fs::path dir;
  ~RemoveDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// The same in-memory batch every step: the trainer's speed with no data cost at all.
class MemorySource : public BatchSource {
 public:
  explicit MemorySource(Batch b) : b_(std::move(b)) {}
  Batch next() override { return b_; }
  nlohmann::json position() const override { return nullptr; }
  void restore(const nlohmann::json&) override {}
  int64_t batches_per_epoch() const override { return 1 << 20; }

 private:
  Batch b_;
};

// Median clips/s of `steps` trainer steps, after `warmup` steps, over `repeats` runs.
double trainer_clips_per_s(const TRecViTConfig& cfg, BatchSource& source, int64_t batch, int steps, int repeats,
                           int64_t warmup) {
  torch::manual_seed(0);
  TrainOptions o;
  o.steps = 1 << 30;
  o.lr = 1e-4;
  Trainer trainer(TRecViT(cfg), o, source);
  for (int64_t i = 0; i < warmup; ++i) trainer.step();
  const double s = median_seconds([&] { for (int i = 0; i < steps; ++i) trainer.step(); }, repeats, 0);
  return steps * batch / s;
}

}  // namespace

nlohmann::json bench_loader(const Args& args) {
  const bool quick = args.quick;
  const std::string config = args.get("config", "small");
  const int64_t size = args.get_int("size", "112"), frames = args.get_int("frames", "16");
  const int64_t batch = args.get_int("batch", "8");
  const int workers = (int)args.get_int("workers", "2");
  const int steps = (int)args.get_int("steps", quick ? "1" : "4");
  const int64_t videos = args.get_int("videos", quick ? "16" : "160");
  const int repeats = quick ? 1 : args.repeats;

  const fs::path dir = fs::temp_directory_path() / fmt::format("trecvit_bench_loader_{}", ::getpid());
  RemoveDir cleanup{dir};
  data::SSFOptions ssf;
  ssf.out_dir = dir.string();
  ssf.train_clips = videos;
  ssf.validation_clips = 0;
  ssf.frames = frames;
  // 128 for 112 crops by default: SSv2's short side is ~240 for 224 crops.
  ssf.size = args.get_int("video_size", std::to_string(size * 8 / 7));
  const auto gen = data::generate_ssf(ssf);
  const auto split = data::load_ssv2(ssf.out_dir, "train");

  data::LoaderOptions lo;
  lo.clip.frames = frames;
  lo.height = lo.width = size;
  lo.batch_size = batch;
  lo.workers = workers;
  lo.seed = 1;
  // Loader alone: batches per second once the queue is warm, whole epochs (no cache effects).
  double loader_cps = 0;
  {
    data::VideoLoader loader(split, lo);
    loader.next();
    const int64_t n = std::max<int64_t>(2, loader.batches_per_epoch() - 1);
    loader_cps = n * batch / median_seconds([&] { for (int64_t i = 0; i < n; ++i) loader.next(); }, repeats, 0);
  }

  auto cfg = bench_config(config, size);
  cfg.num_frames = frames;
  cfg.num_classes = static_cast<int64_t>(split.class_names.size());
  cfg.validate();
  Batch in_memory;
  {
    data::VideoLoader first(split, lo);
    auto b = first.next();
    in_memory = {b.frames, b.labels, {}};
  }
  MemorySource memory(in_memory);
  const double memory_cps = trainer_clips_per_s(cfg, memory, batch, steps, repeats, 1);
  data::VideoLoader loader(split, lo);
  LoaderBatchSource fed(loader);
  // Past the batches prefetched while the model was being built: only steady state counts.
  const double fed_cps = trainer_clips_per_s(cfg, fed, batch, steps, repeats, lo.prefetch + 1);

  const std::string shape = fmt::format("{}x{}x{}", frames, size, size);
  print_row(fmt::format("loader alone, {} workers", workers), {{"clips/s", fmt::format("{:.1f}", loader_cps)}, {"clip", shape}});
  print_row(fmt::format("train {} (in-memory batch)", config), {{"clips/s", fmt::format("{:.2f}", memory_cps)}, {"batch", std::to_string(batch)}});
  print_row(fmt::format("train {} fed by the loader", config),
            {{"clips/s", fmt::format("{:.2f}", fed_cps)}, {"vs in-memory", fmt::format("{:.2f}", fed_cps / memory_cps)}});
  print_row("loader headroom", {{"loader / trainer", fmt::format("{:.1f}x", loader_cps / memory_cps)}});
  return {{"benchmark", "loader"},
          {"clip", shape},
          {"workers", workers},
          {"batch", batch},
          {"config", config},
          {"generated_videos", gen.written},
          {"generate_seconds", gen.seconds},
          {"loader_clips_per_s", loader_cps},
          {"train_in_memory_clips_per_s", memory_cps},
          {"train_fed_clips_per_s", fed_cps},
          {"fed_over_in_memory", fed_cps / memory_cps},
          {"loader_over_trainer", loader_cps / memory_cps}};
}

}  // namespace trecvit::bench

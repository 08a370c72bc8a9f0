#pragma once
// The end-to-end jobs behind `trecvit data|train|eval|demo`: datasets + loader + trainer +
// evaluation wired together. Video builds only (they decode files).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/ssf_generator.h"

namespace trecvit {

struct TrainJob {
  std::string model_config, train_config, data_root, format = "ssv2", out_dir;
  bool resume = false;
  int64_t steps = -1;       // -1: the train config's
  int64_t batch_size = 8;
  int64_t frames = 0;       // 0: the model's num_frames
  int64_t stride = 1;
  std::string sampler = "random";
  int workers = 2;
  uint64_t seed = 0;
  bool shuffle_frames = false;
  // Horizontal flips: "none" (SSv2's default: direction is the label), "plain" (direction-free
  // data such as Kinetics), "mirror" (flip and relabel with data::mirror_label_map).
  std::string flip = "none";
  double color_jitter = 0;  // brightness/contrast/saturation strength
  bool quiet = false;
};

struct TrainOutcome {
  int64_t steps = 0;
  double final_loss = 0, final_accuracy = 0, seconds = 0, clips_per_s = 0;
  int64_t skipped = 0;
  std::string checkpoint;
};

struct EvalJob {
  std::string checkpoint, data_root, format = "ssv2", split = "validation", views = "1x1", report;
  int64_t frames = 0, stride = 1;
  std::string sampler = "center";
  bool json = false, shuffle_frames = false, quiet = false;
};

struct PrepareOptions {
  std::string root, out;
  int64_t short_side = 256;
  int workers = 2;
};

struct DemoJob {
  std::string data_root = "trecvit-data/ssf", out_dir = "trecvit-runs/demo", model_config;
  int64_t steps = -1;
  int threads = 0;
  bool shuffle_frames = false;
};

TrainOutcome run_train(const TrainJob& job);
nlohmann::json run_eval(const EvalJob& job);  // the report
nlohmann::json run_data_inspect(const std::string& format, const std::string& root,
                                const std::vector<std::string>& splits, int workers, bool json);
nlohmann::json run_data_prepare(const PrepareOptions& options);  // {"written", "kept", "failed": [...]}
nlohmann::json run_demo(const DemoJob& job);

}  // namespace trecvit

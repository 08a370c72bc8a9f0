#pragma once
// `trecvit train` as a library call: a dataset, the threaded loader and the trainer wired
// together, resumable, reporting through a ProgressSink and stopping on a CancelToken.
#include <nlohmann/json.hpp>
#include <string>

#include "jobs/progress.h"

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
  std::string sample_log;   // append each batch's sample ids as a line to this file ("": none)
  std::string split = "train";
  // Fine-tuning: start from a checkpoint or a released .npz (then model_config may be empty:
  // the architecture is the init's). reset_head: a fresh cls_head for the dataset's classes
  // (required when the counts differ). freeze: "none" or "backbone" (only cls_head trains).
  std::string validation_split = "validation";  // read when the train config's eval_every > 0
  std::string init;
  bool reset_head = false;
  std::string freeze = "none";
};

struct TrainResult {
  int64_t steps = 0;           // optimizer steps done in total
  int64_t steps_this_run = 0;  // of which in this call
  double final_loss = 0, final_accuracy = 0, seconds = 0, clips_per_s = 0;
  int64_t skipped = 0;         // unreadable samples replaced
  bool stopped = false;        // cancelled before the last step (resume with TrainJob::resume)
  std::string checkpoint, ema_checkpoint;
  std::string best_checkpoint;  // with eval_every: the best validation so far (by best_metric)
  double best_value = -1;
  int64_t best_step = 0;
  nlohmann::json to_json() const;
};

TrainResult run_train(const TrainJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace trecvit

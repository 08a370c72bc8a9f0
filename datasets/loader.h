#pragma once
// A video clip loader: worker threads decode and transform samples into batches while the
// trainer consumes them through a bounded reorder queue. The batch sequence depends only on the
// seed (not on thread timing): batch i of epoch e always holds the same samples with the same
// augmentation. A sample that fails to decode is logged with its file and reason, counted, and
// replaced by the next sample in the epoch order, so batch shapes stay fixed.
#include <torch/torch.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "datasets/annotations.h"
#include "datasets/samplers.h"

namespace trecvit::data {

struct LoaderOptions {
  ClipSpec clip;                      // frames, stride, short-video policy
  std::string sampler = "random";     // "random" (train), "segments" (TSN), "center"
  int64_t height = 112, width = 112;  // model input
  bool train = true;                  // random resized crop (+ flip, jitter if enabled) vs resize + centre crop
  double min_crop_scale = 0.5;
  bool horizontal_flip = false;       // off for SSv2: left/right templates are not flip-invariant
  std::vector<int64_t> flip_label_map;  // label -> label after a flip (swap left/right classes); empty: keep
  double color_jitter = 0.0;
  bool shuffle_frames = false;        // ablation: destroys temporal order
  int64_t batch_size = 8;
  int workers = 2;
  int64_t prefetch = 4;               // batches decoded ahead
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t rank = 0, world = 1;        // data parallelism: this rank's share of each global batch
  int decoder_threads = 1;
};

struct LoadedBatch {
  torch::Tensor frames;  // [B, T, H, W, 3] uint8
  torch::Tensor labels;  // [B] int64
  std::vector<int64_t> ids;  // the samples: indices into the split's items
};

struct LoadFailure {
  std::string path, reason;
};

// One sample, as the loader makes it: decode the sampled frames, then transform.
torch::Tensor load_clip(const VideoItem& item, const LoaderOptions& o, std::mt19937_64& rng);

class VideoLoader {
 public:
  VideoLoader(DatasetSplit split, LoaderOptions options);
  ~VideoLoader();
  VideoLoader(const VideoLoader&) = delete;
  VideoLoader& operator=(const VideoLoader&) = delete;

  LoadedBatch next();
  int64_t batches_per_epoch() const;
  nlohmann::json position() const;  // {"epoch", "batch"}
  void restore(const nlohmann::json& position);
  int64_t skipped() const;
  std::vector<LoadFailure> failures() const;  // the first 1000, for the epoch summary
  const DatasetSplit& split() const { return split_; }

 private:
  void start();
  void stop();
  void work();
  std::vector<int64_t> global_order(int64_t epoch) const;
  std::vector<int64_t> epoch_order(int64_t epoch) const;  // this rank's samples, in order
  LoadedBatch make_batch(int64_t epoch, int64_t batch);

  DatasetSplit split_;
  LoaderOptions opt_;
  mutable std::mutex mu_;
  mutable std::mutex order_mu_;  // the last epoch_order, shared by the workers
  mutable int64_t order_epoch_ = -1;
  mutable std::vector<int64_t> order_;
  std::condition_variable cv_;
  std::map<std::pair<int64_t, int64_t>, LoadedBatch> ready_;
  int64_t next_epoch_ = 0, next_batch_ = 0;    // what workers take next
  int64_t want_epoch_ = 0, want_batch_ = 0;    // what next() returns next
  int64_t skipped_ = 0;
  std::vector<LoadFailure> failures_;
  std::string fatal_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace trecvit::data

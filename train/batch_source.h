#pragma once
// Where the trainer's batches come from. The dataset loaders implement it; tests use tensors.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace trecvit {

struct Batch {
  torch::Tensor frames;  // [B, T, H, W, 3] uint8
  torch::Tensor labels;  // [B] int64
  // [B, C] float multi-hot targets of multi-label data (sigmoid cross-entropy); undefined: single-label
  torch::Tensor targets = {};
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;
  // A position from which restore() replays exactly the same batches: resuming a run from a
  // checkpoint then follows the same loss curve as the uninterrupted run.
  virtual nlohmann::json position() const = 0;
  virtual void restore(const nlohmann::json& position) = 0;
  virtual int64_t batches_per_epoch() const = 0;
  // Samples skipped since the start (unreadable files), for the epoch summaries.
  virtual int64_t skipped() const { return 0; }
};

}  // namespace trecvit

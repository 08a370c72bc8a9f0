#pragma once
// NEVIS splits as the trainer and the evaluator see them: single images as one-frame clips
// [B, 1, S, S, 3], randomly cropped and flipped for training, centre-cropped for evaluation.
#include <torch/torch.h>

#include "datasets/image_augment.h"
#include "datasets/nevis.h"
#include "models/trecvit.h"
#include "train/batch_source.h"
#include "train/distributed.h"

namespace trecvit {

// Epochs of a split in a seeded random order; the augmentation of each sample is seeded by
// (seed, epoch, position), so batches do not depend on the thread count.
class NevisBatchSource : public BatchSource {
 public:
  NevisBatchSource(const data::NevisSplit& split, int64_t num_classes, bool multi_label, int64_t size, int64_t batch,
                   data::CropOptions crop, uint64_t seed, int64_t rank = 0, int64_t world = 1);
  Batch next() override;
  nlohmann::json position() const override { return {{"epoch", epoch_}, {"cursor", cursor_}}; }
  void restore(const nlohmann::json& position) override;
  int64_t batches_per_epoch() const override;

 private:
  void shuffle();
  const data::NevisSplit& split_;
  int64_t num_classes_, size_, batch_, rank_, world_;
  bool multi_label_;
  data::CropOptions crop_;
  uint64_t seed_;
  int64_t epoch_ = 0, cursor_ = 0;
  std::vector<int64_t> order_;
};

// The split's images centre-cropped to size x size, as [N, 1, S, S, 3] uint8.
torch::Tensor nevis_eval_frames(const data::NevisSplit& split, int64_t size, int64_t begin, int64_t end);
// Logits [N, C] of a whole split (eval mode, no grad, in batches). With a group, each rank
// computes its contiguous share and every rank gets all rows.
torch::Tensor nevis_logits(TRecViTImpl& model, const data::NevisSplit& split, int64_t batch,
                           dist::Group* group = nullptr);
// Frame representations z [n, rep_size] of the first `limit` images (all when limit <= 0).
torch::Tensor nevis_embeddings(TRecViTImpl& model, const data::NevisSplit& split, int64_t batch, int64_t limit,
                               dist::Group* group = nullptr);
// [N, C] multi-hot targets of a multi-label split.
torch::Tensor nevis_multi_hot(const data::NevisSplit& split, int64_t num_classes);

struct NevisMetrics {
  int64_t examples = 0;
  double top1 = 0, top5 = 0, cross_entropy = 0;  // single-label
  double map = -1;  // multi-label mean average precision (-1: single-label; NaN: no class has a positive)
  nlohmann::json to_json() const;
};
// Single-label: top-1, top-5, mean cross-entropy. Multi-label: mAP over the classes with a
// positive (average precision as scikit-learn's average_precision_score computes it without ties).
NevisMetrics nevis_metrics(const torch::Tensor& logits, const data::NevisSplit& split, int64_t num_classes,
                           bool multi_label);
// NaN when no class has a positive.
double mean_average_precision(const torch::Tensor& scores, const torch::Tensor& targets);

}  // namespace trecvit

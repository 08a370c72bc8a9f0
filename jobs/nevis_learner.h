#pragma once
// The pieces a NEVIS learner is made of: models for a task (fresh, or an earlier backbone with
// a new head), one training trial, and the k-NN transfer score of a backbone on a task.
#include <functional>

#include "datasets/nevis.h"
#include "jobs/nevis_data.h"
#include "models/trecvit.h"
#include "train/cancel.h"
#include "train/trainer.h"

namespace trecvit {

// A fresh model for `classes` classes, initialised from `seed`.
TRecViT nevis_fresh_model(TRecViTConfig config, int64_t classes, uint64_t seed);
// `from`'s backbone (every tensor but cls_head) with a fresh head for `classes` classes.
TRecViT nevis_with_new_head(TRecViTImpl& from, int64_t classes, uint64_t seed);

struct NevisTrial {
  double lr = 0, label_smoothing = 0;
  double dev_score = -1;   // dev top-1 (single-label) or mAP (multi-label)
  int64_t steps = 0;
  int64_t flops = 0;       // forward + backward of its training steps
  bool stopped = false;
};

struct NevisTrainSpec {
  TrainOptions options;    // steps, schedule, seed; lr and label smoothing are the trial's
  int64_t batch_size = 64;
  data::CropOptions crop;
  std::shared_ptr<dist::Group> group;  // data-parallel: batch_size images on each rank
};

// Trains a copy of `init` on `split` (the caller's `init` is not changed); returns the model.
TRecViT nevis_train(TRecViTImpl& init, const data::NevisDataset& ds, const data::NevisSplit& split,
                    const NevisTrainSpec& spec, NevisTrial& trial,
                    const std::function<void(const StepStats&)>& on_log, const CancelToken* cancel);

// Training FLOPs of one image through `model`: forward + backward, taken as 3x the forward.
int64_t nevis_train_flops_per_image(TRecViTImpl& model);
int64_t nevis_forward_flops_per_image(TRecViTImpl& model);

// k-NN accuracy (or mAP) on `dev` of the embeddings `model` gives, with `train` as memory:
// cosine similarity, k neighbours, majority vote (mean of the neighbours' targets for
// multi-label). `flops` receives the forward FLOPs of the embedding passes.
double nevis_knn_score(TRecViTImpl& model, const data::NevisDataset& ds, const data::NevisSplit& train,
                       const data::NevisSplit& dev, int64_t k, int64_t max_train, int64_t max_dev, int64_t batch,
                       int64_t* flops, dist::Group* group = nullptr);

}  // namespace trecvit

#pragma once
// `trecvit nevis run`: a learner meets the datasets of a NEVIS stream one at a time. For each
// event: a training event (every hyper-parameter trial trains on `train` and is scored on `dev`;
// optionally the best is retrained on `train_and_dev`), then a prediction event on `dev-test`
// (`test` with `final`). Learners (dm_nevis's learners/finetuning_dknn):
//   independent    a fresh model per task
//   finetune-prev  the previous task's backbone with a new head
//   finetune-knn   the backbone whose embeddings score best with a k-NN classifier on the task's
//                  dev set, among every earlier task's model and a fresh one
// The run directory holds run.json (the options), events.jsonl (one row per prediction event),
// summary.json, and models/<index>-<dataset>.pt (each task's final model: what later tasks
// start from). It is resumable per event: an event cut short is redone from its start, with the
// same seeds, so a resumed run gives the same results as an uninterrupted one.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/image_augment.h"
#include "jobs/progress.h"
#include "train/distributed.h"

namespace trecvit {

struct NevisJob {
  std::string stream = "debian", data_root, learner = "independent", model_config, train_config, out_dir;
  int64_t steps = -1;        // cap on the steps per task (-1: the train config's)
  int64_t batch_size = 64;
  int64_t trials = 1;        // 1: the train config's lr and label smoothing; more: a random search
  double lr_min = 1e-4, lr_max = 1e-2;   // log-uniform search interval
  double max_label_smoothing = 0.3;      // uniform in [0, this]
  bool retrain = false;      // retrain the chosen hyper-parameters on train_and_dev
  bool final = false;        // every year, predictions on test
  int64_t stop_year = 2020;
  bool resume = false;
  int64_t num_classes = 0;   // > 0: overrides every dataset's class count
  int64_t knn_k = 10, knn_max_train = 4096, knn_max_dev = 2048;
  data::CropOptions crop;    // training augmentation: random resized crop and flip
  uint64_t seed = 0;
  bool build_debian_data = false;  // build the Debian mini-stream into data_root first if it is missing
  // Data-parallel: each trial trains with batch_size images on every rank, evaluations are
  // sharded, rank 0 writes the run folder (which every rank must see: shared storage).
  std::shared_ptr<dist::Group> group;
};

struct NevisResult {
  nlohmann::json summary;  // also RUN/summary.json
  int64_t events_done = 0, events_resumed = 0;
  std::vector<std::string> missing;  // datasets not found (or not ready) under the data root
  bool stopped = false;
  nlohmann::json to_json() const;
};

const std::vector<std::string>& nevis_learners();

NevisResult run_nevis(const NevisJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);

// The summary of a list of events.jsonl rows (what run_nevis writes as summary.json).
nlohmann::json nevis_summary(const std::vector<nlohmann::json>& events);

}  // namespace trecvit

#pragma once
// `trecvit train` as a library call: a dataset, the threaded loader and the trainer wired
// together, resumable, reporting through a ProgressSink and stopping on a CancelToken.
//
// The run's recipe is resolved once, field by field, from (later wins): the defaults, the model
// config, the train config (its "data" section: DataRecipe), a run.json to start again from,
// then the settings. It is written to RUN/run.json before training starts. A resume reads it
// back and refuses anything given again that would change it (data.workers excepted).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "jobs/progress.h"
#include "jobs/run_record.h"
#include "jobs/settings.h"
#include "train/distributed.h"

namespace trecvit {

struct TrainJob {
  std::string model_config;  // model config JSON (with init: optional, the init's architecture)
  std::string train_config;  // training options JSON with an optional "data" section
  std::string recipe;        // a run.json: a new run with that run's model, train, data and init
  std::vector<Setting> settings;  // applied last, in order: "model.F", "train.F", "data.F"
  std::string out_dir;
  bool resume = false;       // continue out_dir from its run.json and latest checkpoint
  // Fine-tuning: start from a checkpoint or a released .npz. reset_head: a fresh cls_head for
  // the dataset's classes (required when the counts differ). freeze: "none" or "backbone".
  std::string init;
  bool reset_head = false;
  std::string freeze = "none";
  std::string sample_log;    // append each batch's sample ids as a line to this file ("": none)
  // Data parallelism: every rank calls run_train with the same job and its group. data.batch_size
  // is per rank; rank 0 alone writes the run folder. Null: one process.
  std::shared_ptr<dist::Group> group;

  // Appends a setting ("data.batch_size", 16); origin names it in errors (default: the key).
  TrainJob& set(const std::string& key, nlohmann::json value, std::string origin = "");
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
  RunRecord record;             // what RUN/run.json holds
  nlohmann::json to_json() const;
};

TrainResult run_train(const TrainJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace trecvit

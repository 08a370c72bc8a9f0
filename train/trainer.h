#pragma once
// The training loop: AdamW with decay exclusions, warm-up + cosine schedule, gradient clipping,
// label smoothing, gradient accumulation, the mixers' auxiliary losses, optional weight EMA,
// atomic checkpoints of the whole training state, and exact resume.
#include <functional>
#include <memory>
#include <string>

#include "blocks/option_fields.h"
#include "models/trecvit.h"
#include "train/batch_source.h"
#include "train/cancel.h"
#include "train/optim.h"

namespace trecvit {

struct TrainOptions {
  int64_t steps = 1000;            // optimizer steps
  int64_t accumulate = 1;          // batches per optimizer step
  double lr = 1e-3;
  double lr_backbone_mult = 1.0;   // the backbone's lr = lr * this (cls_head: lr), for fine-tuning
  double weight_decay = 0.05;
  int64_t warmup_steps = 0;
  double final_lr_fraction = 0.0;
  double clip_norm = 1.0;          // 0: no clipping
  double label_smoothing = 0.0;
  double aux_loss_weight = 1.0;    // multiplies the mixers' auxiliary losses
  double ema_decay = 0.0;          // 0: no EMA
  int64_t checkpoint_every = 0;    // steps between checkpoints (0: only at the end and on a signal)
  int64_t log_every = 10;          // steps between metrics lines
  int64_t eval_every = 0;          // steps between validations (0: none; needs a validator)
  std::string best_metric = "top1";  // the validation metric best.pt maximises: top1 | top5
  int64_t keep_last = 0;           // step-numbered copies of the last K periodic checkpoints (0: none)
  uint64_t seed = 0;
  std::string out_dir;             // run directory; "" writes nothing
};

nlohmann::json train_options_to_json(const TrainOptions& o);
std::vector<FieldInfo> train_option_fields();  // for the generated docs
TrainOptions train_options_from_json(const nlohmann::json& j, const std::string& source);
// A train config file ("" gives the defaults). Throws ConfigError naming the file.
TrainOptions load_train_options(const std::string& path);
// `<model config without .json>.train.json` when that file exists, else "": the train config
// that travels with a model config (the demo's, the NEVIS configs').
std::string train_config_beside(const std::string& model_config);

// Data parallelism's hooks into a step (train/distributed.h implements them over c10d): the
// gradients are averaged across ranks after the last micro-batch's backward, before clipping;
// the logged loss and accuracy cover every rank's batches; only the writer writes files.
class StepSync {
 public:
  virtual ~StepSync() = default;
  virtual void before_backward(bool last_micro_batch) = 0;  // only the last one communicates
  virtual void after_backward() = 0;                        // .grad now holds the ranks' average
  virtual void sum(std::vector<double>& values) = 0;        // in place, across ranks
  virtual int64_t world() const = 0;
  virtual bool writer() const = 0;                          // rank 0 writes checkpoints and metrics
};

struct StepStats {
  int64_t step = 0;       // optimizer steps done
  double epoch = 0;       // fractional epoch
  double loss = 0;        // mean over the accumulated batches (classification + aux)
  double accuracy = 0;    // top-1 on those batches
  double lr = 0;
  double clips_per_s = 0;
  double eta_s = 0;
};

class Trainer {
 public:
  Trainer(TRecViT model, TrainOptions options, BatchSource& data);

  StepStats step();
  // Validation every eval_every steps (and after the last): `validate` evaluates the model it is
  // given (the EMA weights when EMA is on) and returns at least {"top1", "top5", "count"}. Each
  // result is a metrics.jsonl row {"step", "validation": {...}}; the best by best_metric is
  // saved as best.pt (a model checkpoint).
  void set_validator(std::function<nlohmann::json(TRecViTImpl&)> validate) { validate_ = std::move(validate); }
  // Data-parallel training: `sync` outlives the trainer. Without one, the trainer is alone.
  void set_step_sync(StepSync* sync) { sync_ = sync; }
  double best_value() const { return best_value_; }
  int64_t best_step() const { return best_step_; }
  // Trains until options.steps or until `cancel` is requested (checked after each step):
  // checkpoints every checkpoint_every steps, at the end and on the stop. Returns the number of
  // steps done in this call.
  int64_t run(const std::function<void(const StepStats&)>& on_log = {}, const CancelToken* cancel = nullptr);

  // The whole training state (model, optimizer, schedule position, RNG, data position, EMA),
  // written to a temporary file, synced and renamed into place.
  void save(const std::string& path);
  // Restores a state written by save(). A missing, corrupt or mismatched checkpoint (another
  // model config) throws CheckpointError: a resume never silently starts afresh.
  void resume(const std::string& path);

  int64_t global_step() const { return step_; }
  TRecViT model() const { return model_; }
  // The model to evaluate: the EMA weights when EMA is on, else the trained weights.
  TRecViT eval_model();
  std::string latest_checkpoint_path() const;

 private:
  void log_metrics(const StepStats& s);
  void truncate_metrics();
  void validate_now();
  void keep_last_checkpoints();
  bool writes() const { return !opt_.out_dir.empty() && (!sync_ || sync_->writer()); }
  StepSync* sync_ = nullptr;
  const CancelToken* cancel_ = nullptr;  // run()'s, for the ranks' agreed stop
  bool stop_agreed_ = false;
  std::function<nlohmann::json(TRecViTImpl&)> validate_;
  double best_value_ = -1;
  int64_t best_step_ = 0;
  TRecViT model_;
  TrainOptions opt_;
  BatchSource& data_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  WarmupCosine schedule_;
  std::vector<torch::Tensor> ema_;
  std::vector<char> had_grad_;  // per parameter: had a gradient at some step (zero_grad() would zero it)
  std::vector<double> group_lr_mult_;  // per optimizer group: its share of the scheduled lr
  int64_t step_ = 0;
  int64_t clips_seen_ = 0;
  double elapsed_s_ = 0;
  double data_wait_s_ = 0;  // time spent waiting for batches (the loader's share of elapsed_s_)
};

}  // namespace trecvit

#include "train/trainer.h"

#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "models/checkpoint.h"

namespace trecvit {
namespace {

// Each training option once: its name, check and meaning (range errors name the field).
const FieldTable<TrainOptions>& train_option_table() {
  using O = TrainOptions;
  static const FieldTable<O> table({
      TRECVIT_MEMBER_FIELD(O, steps, "optimizer steps", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(O, accumulate, "batches per optimizer step", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(O, lr, "peak learning rate", Check::above(0)),
      TRECVIT_MEMBER_FIELD(O, lr_backbone_mult, "backbone learning rate as a fraction of lr (fine-tuning; the class head keeps lr)",
                           Check::in(0, 1000)),
      TRECVIT_MEMBER_FIELD(O, weight_decay, "AdamW decoupled weight decay", Check::at_least(0)),
      TRECVIT_MEMBER_FIELD(O, warmup_steps, "linear warm-up steps (< steps)", Check::at_least(0)),
      TRECVIT_MEMBER_FIELD(O, final_lr_fraction, "cosine floor as a fraction of lr", Check::in(0, 1)),
      TRECVIT_MEMBER_FIELD(O, clip_norm, "global gradient-norm clip (0: none)", Check::at_least(0)),
      TRECVIT_MEMBER_FIELD(O, label_smoothing, "label smoothing", Check::in_half_open(0, 1)),
      TRECVIT_MEMBER_FIELD(O, aux_loss_weight, "weight of the mixers' auxiliary losses"),
      TRECVIT_MEMBER_FIELD(O, ema_decay, "weight EMA decay (0: no EMA)", Check::in_half_open(0, 1)),
      TRECVIT_MEMBER_FIELD(O, checkpoint_every, "steps between checkpoints (0: at the end and on a stop)",
                           Check::at_least(0)),
      TRECVIT_MEMBER_FIELD(O, log_every, "steps between metrics lines", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(O, seed, "seed for initialisation, data order and augmentation"),
  });
  return table;
}

}  // namespace

nlohmann::json train_options_to_json(const TrainOptions& o) { return train_option_table().write(o); }

std::vector<FieldInfo> train_option_fields() { return train_option_table().infos(); }

TrainOptions train_options_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": training options must be a JSON object");
  TrainOptions o;
  try {
    train_option_table().read(o, j, "the training options");
    if (o.warmup_steps >= o.steps) throw FieldError("warmup_steps", "must be in [0, steps)");
  } catch (const FieldError& e) {
    throw ConfigError(source + ": field '" + e.field + "': " + e.reason);
  }
  return o;
}

Trainer::Trainer(TRecViT model, TrainOptions options, BatchSource& data)
    : model_(std::move(model)), opt_(std::move(options)), data_(data) {
  if (!model_->sparse_grad_parameters().empty())
    throw ConfigError("model config '" + model_->config().name +
                      "': channel_mixer.sparse_grad is not supported by the trainer yet (its optimizer state "
                      "cannot be checkpointed); set it to false");
  optimizer_ = make_adamw(*model_, opt_.lr, opt_.weight_decay, {}, opt_.lr_backbone_mult);
  for (auto& group : optimizer_->param_groups()) group_lr_mult_.push_back(group.options().get_lr() / opt_.lr);
  schedule_ = {opt_.lr, opt_.warmup_steps, opt_.steps, opt_.final_lr_fraction};
  if (opt_.ema_decay > 0)
    for (auto& p : model_->parameters()) ema_.push_back(p.detach().clone());
  if (!opt_.out_dir.empty()) {
    mkdir(opt_.out_dir.c_str(), 0755);
    nlohmann::json resolved = {{"model", config_to_json(model_->config())}, {"train", train_options_to_json(opt_)}};
    std::ofstream(opt_.out_dir + "/config.json") << resolved.dump(2) << "\n";
  }
}

StepStats Trainer::step() {
  auto t0 = std::chrono::steady_clock::now();
  model_->train();
  const double lr = schedule_.lr_at(step_);
  for (size_t i = 0; i < group_lr_mult_.size(); ++i) optimizer_->param_groups()[i].options().set_lr(lr * group_lr_mult_[i]);
  optimizer_->zero_grad();
  double loss_sum = 0, correct = 0, count = 0;
  auto ce = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(opt_.label_smoothing);
  for (int64_t a = 0; a < opt_.accumulate; ++a) {
    Batch b = data_.next();
    auto logits = model_->forward(b.frames);
    auto loss = b.targets.defined() ? torch::binary_cross_entropy_with_logits(logits, b.targets)
                                    : torch::nn::functional::cross_entropy(logits, b.labels, ce);
    if (opt_.aux_loss_weight > 0) loss = loss + opt_.aux_loss_weight * model_->aux_loss();  // MoE balancing etc.
    (loss / double(opt_.accumulate)).backward();
    loss_sum += loss.item<double>();
    if (b.targets.defined())  // multi-label: the top class is one of the positives
      correct += b.targets.gather(1, logits.argmax(1, true)).sum().item<double>();
    else
      correct += (logits.argmax(1) == b.labels).sum().item<double>();
    count += b.labels.size(0);
  }
  if (opt_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(model_->parameters(), opt_.clip_norm);
  optimizer_->step();
  ++step_;
  if (!ema_.empty()) {
    torch::NoGradGuard ng;
    auto params = model_->parameters();
    for (size_t i = 0; i < params.size(); ++i) ema_[i].mul_(opt_.ema_decay).add_(params[i], 1 - opt_.ema_decay);
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  elapsed_s_ += dt;
  clips_seen_ += static_cast<int64_t>(count);
  StepStats s;
  s.step = step_;
  s.epoch = double(step_ * opt_.accumulate) / double(std::max<int64_t>(1, data_.batches_per_epoch()));
  s.loss = loss_sum / opt_.accumulate;
  s.accuracy = correct / count;
  s.lr = lr;
  s.clips_per_s = count / dt;
  s.eta_s = elapsed_s_ / step_ * (opt_.steps - step_);
  return s;
}

void Trainer::log_metrics(const StepStats& s) {
  if (opt_.out_dir.empty()) return;
  std::ofstream f(opt_.out_dir + "/metrics.jsonl", std::ios::app);
  f << nlohmann::json{{"step", s.step}, {"epoch", s.epoch}, {"loss", s.loss}, {"accuracy", s.accuracy},
                      {"lr", s.lr}, {"clips_per_s", s.clips_per_s}, {"skipped", data_.skipped()}}
           .dump()
    << "\n";
}

std::string Trainer::latest_checkpoint_path() const {
  return opt_.out_dir.empty() ? std::string() : opt_.out_dir + "/checkpoint.pt";
}

int64_t Trainer::run(const std::function<void(const StepStats&)>& on_log, const CancelToken* cancel) {
  const int64_t start = step_;
  while (step_ < opt_.steps && !cancelled(cancel)) {
    auto s = step();
    if (s.step % opt_.log_every == 0 || s.step == opt_.steps) {
      log_metrics(s);
      if (on_log) on_log(s);
    }
    if (opt_.checkpoint_every > 0 && step_ % opt_.checkpoint_every == 0 && !opt_.out_dir.empty())
      save(latest_checkpoint_path());
  }
  if (!opt_.out_dir.empty()) save(latest_checkpoint_path());
  return step_ - start;
}

void Trainer::save(const std::string& path) {
  torch::serialize::OutputArchive archive;
  write_model(archive, *model_);
  nlohmann::json state = {{"step", step_},
                          {"clips_seen", clips_seen_},
                          {"elapsed_s", elapsed_s_},
                          {"data_position", data_.position()},
                          {"options", train_options_to_json(opt_)}};
  archive.write("train_state", c10::IValue(state.dump()));
  torch::serialize::OutputArchive opt_archive;
  optimizer_->save(opt_archive);
  archive.write("train_optimizer", opt_archive);
  archive.write("train_rng", at::detail::getDefaultCPUGenerator().get_state());
  for (size_t i = 0; i < ema_.size(); ++i) archive.write("train_ema/" + std::to_string(i), ema_[i]);
  save_archive_atomically(archive, path);
}

void Trainer::resume(const std::string& path) {
  TRecViTConfig saved;
  auto archive = open_checkpoint(path, &saved);
  if (config_to_json(saved) != config_to_json(model_->config()))
    throw CheckpointError("checkpoint " + path + ": trained with another model config (" +
                          config_to_json(saved).dump() + "); this run uses " +
                          config_to_json(model_->config()).dump());
  c10::IValue state_iv;
  if (!archive.try_read("train_state", state_iv) || !state_iv.isString())
    throw CheckpointError("checkpoint " + path + ": no training state (a model-only checkpoint cannot be resumed)");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(state_iv.toStringRef());
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError("checkpoint " + path + ": corrupt training state: " + e.what());
  }
  load_weights(*model_, path);  // parameters and buffers in place, with shape checks
  torch::serialize::InputArchive opt_archive;
  if (!archive.try_read("train_optimizer", opt_archive))
    throw CheckpointError("checkpoint " + path + ": missing optimizer state");
  optimizer_->load(opt_archive);
  torch::Tensor rng;
  if (!archive.try_read("train_rng", rng)) throw CheckpointError("checkpoint " + path + ": missing RNG state");
  auto gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng);
  for (size_t i = 0; i < ema_.size(); ++i) {
    torch::Tensor t;
    if (!archive.try_read("train_ema/" + std::to_string(i), t))
      throw CheckpointError("checkpoint " + path + ": EMA is on but the checkpoint has no EMA weights");
    ema_[i].copy_(t);
  }
  step_ = state.at("step").get<int64_t>();
  clips_seen_ = state.value("clips_seen", int64_t(0));
  elapsed_s_ = state.value("elapsed_s", 0.0);
  data_.restore(state.at("data_position"));
}

TRecViT Trainer::eval_model() {
  if (ema_.empty()) return model_;
  TRecViT copy(std::dynamic_pointer_cast<TRecViTImpl>(model_->clone()));
  torch::NoGradGuard ng;
  auto params = copy->parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(ema_[i]);
  return copy;
}

}  // namespace trecvit

#include "train/trainer.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <fstream>

#include "blocks/file_safety.h"
#include "models/checkpoint.h"
#include "blocks/parse_number.h"

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
      TRECVIT_MEMBER_FIELD(O, eval_every, "steps between validations on the validation split (0: none)", Check::at_least(0)),
      TRECVIT_MEMBER_FIELD(O, best_metric, "validation metric that best.pt maximises", Check::one_of({"top1", "top5"})),
      TRECVIT_MEMBER_FIELD(O, keep_last, "step-numbered copies of the last K periodic checkpoints (0: none)", Check::at_least(0)),
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

TrainOptions load_train_options(const std::string& path) {
  if (path.empty()) return {};
  if (const auto why = unreadable_reason(path); !why.empty()) throw ConfigError("train config " + path + ": " + why);
  std::ifstream f(path);
  if (!f) throw ConfigError("train config " + path + ": cannot be opened");
  try {
    auto j = nlohmann::json::parse(f);
    // The "data" section (loader and augmentation) belongs to the job that feeds the trainer.
    if (j.is_object()) j.erase("data");
    return train_options_from_json(j, "train config " + path);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("train config " + path + ": invalid JSON: " + plain_json_error(e));
  }
}

std::string train_config_beside(const std::string& model_config) {
  std::string path = model_config;
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0) path.resize(path.size() - 5);
  path += ".train.json";
  return unreadable_reason(path).empty() ? path : std::string();
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
  if (!opt_.out_dir.empty()) mkdir(opt_.out_dir.c_str(), 0755);
}

StepStats Trainer::step() {
  auto t0 = std::chrono::steady_clock::now();
  model_->train();
  const double lr = schedule_.lr_at(step_);
  for (size_t i = 0; i < group_lr_mult_.size(); ++i) optimizer_->param_groups()[i].options().set_lr(lr * group_lr_mult_[i]);
  // Set to none rather than zero-filled: the first backward then writes each gradient instead of
  // adding it to zeros (one fill and one add per parameter saved). Parameters that had a gradient
  // and get none this step are given zeros below, so AdamW sees what zero_grad() would leave.
  // The mask is a member so that a step that throws midway loses no parameter's history.
  auto params = model_->parameters();
  had_grad_.resize(params.size(), 0);
  for (size_t i = 0; i < params.size(); ++i) {
    had_grad_[i] |= params[i].grad().defined();
    params[i].mutable_grad() = torch::Tensor();
  }
  double loss_sum = 0, correct = 0, count = 0;
  auto ce = torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(opt_.label_smoothing);
  for (int64_t a = 0; a < opt_.accumulate; ++a) {
    const auto wait0 = std::chrono::steady_clock::now();
    Batch b = data_.next();
    data_wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - wait0).count();
    auto logits = model_->forward(b.frames);
    auto loss = b.targets.defined() ? torch::binary_cross_entropy_with_logits(logits, b.targets)
                                    : torch::nn::functional::cross_entropy(logits, b.labels, ce);
    if (opt_.aux_loss_weight > 0) loss = loss + opt_.aux_loss_weight * model_->aux_loss();  // MoE balancing etc.
    if (sync_) sync_->before_backward(a + 1 == opt_.accumulate);
    (loss / double(opt_.accumulate)).backward();
    loss_sum += loss.item<double>();
    if (b.targets.defined())  // multi-label: the top class is one of the positives
      correct += b.targets.gather(1, logits.argmax(1, true)).sum().item<double>();
    else
      correct += (logits.argmax(1) == b.labels).sum().item<double>();
    count += b.labels.size(0);
  }
  if (sync_) {  // clipping and the logs see every rank's batches
    sync_->after_backward();
    // A stop request travels with the step's sums: every rank stops after the same step.
    std::vector<double> sums = {loss_sum, correct, count, cancelled(cancel_) ? 1.0 : 0.0};
    sync_->sum(sums);
    loss_sum = sums[0] / double(sync_->world());
    correct = sums[1];
    count = sums[2];
    stop_agreed_ = sums[3] > 0;
  }
  for (size_t i = 0; i < params.size(); ++i)
    if (had_grad_[i] && !params[i].grad().defined()) params[i].mutable_grad() = torch::zeros_like(params[i]);
  if (opt_.clip_norm > 0) torch::nn::utils::clip_grad_norm_(params, opt_.clip_norm);
  optimizer_->step();
  ++step_;
  if (!ema_.empty()) {
    torch::NoGradGuard ng;
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
  if (!writes()) return;
  const std::string path = opt_.out_dir + "/metrics.jsonl";
  const auto row = nlohmann::json{{"step", s.step}, {"epoch", s.epoch}, {"loss", s.loss}, {"accuracy", s.accuracy},
                                  {"lr", s.lr}, {"clips_per_s", s.clips_per_s}, {"skipped", data_.skipped()},
                                  {"wall_s", elapsed_s_}, {"data_wait_s", data_wait_s_}};
  if (const auto why = append_line(path, row.dump()); !why.empty()) throw CheckpointError(path + ": " + why);
}

// Steps logged after the restored checkpoint (a crash between a log line and the next
// checkpoint) are replayed by the resumed run: drop them so each step appears once. A line cut
// by the crash goes too.
void Trainer::truncate_metrics() {
  if (!writes()) return;
  const std::string path = opt_.out_dir + "/metrics.jsonl";
  std::ifstream in(path);
  if (!in) return;
  std::vector<std::string> kept;
  std::string line;
  bool dropped = false;
  while (std::getline(in, line)) {
    const auto row = nlohmann::json::parse(line, nullptr, false);
    const bool keep = row.is_object() && row.contains("step") && row["step"].is_number_integer() &&
                      row["step"].get<int64_t>() <= step_;
    if (keep) kept.push_back(line);
    else dropped = true;
  }
  in.close();
  if (!dropped) return;
  std::string content;
  for (auto& k : kept) content += k + "\n";
  if (const auto why = write_file_atomically(path, content); !why.empty()) throw CheckpointError(path + ": " + why);
}

std::string Trainer::latest_checkpoint_path() const {
  return opt_.out_dir.empty() ? std::string() : opt_.out_dir + "/checkpoint.pt";
}

int64_t Trainer::run(const std::function<void(const StepStats&)>& on_log, const CancelToken* cancel) {
  const int64_t start = step_;
  cancel_ = cancel;
  stop_agreed_ = false;
  while (step_ < opt_.steps && !(sync_ ? stop_agreed_ : cancelled(cancel))) {
    auto s = step();
    if (s.step % opt_.log_every == 0 || s.step == opt_.steps) {
      log_metrics(s);
      if (on_log) on_log(s);
    }
    // Validation before the checkpoint of the same step, so the checkpoint knows the best so far.
    if (validate_ && opt_.eval_every > 0 && (step_ % opt_.eval_every == 0 || step_ == opt_.steps)) validate_now();
    if (opt_.checkpoint_every > 0 && step_ % opt_.checkpoint_every == 0 && writes()) {
      save(latest_checkpoint_path());
      keep_last_checkpoints();
    }
  }
  if (writes()) save(latest_checkpoint_path());
  return step_ - start;
}

void Trainer::validate_now() {
  auto model = eval_model();
  nlohmann::json result = validate_(*model);  // step() puts the model back in training mode
  if (writes()) {
    const std::string path = opt_.out_dir + "/metrics.jsonl";
    if (const auto why = append_line(path, nlohmann::json{{"step", step_}, {"validation", result}}.dump()); !why.empty())
      throw CheckpointError(path + ": " + why);
  }
  const double value = result.value(opt_.best_metric, -1.0);
  if (value > best_value_) {
    best_value_ = value;
    best_step_ = step_;
    if (writes()) save_checkpoint(*model, opt_.out_dir + "/best.pt");
  }
}

// checkpoint.pt is replaced by a rename on every save, so a hard link keeps the old file alive
// under checkpoint-<step>.pt at no copying cost; the oldest beyond keep_last go.
void Trainer::keep_last_checkpoints() {
  if (opt_.keep_last <= 0) return;
  namespace fs = std::filesystem;
  const fs::path dir(opt_.out_dir);
  const fs::path kept = dir / ("checkpoint-" + std::to_string(step_) + ".pt");
  std::error_code ec;
  fs::remove(kept, ec);
  fs::create_hard_link(dir / "checkpoint.pt", kept, ec);
  if (ec) fs::copy_file(dir / "checkpoint.pt", kept, fs::copy_options::overwrite_existing);
  std::vector<std::pair<int64_t, fs::path>> all;
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || name.size() < 15 || name.compare(name.size() - 3, 3, ".pt") != 0) continue;
    const std::string digits = name.substr(11, name.size() - 14);
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    all.emplace_back(*parse_int(digits), e.path());
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + size_t(opt_.keep_last) < all.size(); ++i) fs::remove(all[i].second, ec);
}

void Trainer::save(const std::string& path) {
  torch::serialize::OutputArchive archive;
  write_model(archive, *model_);
  nlohmann::json state = {{"step", step_},
                          {"clips_seen", clips_seen_},
                          {"elapsed_s", elapsed_s_},
                          {"data_wait_s", data_wait_s_},
                          {"best_value", best_value_},
                          {"best_step", best_step_},
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
  // LibTorch's and the JSON library's own errors (a missing key, a wrong type) inside a damaged
  // checkpoint become one error naming the file.
  try {
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
      throw CheckpointError("checkpoint " + path + ": corrupt training state: " + plain_json_error(e));
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
    data_wait_s_ = state.value("data_wait_s", 0.0);
    best_value_ = state.value("best_value", -1.0);
    best_step_ = state.value("best_step", int64_t(0));
    data_.restore(state.at("data_position"));
    truncate_metrics();
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw CheckpointError("checkpoint " + path + ": damaged training state (" + what.substr(0, what.find('\n')) + ")");
  }
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

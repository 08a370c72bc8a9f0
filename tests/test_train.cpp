// The training core: schedule, decay exclusions, learning a temporal task, exact resume,
// stop signals, and clear errors for checkpoints that cannot be resumed.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "models/checkpoint.h"
#include "models/inference.h"
#include <ATen/CPUGeneratorImpl.h>

#include "tests/test_util.h"
#include "blocks/simd_kernels.h"
#include "train/trainer.h"

using namespace trecvit;
using trecvit::test::temp_dir;
using trecvit::test::tiny_config;

namespace {

// Two classes that differ only in temporal order: a square moving right (0) or left (1).
// Deterministic for a position; reshuffled per epoch from the seed.
class MotionBatches : public BatchSource {
 public:
  MotionBatches(int64_t clips, int64_t batch, uint64_t seed) : batch_(batch), seed_(seed) {
    for (int64_t i = 0; i < clips; ++i) {
      auto clip = synthetic_clip(4, 32, 32, seed + i);
      const int64_t label = i % 2;
      clips_.push_back(label ? clip.flip(0) : clip);
      labels_.push_back(label);
    }
    reshuffle();
  }
  Batch next() override {
    std::vector<torch::Tensor> f;
    std::vector<int64_t> l;
    for (int64_t k = 0; k < batch_; ++k) {
      if (index_ == static_cast<int64_t>(order_.size())) {
        ++epoch_;
        index_ = 0;
        reshuffle();
      }
      const int64_t i = order_[index_++];
      f.push_back(clips_[i]);
      l.push_back(labels_[i]);
    }
    return {torch::stack(f), torch::tensor(l, torch::kLong)};
  }
  nlohmann::json position() const override { return {{"epoch", epoch_}, {"index", index_}}; }
  void restore(const nlohmann::json& p) override {
    epoch_ = p.at("epoch");
    index_ = p.at("index");
    reshuffle();
  }
  int64_t batches_per_epoch() const override { return static_cast<int64_t>(clips_.size()) / batch_; }

 private:
  void reshuffle() {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000 + epoch_);
    auto perm = torch::randperm(static_cast<int64_t>(clips_.size()), gen, torch::kLong);
    order_.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + perm.numel());
  }
  std::vector<torch::Tensor> clips_;
  std::vector<int64_t> labels_, order_;
  int64_t batch_, epoch_ = 0, index_ = 0;
  uint64_t seed_;
};

TRecViT tiny_model(uint64_t seed) {
  auto c = tiny_config();
  c.num_classes = 2;
  torch::manual_seed(seed);
  return TRecViT(c);
}

TrainOptions quick_options(int64_t steps) {
  TrainOptions o;
  o.steps = steps;
  o.lr = 3e-3;
  o.warmup_steps = 2;
  o.log_every = 1;
  return o;
}

}  // namespace

TEST(Schedule, WarmupThenCosine) {
  WarmupCosine s{1.0, 4, 14, 0.1};
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 1.0);
  EXPECT_NEAR(s.lr_at(9), 0.1 + 0.9 * 0.5, 1e-12);  // halfway through the cosine
  EXPECT_NEAR(s.lr_at(14), 0.1, 1e-12);
}

TEST(Optim, DecayExclusions) {
  auto model = tiny_model(0);
  for (auto& p : model->named_parameters()) {
    const bool excluded = excluded_from_decay(p.key(), p.value());
    const bool expect = p.value().dim() <= 1 || p.key() == "pos_embedding" || p.key() == "cls";
    EXPECT_EQ(excluded, expect) << p.key();
  }
  auto opt = make_adamw(*model, 1e-3, 0.05);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(opt->param_groups()[1].options()).weight_decay(), 0);
}

namespace {

// Parameters of several sizes (a vector tail, several parallel chunks) in two groups, one decayed.
std::vector<torch::Tensor> adamw_params(torch::Dtype dtype) {
  torch::manual_seed(21);
  std::vector<torch::Tensor> ps;
  for (int64_t n : {1, 37, 1000, 70001}) ps.push_back(torch::randn({n}, dtype).requires_grad_(true));
  return ps;
}

template <typename Opt>
std::unique_ptr<Opt> adamw_over(const std::vector<torch::Tensor>& ps, bool amsgrad) {
  auto o = torch::optim::AdamWOptions(3e-3).weight_decay(0.05).amsgrad(amsgrad);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{ps[0], ps[2]}, std::make_unique<torch::optim::AdamWOptions>(o));
  groups.emplace_back(std::vector<torch::Tensor>{ps[1], ps[3]},
                      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(o).weight_decay(0)));
  return std::make_unique<Opt>(std::move(groups), o);
}

void set_grads(const std::vector<torch::Tensor>& ps, int step) {
  torch::manual_seed(100 + step);
  for (auto& p : ps) p.mutable_grad() = torch::randn_like(p) * (step % 3 == 0 ? 1e-4 : 1.0);
}

double max_param_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

}  // namespace

// The one-pass update against LibTorch's AdamW over 20 steps: float within rounding, and the
// tensor-op path (double, amsgrad) bit for bit.
TEST(Optim, FusedAdamWFollowsLibTorchsAdamW) {
  for (auto [dtype, amsgrad] : {std::pair{torch::kFloat, false}, {torch::kDouble, false}, {torch::kFloat, true}}) {
    auto ps = adamw_params(dtype), ref = adamw_params(dtype);
    auto fused = adamw_over<FusedAdamW>(ps, amsgrad);
    auto lib = adamw_over<torch::optim::AdamW>(ref, amsgrad);
    for (int step = 0; step < 20; ++step) {
      set_grads(ps, step);
      set_grads(ref, step);
      fused->step();
      lib->step();
    }
    const std::string what = std::string(dtype == torch::kFloat ? "float" : "double") + (amsgrad ? " amsgrad" : "");
    if (dtype == torch::kFloat && !amsgrad)
      EXPECT_LT(max_param_diff(ps, ref), 2e-6) << what;
    else
      EXPECT_EQ(max_param_diff(ps, ref), 0.0) << what;
    // The moments too, under LibTorch's keys.
    for (size_t i = 0; i < ps.size(); ++i) {
      auto& a = static_cast<torch::optim::AdamWParamState&>(*fused->state().at(c10::guts::to_string(ps[i].unsafeGetTensorImpl())));
      auto& b = static_cast<torch::optim::AdamWParamState&>(*lib->state().at(c10::guts::to_string(ref[i].unsafeGetTensorImpl())));
      EXPECT_EQ(a.step(), b.step());
      auto rel = [](const torch::Tensor& x, const torch::Tensor& y) {
        return (x - y).abs().max().item<double>() / y.abs().max().item<double>();
      };
      EXPECT_LT(rel(a.exp_avg(), b.exp_avg()), 1e-6) << what;      // a few float ulps
      EXPECT_LT(rel(a.exp_avg_sq(), b.exp_avg_sq()), 1e-6) << what;
    }
  }
}

// A strided gradient leaves the one-pass loop for LibTorch's tensor ops: the same bits as AdamW.
TEST(Optim, FusedAdamWTakesLibTorchsOpsForAStridedGradient) {
  torch::manual_seed(23);
  auto p = torch::randn({7, 5}).requires_grad_(true), ref = p.detach().clone().requires_grad_(true);
  FusedAdamW fused({p}, torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  torch::optim::AdamW lib({ref}, torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  for (int step = 0; step < 5; ++step) {
    auto g = torch::randn({5, 7}).t();
    ASSERT_FALSE(g.is_contiguous());
    p.mutable_grad() = g;
    ref.mutable_grad() = g.clone();
    fused.step();
    lib.step();
  }
  EXPECT_TRUE(torch::equal(p, ref));
}

// Each vector build's update against the portable loop, with a tail that is not a full vector.
TEST(Optim, EveryVectorBuildOfTheAdamWUpdateMatchesThePortableLoop) {
  if (trecvit::detail::float_kernels().empty()) GTEST_SKIP() << "this CPU has no vector build";
  torch::manual_seed(22);
  const int64_t n = 1003;
  const trecvit::detail::AdamWScalars c{0.9995f, 0.9f, 0.999f, 0.1f, 0.001f, 0.05f, 1e-8f, -3e-3f};
  auto p0 = torch::randn({n}), g = torch::randn({n}), m0 = torch::randn({n}) * 0.1, v0 = torch::rand({n}) * 0.01;
  auto run = [&](auto loop) {
    std::vector<torch::Tensor> t = {p0.clone(), m0.clone(), v0.clone()};
    loop(c, t[0].data_ptr<float>(), g.data_ptr<float>(), t[1].data_ptr<float>(), t[2].data_ptr<float>(), n);
    return t;
  };
  auto ref = run(trecvit::detail::adamw_loop<float, float>);
  EXPECT_GT((ref[0] - p0).abs().min().item<float>(), 0.0f) << "every parameter moved";
  for (const auto& k : trecvit::detail::float_kernels()) {
    auto got = run(k.adamw);
    for (int i = 0; i < 3; ++i)
      EXPECT_LT((got[i] - ref[i]).abs().max().item<double>(), 1e-6 * (1 + ref[i].abs().max().item<double>()))
          << k.name << " output " << i;
  }
}

namespace {

// A copy of `params` under a new optimizer of type To, its state read from `from`'s checkpoint bytes.
template <typename To>
std::pair<std::vector<torch::Tensor>, std::unique_ptr<To>> resume_as(const torch::optim::Optimizer& from,
                                                                       const std::vector<torch::Tensor>& params) {
  torch::serialize::OutputArchive out;
  from.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  auto copy = adamw_params(torch::kFloat);
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) copy[i].copy_(params[i]);
  }
  auto to = adamw_over<To>(copy, false);
  torch::serialize::InputArchive in;
  std::istringstream read(bytes.str());
  in.load_from(read);
  to->load(in);
  return {copy, std::move(to)};
}

}  // namespace

// Checkpoints stay LibTorch's AdamW format both ways, so older runs resume.
TEST(Optim, FusedAdamWStateRoundTripsThroughLibTorchsFormat) {
  auto ps = adamw_params(torch::kFloat);
  auto fused = adamw_over<FusedAdamW>(ps, false);
  for (int step = 0; step < 3; ++step) {
    set_grads(ps, step);
    fused->step();
  }
  auto [copy, lib] = resume_as<torch::optim::AdamW>(*fused, ps);
  set_grads(ps, 3);
  set_grads(copy, 3);
  fused->step();
  lib->step();
  EXPECT_LT(max_param_diff(ps, copy), 1e-6);  // one step's rounding
  // And the other way: LibTorch's state, then steps of the one-pass loop.
  auto [resumed, fused2] = resume_as<FusedAdamW>(*lib, copy);
  set_grads(resumed, 4);
  set_grads(copy, 4);
  fused2->step();
  lib->step();
  EXPECT_LT(max_param_diff(resumed, copy), 1e-6);
  // And a sparse gradient is refused, as LibTorch's AdamW refuses it.
  ps[1].mutable_grad() = torch::randn({37}).to_sparse();
  EXPECT_THROW(fused->step(), c10::Error);
}

TEST(Trainer, LearnsATemporalTaskWellAboveChance) {
  MotionBatches data(16, 8, 1);
  Trainer trainer(tiny_model(1), quick_options(60), data);
  trainer.run();
  // Evaluate on fresh clips of both directions.
  auto model = trainer.eval_model();
  model->eval();
  torch::NoGradGuard ng;
  int correct = 0, total = 0;
  for (int i = 0; i < 16; ++i) {
    auto clip = synthetic_clip(4, 32, 32, 500 + i);
    for (int64_t label : {0, 1}) {
      auto logits = model->forward((label ? clip.flip(0) : clip).unsqueeze(0));
      correct += logits.argmax(1).item<int64_t>() == label;
      ++total;
    }
  }
  EXPECT_GE(correct, total * 3 / 4) << correct << "/" << total;
}

TEST(Trainer, ResumeFollowsTheSameLossCurve) {
  auto dir = temp_dir();
  std::vector<double> straight, resumed;
  {
    MotionBatches data(12, 4, 2);
    auto o = quick_options(6);
    o.ema_decay = 0.9;
    Trainer t(tiny_model(2), o, data);
    t.run([&](const StepStats& s) { straight.push_back(s.loss); });
  }
  {
    MotionBatches data(12, 4, 2);
    auto o = quick_options(6);
    o.ema_decay = 0.9;
    Trainer t(tiny_model(2), o, data);
    for (int i = 0; i < 3; ++i) resumed.push_back(t.step().loss);
    t.save(dir + "/mid.pt");
  }
  {
    MotionBatches data(12, 4, 2);
    auto o = quick_options(6);
    o.ema_decay = 0.9;
    Trainer t(tiny_model(99), o, data);  // different init: everything must come from the file
    t.resume(dir + "/mid.pt");
    EXPECT_EQ(t.global_step(), 3);
    t.run([&](const StepStats& s) { resumed.push_back(s.loss); });
  }
  ASSERT_EQ(straight.size(), resumed.size());
  for (size_t i = 0; i < straight.size(); ++i) EXPECT_EQ(straight[i], resumed[i]) << "step " << i + 1;
}

TEST(Trainer, StopRequestCheckpointsAndReturns) {
  auto dir = temp_dir();
  MotionBatches data(8, 4, 3);
  auto o = quick_options(1000);
  o.out_dir = dir + "/run";
  Trainer t(tiny_model(3), o, data);
  CancelToken stop;  // what the command line's SIGINT/SIGTERM handler sets
  int logged = 0;
  t.run(
      [&](const StepStats&) {
        if (++logged == 2) stop.request();
      },
      &stop);
  EXPECT_EQ(t.global_step(), 2);
  auto model = load_checkpoint(dir + "/run/checkpoint.pt");  // a training checkpoint runs as a model
  EXPECT_EQ(model->config().num_classes, 2);
  std::ifstream metrics(dir + "/run/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    EXPECT_TRUE(nlohmann::json::parse(line).contains("loss"));
  }
  EXPECT_EQ(lines, 2);
}

// A crash after steps were logged but before the next checkpoint: the resumed run replays
// those steps, and metrics.jsonl still holds each step once, with the same values.
TEST(Trainer, ResumeAfterACrashKeepsEachMetricsStepOnce) {
  auto dir = temp_dir();
  auto o = quick_options(6);
  o.out_dir = dir + "/run";
  o.log_every = 1;
  o.checkpoint_every = 3;
  std::vector<nlohmann::json> first;
  {
    MotionBatches data(12, 4, 5);
    Trainer t(tiny_model(5), o, data);
    t.run([&](const StepStats& s) {
      if (s.step == 4) std::filesystem::copy_file(dir + "/run/checkpoint.pt", dir + "/step3.pt");
    });
  }
  auto read = [&] {
    std::vector<nlohmann::json> rows;
    std::ifstream in(dir + "/run/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
    return rows;
  };
  first = read();
  ASSERT_EQ(first.size(), 6u);
  EXPECT_TRUE(first[5].contains("wall_s"));
  EXPECT_TRUE(first[5].contains("data_wait_s"));
  // The crash: the step-3 checkpoint is the latest, steps 4 and 5 are logged, and the log
  // line of step 6 was cut mid-write.
  std::filesystem::copy_file(dir + "/step3.pt", dir + "/run/checkpoint.pt", std::filesystem::copy_options::overwrite_existing);
  {
    std::ofstream out(dir + "/run/metrics.jsonl", std::ios::trunc);
    for (int i = 0; i < 5; ++i) out << first[i].dump() << "\n";
    out << "{\"step\": 6, \"lo";
  }
  {
    MotionBatches data(12, 4, 5);
    Trainer t(tiny_model(77), o, data);
    t.resume(dir + "/run/checkpoint.pt");
    t.run();
  }
  const auto rows = read();
  ASSERT_EQ(rows.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(rows[i]["step"], i + 1);
    EXPECT_EQ(rows[i]["loss"], first[i]["loss"]) << "step " << i + 1;
  }
}

// Validation every 2 steps keeps best.pt at the best step (and the best across a resume);
// keep_last keeps the newest K step-numbered checkpoints.
TEST(Trainer, ValidationKeepsTheBestAndKeepLastPrunes) {
  auto dir = temp_dir();
  auto o = quick_options(8);
  o.out_dir = dir + "/run";
  o.eval_every = 2;
  o.checkpoint_every = 1;
  o.keep_last = 2;
  const std::map<int64_t, double> score = {{2, 0.3}, {4, 0.7}, {5, 0.1}, {6, 0.5}, {8, 0.6}};  // 5: the first run's last step
  std::map<int64_t, torch::Tensor> weights_at;
  auto validator = [&](Trainer& t) {
    return [&](TRecViTImpl& m) {
      weights_at[t.global_step()] = m.cls_head->weight.detach().clone();
      return nlohmann::json{{"top1", score.at(t.global_step())}, {"top5", 1.0}, {"count", 4}};
    };
  };
  {
    MotionBatches data(12, 4, 6);
    o.steps = 5;  // stop early, then resume to 8
    Trainer t(tiny_model(6), o, data);
    t.set_validator(validator(t));
    t.run();
    EXPECT_EQ(t.best_step(), 4);
  }
  {
    MotionBatches data(12, 4, 6);
    o.steps = 8;
    Trainer t(tiny_model(7), o, data);
    t.set_validator(validator(t));
    t.resume(dir + "/run/checkpoint.pt");
    EXPECT_EQ(t.best_step(), 4);  // 0.5 and 0.6 later do not beat 0.7
    EXPECT_DOUBLE_EQ(t.best_value(), 0.7);
    t.run();
    EXPECT_EQ(t.best_step(), 4);
  }
  auto best = load_checkpoint(dir + "/run/best.pt");
  EXPECT_TRUE(torch::equal(best->cls_head->weight, weights_at.at(4)));
  std::vector<std::string> kept;
  for (auto& e : std::filesystem::directory_iterator(dir + "/run"))
    if (e.path().filename().string().rfind("checkpoint-", 0) == 0) kept.push_back(e.path().filename().string());
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<std::string>{"checkpoint-7.pt", "checkpoint-8.pt"}));
  EXPECT_EQ(load_checkpoint(dir + "/run/checkpoint-7.pt")->config().num_classes, 2);
  // The validation rows are in metrics.jsonl, once each.
  std::ifstream in(dir + "/run/metrics.jsonl");
  std::string line;
  std::vector<int64_t> validated;
  while (std::getline(in, line)) {
    auto row = nlohmann::json::parse(line);
    if (row.contains("validation")) validated.push_back(row["step"].get<int64_t>());
  }
  EXPECT_EQ(validated, (std::vector<int64_t>{2, 4, 5, 6, 8}));
}

TEST(Trainer, UnresumableCheckpointsAreClearErrors) {
  auto dir = temp_dir();
  MotionBatches data(8, 4, 4);
  Trainer t(tiny_model(4), quick_options(4), data);
  auto expect_error = [&](const std::string& path, const std::string& needle) {
    try {
      t.resume(path);
      ADD_FAILURE() << "expected an error for " << path;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(dir + "/absent.pt", "no such file");
  std::ofstream(dir + "/junk.pt") << "not a checkpoint";
  expect_error(dir + "/junk.pt", "junk.pt");
  save_checkpoint(*t.model(), dir + "/model_only.pt");
  expect_error(dir + "/model_only.pt", "no training state");
  auto other = tiny_config();
  other.num_classes = 3;
  torch::manual_seed(0);
  Trainer t2(TRecViT(other), quick_options(4), data);
  t2.save(dir + "/other.pt");
  expect_error(dir + "/other.pt", "another model config");
}

TEST(TrainOptions, BadValuesNameTheField) {
  try {
    train_options_from_json({{"steps", 10}, {"warmup_steps", 20}}, "train.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'warmup_steps'"), std::string::npos) << e.what();
  }
  try {
    train_options_from_json({{"stpes", 10}}, "train.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'stpes': unknown"), std::string::npos) << e.what();
  }
}

#include "eval/evaluate.h"

TEST(Metrics, KnownAnswer) {
  ClassificationMetrics m(6);
  // Row 0: true 0 ranked first; row 1: true 2 ranked second; row 2: true 5 ranked last.
  auto logits = torch::tensor({{9., 1., 2., 3., 4., 5.}, {1., 8., 7., 0., 0., 0.}, {6., 5., 4., 3., 2., 1.}});
  m.add(logits, torch::tensor({0, 2, 5}, torch::kLong));
  EXPECT_DOUBLE_EQ(m.top1(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(m.top5(), 2.0 / 3);
  EXPECT_EQ(m.confusion()[2][1].item<int64_t>(), 1);
  EXPECT_EQ(m.confusion()[5][0].item<int64_t>(), 1);
  auto per = m.per_class_accuracy();
  EXPECT_DOUBLE_EQ(per[0], 1.0);
  EXPECT_DOUBLE_EQ(per[2], 0.0);
  EXPECT_DOUBLE_EQ(per[3], -1.0);  // never seen
  auto j = m.to_json({"a", "b", "c", "d", "e", "f"});
  EXPECT_EQ(j["per_class"][2]["name"], "c");
  EXPECT_TRUE(j["per_class"][3]["accuracy"].is_null());
}

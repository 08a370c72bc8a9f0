// The extension points through their public API alone: a toy channel mixer added in this file
// trains a step inside a TRecViT; a dataset format added here loads through load_dataset;
// models (sparse mixers included) clone the LibTorch way, deep and exact.
#include <filesystem>
#include <fstream>

#include "blocks/channel_mixer.h"
#include "datasets/formats.h"
#include "models/trecvit.h"
#include "tests/test_util.h"
#include "train/trainer.h"

using namespace trecvit;
namespace fs = std::filesystem;

namespace {

// y = x * scale: one learnable per-channel vector.
struct ScaleOptions {
  explicit ScaleOptions(int64_t dim) : dim_(dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(double, init) = 0.5;
};

class ScaleMixerImpl : public ChannelMixerModule<ScaleMixerImpl> {
 public:
  explicit ScaleMixerImpl(const ScaleOptions& o) : options(o) { reset(); }
  void reset() override { scale = register_parameter("scale", torch::full({options.dim()}, options.init())); }
  torch::Tensor forward(const torch::Tensor& x) override { return x * scale; }
  MixerCost cost() const override { return {options.dim(), options.dim(), 0, options.dim(), 0}; }
  std::string type() const override { return "toy_scale"; }
  ScaleOptions options;
  torch::Tensor scale;
};

const bool registered = [] {
  register_channel_mixer(mixer_type<ScaleMixerImpl, ScaleOptions>(
      "toy_scale", "a per-channel scale (test only)",
      FieldTable<ScaleOptions>({TRECVIT_ARG_FIELD(ScaleOptions, init, "initial scale", Check::above(0))}),
      [](const MixerContext& c) { return ScaleOptions(c.dim); }, nullptr, nullptr));
  return true;
}();

class FixedBatches : public BatchSource {
 public:
  explicit FixedBatches(const TRecViTConfig& c) {
    torch::manual_seed(1);
    batch_ = {torch::randint(0, 256, {2, 3, c.image_height, c.image_width, 3}, torch::kByte),
              torch::tensor({0, 1}, torch::kLong)};
  }
  Batch next() override { return batch_; }
  nlohmann::json position() const override { return 0; }
  void restore(const nlohmann::json&) override {}
  int64_t batches_per_epoch() const override { return 1; }

 private:
  Batch batch_;
};

TRecViTConfig config_with(const nlohmann::json& mixer) {
  auto j = config_to_json(test::tiny_config());
  j["layer_channel_mixers"] = {{"1", mixer}};
  return config_from_json(j, "test config");
}

}  // namespace

TEST(MixerRegistry, AToyMixerFromATestFileTrainsAStep) {
  ASSERT_TRUE(registered);
  const auto types = channel_mixer_types();
  EXPECT_NE(std::find(types.begin(), types.end(), "toy_scale"), types.end());
  auto c = config_with({{"type", "toy_scale"}, {"init", 2.0}});
  EXPECT_EQ(c.mixer_for_layer(1).get<double>("init"), 2.0);
  EXPECT_EQ(config_to_json(config_from_json(config_to_json(c))), config_to_json(c));  // round trip
  torch::manual_seed(0);
  TRecViT model(c);
  auto* toy = dynamic_cast<ScaleMixerImpl*>(model->layers[1]->as<TRecViTLayerImpl>()->mixer.get());
  ASSERT_NE(toy, nullptr);
  EXPECT_TRUE(torch::equal(toy->scale, torch::full({c.width}, 2.0)));
  const auto before = toy->scale.detach().clone();
  FixedBatches data(c);
  TrainOptions o;
  o.steps = 1;
  o.lr = 1e-2;
  Trainer trainer(model, o, data);
  const auto s = trainer.step();
  EXPECT_TRUE(std::isfinite(s.loss));
  EXPECT_GT((toy->scale - before).abs().max().item<double>(), 0);  // the optimizer reached it
}

TEST(MixerRegistry, ToyFieldsAreCheckedByTheTable) {
  for (auto [mixer, needle] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{{"type", "toy_scale"}, {"init", -1.0}}, "'layer_channel_mixers.1.init'"},
           {{{"type", "toy_scale"}, {"int", 1.0}}, "'layer_channel_mixers.1.int'"},
           {{{"type", "toy_scale"}, {"init", "big"}}, "'layer_channel_mixers.1.init'"}}) {
    try {
      config_with(mixer);
      ADD_FAILURE() << mixer.dump();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
  try {
    config_with({{"type", "nope"}});
    ADD_FAILURE();
  } catch (const ConfigError& e) {  // the registry's names, the toy's included
    EXPECT_NE(std::string(e.what()).find("toy_scale"), std::string::npos) << e.what();
  }
  EXPECT_NE(channel_mixers_markdown({64, 256}).find("`toy_scale`"), std::string::npos);
}

TEST(Clone, ModelsWithSparseMixersCloneDeepAndExact) {
  auto c = config_with({{"type", "peer"}, {"num_experts", 64}, {"heads", 2}, {"topk", 2}, {"key_dim", 4}});
  torch::manual_seed(3);
  TRecViT model(c);
  model->eval();
  auto copy = std::dynamic_pointer_cast<TRecViTImpl>(model->clone());
  ASSERT_NE(copy, nullptr);
  ASSERT_NE(copy.get(), model.get());
  EXPECT_EQ(copy->layers[1]->as<TRecViTLayerImpl>()->mixer->type(), "peer");
  torch::NoGradGuard ng;
  auto clip = torch::randint(0, 256, {2, 3, c.image_height, c.image_width, 3}, torch::kByte);
  EXPECT_TRUE(torch::equal(model->forward(clip), copy->forward(clip)));
  auto a = model->named_parameters(), b = copy->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (auto& p : a) EXPECT_NE(p.value().data_ptr(), b[p.key()].data_ptr()) << p.key();  // deep: no shared storage
  for (auto& p : copy->parameters()) p.add_(1.0);
  EXPECT_FALSE(torch::equal(model->forward(clip), copy->forward(clip)));
  // The clone's layer holds its own mixer, the one registered as its submodule.
  auto* layer = copy->layers[1]->as<TRecViTLayerImpl>();
  EXPECT_EQ(&layer->mixer->module(), layer->named_children()["mixer"].get());
}

TEST(DatasetFormats, AFormatFromATestFileLoadsThroughTheRegistry) {
  const auto dir = test::temp_dir();
  std::ofstream(dir + "/a.webm") << "x";
  data::register_dataset_format({"one_video", "a single video, class 'only'",
                                 [](const std::string& root, const std::string& split) {
                                   data::DatasetSplit s;
                                   s.format = "one_video";
                                   s.split = split;
                                   s.class_names = {"only"};
                                   s.items.push_back({root + "/a.webm", 0, "a"});
                                   return s;
                                 },
                                 [](const std::string&) { return std::vector<std::string>{"train"}; }});
  auto split = data::load_dataset("one_video", dir, "train");
  ASSERT_EQ(split.items.size(), 1u);
  EXPECT_EQ(split.class_names[0], "only");
  const auto names = data::dataset_format_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "one_video"), names.end());
  try {
    data::load_dataset("nope", dir, "train");
    ADD_FAILURE();
  } catch (const data::DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("one_video"), std::string::npos) << e.what();
  }
}

TEST(OptionTables, DocsAreTheGeneratedOnes) {
  std::string out;
  ASSERT_EQ(test::run_command(std::string(TRECVIT_BIN) + " info --options", &out), 0) << out;
  std::ifstream f(std::string(TRECVIT_CONFIG_DIR) + "/../docs/OPTIONS.md");
  const std::string docs((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(out, docs) << "regenerate docs/OPTIONS.md with: trecvit info --options > docs/OPTIONS.md";
}

TEST(OptionTables, IntegersFitTheirTypeAndWholeFloatsCount) {
  EXPECT_EQ(train_options_from_json({{"steps", 1e4}}, "train.json").steps, 10000);  // 1e4 is an integer
  for (auto [j, needle] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{{"steps", 2}, {"accumulate", 18446744073709551615ULL}}, "'accumulate'"},  // would wrap to -1
           {{{"checkpoint_every", 9223372036854775808ULL}}, "'checkpoint_every'"},
           {{{"steps", 2.5}}, "'steps': must be an integer"},
           {{{"seed", -1}}, "'seed'"}}) {
    try {
      train_options_from_json(j, "train.json");
      ADD_FAILURE() << j.dump();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

TEST(Clone, AClonesRoutingStatisticsAreItsOwn) {
  auto c = config_with({{"type", "peer"}, {"num_experts", 64}, {"heads", 2}, {"topk", 2}, {"key_dim", 4}});
  torch::manual_seed(4);
  TRecViT model(c);
  model->eval();
  torch::NoGradGuard ng;
  auto clip = torch::randint(0, 256, {1, 2, c.image_height, c.image_width, 3}, torch::kByte);
  model->collect_routing_stats(true);
  model->forward(clip);
  const auto before = model->routing_stats().at(1);
  auto copy = std::dynamic_pointer_cast<TRecViTImpl>(model->clone());
  copy->collect_routing_stats(true);
  for (int i = 0; i < 3; ++i) copy->forward(clip);
  const auto after = model->routing_stats().at(1);
  EXPECT_EQ(after.tokens, before.tokens);
  EXPECT_EQ(after.experts_used, before.experts_used);
  EXPECT_EQ(copy->routing_stats().at(1).tokens, 3 * before.tokens);
}

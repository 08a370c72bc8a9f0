// Configs, .npy/.npz, the released Flax layout and the toolkit's checkpoints: round trips
// and the clear errors on bad input.
#include <fstream>

#include "models/checkpoint.h"
#include "models/flax_io.h"
#include "models/npz.h"
#include "tests/test_util.h"

using namespace trecvit;
using trecvit::test::max_abs_diff;
using trecvit::test::temp_dir;
using trecvit::test::tiny_config;

namespace {

// Runs fn, expecting an exception of type E whose message contains every needle.
template <typename E, typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected an error mentioning " << *needles.begin();
  } catch (const E& e) {
    for (auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

}  // namespace

TEST(Config, ShippedConfigsLoad) {
  for (auto name : {"tiny", "small", "base", "large"})
    EXPECT_NO_THROW(load_config(std::string(TRECVIT_CONFIG_DIR) + "/" + name + ".json")) << name;
}

TEST(Config, JsonRoundTrip) {
  auto c = tiny_config();
  c.layer_mixers[1] = ChannelMixerOptions("mlp").set("hidden", 64);
  auto back = config_from_json(config_to_json(c));
  EXPECT_EQ(config_to_json(back), config_to_json(c));
}

TEST(Config, BadValuesNameTheField) {
  auto base = config_to_json(tiny_config());
  struct Case {
    std::string field;
    nlohmann::json value;
    std::string needle;
  };
  std::vector<Case> cases = {{"width", -3, "'width'"},        {"width", "wide", "'width'"},
                             {"num_heads", 3, "'num_heads'"}, {"patch_size", 5, "'image_size'"},
                             {"readout", "max", "'readout'"}, {"lru_heads", 7, "'lru_heads'"},
                             {"min_rad", 1.5, "'min_rad'"},   {"depth", 0, "'depth'"},
                             {"widht", 32, "'widht': unknown field"},
                             {"channel_mixer", {{"type", "nope"}}, "channel_mixer.type"},
                             {"layer_channel_mixers", {{"9", {{"type", "mlp"}}}}, "layer_channel_mixers"}};
  for (auto& cs : cases) {
    auto j = base;
    j[cs.field] = cs.value;
    expect_error<ConfigError>([&] { config_from_json(j, "cfg.json"); }, {"cfg.json", cs.needle});
  }
}

TEST(Config, MissingAndMalformedFiles) {
  auto dir = temp_dir();
  expect_error<ConfigError>([&] { load_config(dir + "/nope.json"); }, {"nope.json", "no such file"});
  write_file(dir + "/bad.json", "{\"width\": 3,,}");
  expect_error<ConfigError>([&] { load_config(dir + "/bad.json"); }, {"bad.json", "invalid JSON"});
}

TEST(Npz, RoundTripKeepsDtypesShapesAndOrder) {
  auto dir = temp_dir();
  NamedArrays arrays = {{"b/x", torch::randn({2, 3, 4})},
                        {"a", torch::randint(0, 255, {5}, torch::kByte)},
                        {"d", torch::randn({1}, torch::kDouble)},
                        {"scalar", torch::tensor(3.5f).reshape({})},
                        {"i", torch::arange(6, torch::kLong).view({2, 3})}};
  write_npz(dir + "/x.npz", arrays);
  auto back = read_npz(dir + "/x.npz");
  ASSERT_EQ(back.size(), arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    EXPECT_EQ(back[i].first, arrays[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), arrays[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back[i].second, arrays[i].second)) << arrays[i].first;
  }
}

TEST(Npz, FortranOrderIsTransposedOnLoad) {
  // np.asfortranarray([[1, 2, 3], [4, 5, 6]], dtype='<f4') saved with np.save.
  std::string header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size()));
  bytes.push_back(0);
  bytes += header;
  for (float v : {1.f, 4.f, 2.f, 5.f, 3.f, 6.f}) bytes.append(reinterpret_cast<const char*>(&v), 4);
  auto t = parse_npy(bytes, "f.npy");
  EXPECT_TRUE(torch::equal(t, torch::tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}})));
}

TEST(Npz, CorruptInputsAreClearErrors) {
  auto dir = temp_dir();
  write_file(dir + "/junk.npz", "this is not a zip archive at all");
  expect_error<NpyError>([&] { read_npz(dir + "/junk.npz"); }, {"junk.npz"});
  write_file(dir + "/junk.npy", "not numpy");
  expect_error<NpyError>([&] { read_npy(dir + "/junk.npy"); }, {"junk.npy", "not a .npy"});
  auto good = serialize_npy(torch::ones({4, 4}));
  write_file(dir + "/short.npy", good.substr(0, good.size() - 5));
  expect_error<NpyError>([&] { read_npy(dir + "/short.npy"); }, {"short.npy", "bytes"});
  expect_error<NpyError>([&] { read_npy(dir + "/missing.npy"); }, {"missing.npy", "no such file"});
}

TEST(Flax, KeysFollowTheReleasedLayout) {
  auto c = tiny_config();
  TRecViT model(c);
  auto arrays = export_flax_arrays(*model);
  EXPECT_EQ(arrays.size(), static_cast<size_t>(30 * c.depth + 10));  // 370 for B
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& [k, v] : arrays) shapes[k] = v.sizes().vec();
  const int64_t D = c.width, L = c.lru_width;
  EXPECT_EQ(shapes.at("tokenizer/embedding/kernel"), (std::vector<int64_t>{1, 8, 8, 3, D}));
  EXPECT_EQ(shapes.at("tokenizer/pos_embedding"), (std::vector<int64_t>{1, 16, D}));
  EXPECT_EQ(shapes.at("tokenizer/cls"), (std::vector<int64_t>{1, 1, D}));
  EXPECT_EQ(shapes.at("encoder/residualblock_01/recurrent_block/rg_lru/a_param"), (std::vector<int64_t>{L}));
  EXPECT_EQ(shapes.at("encoder/residualblock_00/recurrent_block/rg_lru/input_gate/w"),
            (std::vector<int64_t>{2, L / 2, L / 2}));
  EXPECT_EQ(shapes.at("encoder/residualblock_00/recurrent_block/conv_1d/w"), (std::vector<int64_t>{4, L}));
  EXPECT_EQ(shapes.at("encoder/residualblock_00/recurrent_block/linear_x/kernel"), (std::vector<int64_t>{D, L}));
  EXPECT_EQ(shapes.at("encoder/encoderblock_1/MultiHeadDotProductAttention_0/query/kernel"),
            (std::vector<int64_t>{D, 2, D / 2}));
  EXPECT_EQ(shapes.at("encoder/encoderblock_1/MultiHeadDotProductAttention_0/out/kernel"),
            (std::vector<int64_t>{2, D / 2, D}));
  EXPECT_EQ(shapes.at("encoder/encoderblock_0/MlpBlock_0/Dense_0/kernel"), (std::vector<int64_t>{D, 128}));
  EXPECT_EQ(shapes.at("encoder/encoder_norm/scale"), (std::vector<int64_t>{D}));
  EXPECT_EQ(shapes.at("decoder/pre_logits/kernel"), (std::vector<int64_t>{D, 64}));
  EXPECT_EQ(shapes.at("decoder/cls_head/bias"), (std::vector<int64_t>{5}));
}

TEST(Flax, DenseKernelIsInputMajor) {
  TRecViT model(tiny_config());
  auto arrays = export_flax_arrays(*model);
  for (auto& [k, v] : arrays)
    if (k == "decoder/cls_head/kernel") EXPECT_TRUE(torch::equal(v, model->cls_head->weight.t()));
}

TEST(Flax, ExportImportRoundTripInfersTheArchitecture) {
  auto dir = temp_dir();
  auto c = tiny_config();
  c.conv_width = 3;
  c.lru_width = 48;
  c.lru_heads = 3;
  torch::manual_seed(11);
  TRecViT model(c);
  export_npz(*model, dir + "/m.npz");
  auto back = import_npz(dir + "/m.npz");
  const auto& b = back->config();
  EXPECT_EQ(b.width, c.width);
  EXPECT_EQ(b.depth, c.depth);
  EXPECT_EQ(b.num_heads, c.num_heads);
  EXPECT_EQ(b.mlp_dim, c.mlp_dim);
  EXPECT_EQ(b.lru_width, 48);
  EXPECT_EQ(b.lru_heads, 3);
  EXPECT_EQ(b.conv_width, 3);
  EXPECT_EQ(b.patch_size, c.patch_size);
  EXPECT_EQ(b.image_height, c.image_height);
  EXPECT_EQ(b.rep_size, c.rep_size);
  EXPECT_EQ(b.num_classes, c.num_classes);
  torch::manual_seed(12);
  auto clip = torch::randint(0, 256, {1, 4, 32, 32, 3}, torch::kByte);
  EXPECT_EQ(max_abs_diff(back->forward(clip), model->forward(clip)), 0.0);
}

TEST(Flax, MissingExtraAndMisshapedKeysNameTheKey) {
  auto c = tiny_config();
  TRecViT model(c);
  auto arrays = export_flax_arrays(*model);
  const std::string victim = "encoder/residualblock_01/recurrent_block/rg_lru/a_gate/b";
  {
    NamedArrays missing;
    for (auto& kv : arrays)
      if (kv.first != victim) missing.push_back(kv);
    expect_error<NpyError>([&] { load_flax_arrays(*model, missing, "x.npz"); }, {"x.npz", "missing key", victim});
  }
  {
    auto extra = arrays;
    extra.emplace_back("encoder/bogus/kernel", torch::zeros({2}));
    expect_error<NpyError>([&] { load_flax_arrays(*model, extra, "x.npz"); }, {"unexpected key", "encoder/bogus/kernel"});
  }
  {
    auto wrong = arrays;
    for (auto& kv : wrong)
      if (kv.first == victim) kv.second = torch::zeros({3, 3});
    expect_error<NpyError>([&] { load_flax_arrays(*model, wrong, "x.npz"); }, {victim, "shape [3, 3]"});
  }
}

TEST(Checkpoint, RoundTripIsExactAndSelfContained) {
  auto dir = temp_dir();
  auto c = tiny_config();
  c.readout = "last";
  torch::manual_seed(21);
  TRecViT model(c);
  save_checkpoint(*model, dir + "/m.ckpt");
  auto back = load_checkpoint(dir + "/m.ckpt");
  EXPECT_EQ(config_to_json(back->config()), config_to_json(c));
  auto clip = torch::randint(0, 256, {2, 3, 32, 32, 3}, torch::kByte);
  EXPECT_EQ(max_abs_diff(back->forward(clip), model->forward(clip)), 0.0);
}

TEST(Checkpoint, BadFilesAreClearErrors) {
  auto dir = temp_dir();
  expect_error<CheckpointError>([&] { load_checkpoint(dir + "/none.ckpt"); }, {"none.ckpt", "no such file"});
  write_file(dir + "/junk.ckpt", "garbage garbage garbage");
  expect_error<CheckpointError>([&] { load_checkpoint(dir + "/junk.ckpt"); }, {"junk.ckpt", "not a readable"});
  TRecViT model(tiny_config());
  save_checkpoint(*model, dir + "/m.ckpt");
  std::ifstream in(dir + "/m.ckpt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(dir + "/trunc.ckpt", bytes.substr(0, bytes.size() / 2));
  expect_error<CheckpointError>([&] { load_checkpoint(dir + "/trunc.ckpt"); }, {"trunc.ckpt"});
  // A torch archive that is not ours.
  torch::serialize::OutputArchive other;
  other.write("weights", torch::ones({2}));
  other.save_to(dir + "/other.pt");
  expect_error<CheckpointError>([&] { load_checkpoint(dir + "/other.pt"); }, {"other.pt", "trecvit_format"});
}

TEST(Checkpoint, ConfigThatDisagreesWithTensorsNamesTheTensor) {
  auto dir = temp_dir();
  auto c = tiny_config();
  TRecViT model(c);
  torch::serialize::OutputArchive archive;
  archive.write("trecvit_format", c10::IValue(kCheckpointFormat));
  auto wider = c;
  wider.mlp_dim = 64;  // the tensors below are for mlp_dim 128
  archive.write("config", c10::IValue(config_to_json(wider).dump()));
  for (auto& p : model->named_parameters()) archive.write("param/" + p.key(), p.value().detach());
  archive.save_to(dir + "/mismatch.ckpt");
  expect_error<CheckpointError>([&] { load_checkpoint(dir + "/mismatch.ckpt"); }, {"mismatch.ckpt", "fc1.weight"});
}

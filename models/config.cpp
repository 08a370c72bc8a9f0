#include "models/config.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "blocks/file_safety.h"
#include "blocks/parse_number.h"

namespace trecvit {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& what) {
  throw ConfigError(source + ": field '" + field + "': " + what);
}

int64_t get_int(const nlohmann::json& j, const std::string& source, const std::string& field, int64_t lo,
                int64_t hi = INT64_MAX) {
  const auto& v = j.at(field);
  if (!v.is_number_integer()) fail(source, field, "must be an integer, got " + v.dump());
  int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    fail(source, field, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
  return x;
}

// The mixer registry checks the fields (types, ranges, relations); errors name
// <field>.<mixer field>.
ChannelMixerOptions mixer_from_json(const nlohmann::json& j, const std::string& source, const std::string& field) {
  if (!j.is_object()) fail(source, field, "must be an object like {\"type\": \"mlp\"}, got " + j.dump());
  ChannelMixerOptions m;
  if (j.contains("type")) {
    if (!j["type"].is_string()) fail(source, field + ".type", "must be a string");
    m.type = j["type"].get<std::string>();
  }
  try {
    channel_mixer_type(m.type);
  } catch (const FieldError& e) {
    fail(source, field + "." + e.field, e.reason);
  }
  m.fields = j;
  m.fields.erase("type");
  return m;
}

std::string fmt_g(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.3g", v);
  return b;
}

}  // namespace

ChannelMixerOptions TRecViTConfig::mixer_for_layer(int64_t layer) const {
  auto it = layer_mixers.find(layer);
  return resolve_channel_mixer(it != layer_mixers.end() ? it->second : channel_mixer, {width, mlp_dim});
}

void TRecViTConfig::validate() const {
  const std::string s = "config '" + name + "'";
  auto positive = [&](const char* f, int64_t v) {
    if (v <= 0) fail(s, f, "must be > 0, got " + std::to_string(v));
  };
  positive("patch_size", patch_size);
  positive("image_size", std::min(image_height, image_width));
  positive("num_frames", num_frames);
  positive("width", width);
  positive("depth", depth);
  positive("num_heads", num_heads);
  positive("mlp_dim", mlp_dim);
  positive("lru_width", lru_width);
  positive("lru_heads", lru_heads);
  positive("conv_width", conv_width);
  positive("rep_size", rep_size);
  positive("num_classes", num_classes);
  if (image_height % patch_size || image_width % patch_size)
    fail(s, "image_size", "must be divisible by patch_size " + std::to_string(patch_size));
  if (width % num_heads) fail(s, "num_heads", "must divide width " + std::to_string(width));
  if (lru_width % lru_heads) fail(s, "lru_heads", "must divide lru_width " + std::to_string(lru_width));
  if (!(min_rad > 0 && min_rad < 0.999)) fail(s, "min_rad", "must be in (0, 0.999)");
  if (readout != "mean" && readout != "last") fail(s, "readout", "must be \"mean\" or \"last\", got \"" + readout + "\"");
  for (auto& [layer, m] : layer_mixers)
    if (layer < 0 || layer >= depth)
      fail(s, "layer_channel_mixers", "layer " + std::to_string(layer) + " is outside [0, depth)");
  // Mixer fields, resolved with their defaults, checked where the config set them.
  auto check_mixer = [&](const std::string& where, const ChannelMixerOptions& m) {
    try {
      resolve_channel_mixer(m, {width, mlp_dim});
    } catch (const FieldError& e) {
      fail(s, where + "." + e.field, e.reason);
    }
  };
  check_mixer("channel_mixer", channel_mixer);
  for (auto& [layer, m] : layer_mixers) check_mixer("layer_channel_mixers." + std::to_string(layer), m);
  // Absurd sizes are refused here, before LibTorch is asked for the memory (where they would
  // surface as an allocator failure, sometimes after a long wait).
  const double params = estimated_parameters(), weights = 4 * params, have = physical_memory_bytes();
  if (weights > have)
    fail(s, "width/depth/mixers",
         "about " + fmt_g(params) + " parameters (" + fmt_g(weights / 1e9) + " GB of float32 weights) do not fit in this machine's " +
             fmt_g(have / 1e9) + " GB of memory");
}

void check_activation_memory(const TRecViTConfig& c, int64_t batch, int64_t frames, const std::string& what) {
  // A forward keeps a few [tokens, max(width, lru_width, mlp_dim)] float32 tensors alive per layer
  // boundary; 8 is a measured-generous count, so only what cannot fit is refused.
  const double tokens = double(batch) * double(frames) * double(c.grid_h()) * double(c.grid_w());
  const double widest = double(std::max({c.width, c.lru_width, c.mlp_dim}));
  const double need = 4 * c.estimated_parameters() + 8 * 4 * tokens * widest, have = physical_memory_bytes();
  if (need > have)
    throw ConfigError(what + ": " + std::to_string(batch) + " x " + std::to_string(frames) + " frames through model '" + c.name +
                      "' need about " + fmt_g(need / 1e9) + " GB, more than this machine's " + fmt_g(have / 1e9) + " GB");
}

// Parameters from the sizes alone (dense MLP or expert tables), a rough count of the main
// matrices: enough to refuse what cannot fit before anything is allocated.
double TRecViTConfig::estimated_parameters() const {
  const double D = double(width), L = double(lru_width), H = double(lru_heads);
  const double patch = double(patch_size) * double(patch_size) * 3 * D;
  const double attention = 4 * D * D, recurrent = 3 * D * L + 2 * L * L / H + L * double(conv_width);
  auto mixer = [&](const ChannelMixerOptions& o) {
    const auto m = resolve_channel_mixer(o, {width, mlp_dim}).to_json();
    const double experts = m.value("num_experts", 0.0) + m.value("num_keys", 0.0);
    return experts > 0 ? experts * D * 2 * m.value("expert_size", 1.0) : 2 * D * m.value("hidden", double(mlp_dim));
  };
  double total = patch + double(rep_size) * (D + double(num_classes)) + double(depth) * (attention + recurrent);
  total += double(depth - int64_t(layer_mixers.size())) * mixer(channel_mixer);
  for (auto& [layer, m] : layer_mixers) total += mixer(m);
  return total;
}

// Each scalar model field once; image_size and the mixers have shapes of their own below.
const FieldTable<TRecViTConfig>& config_table() {
  using C = TRecViTConfig;
  static const FieldTable<C> table({
      TRECVIT_MEMBER_FIELD(C, name, "a label for reports"),
      TRECVIT_MEMBER_FIELD(C, patch_size, "patch side P (image_size divisible by it)", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, num_frames, "clip length for training and evaluation", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, width, "token width D", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, depth, "layers", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, num_heads, "attention heads (divides width)", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, mlp_dim, "dense MLP hidden width", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, lru_width, "RG-LRU width (default: 2 * width)", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, lru_heads, "RG-LRU gate blocks (default: num_heads)", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, conv_width, "causal temporal convolution width", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, min_rad, "RG-LRU minimum radius of a at initialisation", Check::in_open(0, 0.999)),
      TRECVIT_MEMBER_FIELD(C, rep_size, "pre-logits width", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, num_classes, "classes", Check::at_least(1)),
      TRECVIT_MEMBER_FIELD(C, readout, "clip logits from the mean over frames or the last frame",
                           Check::one_of({"mean", "last"})),
  });
  return table;
}

std::vector<FieldInfo> config_fields() { return config_table().infos(); }

TRecViTConfig config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": expected a JSON object");
  TRecViTConfig c;
  nlohmann::json scalars = j;
  for (auto k : {"image_size", "channel_mixer", "layer_channel_mixers"}) scalars.erase(k);
  try {
    config_table().read(c, scalars, "a model config", "image_size, channel_mixer, layer_channel_mixers");
  } catch (const FieldError& e) {
    fail(source, e.field, e.reason);
  }
  if (!scalars.contains("lru_width")) c.lru_width = 2 * c.width;
  if (!scalars.contains("lru_heads")) c.lru_heads = c.num_heads;
  if (j.contains("image_size")) {
    const auto& v = j["image_size"];
    if (v.is_number_integer()) {
      c.image_height = c.image_width = get_int(j, source, "image_size", 1);
    } else if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer()) {
      c.image_height = v[0].get<int64_t>();
      c.image_width = v[1].get<int64_t>();
    } else {
      fail(source, "image_size", "must be an integer or [height, width], got " + v.dump());
    }
  }
  if (j.contains("channel_mixer")) c.channel_mixer = mixer_from_json(j["channel_mixer"], source, "channel_mixer");
  if (j.contains("layer_channel_mixers")) {
    const auto& lm = j["layer_channel_mixers"];
    if (!lm.is_object()) fail(source, "layer_channel_mixers", "must be an object {\"<layer>\": {mixer}}");
    for (auto it = lm.begin(); it != lm.end(); ++it) {
      const std::string f = "layer_channel_mixers." + it.key();
      int64_t layer = parse_int(it.key()).value_or(-1);
      if (std::to_string(layer) != it.key()) layer = -1;  // "01", "-0": one spelling
      if (layer < 0) fail(source, f, "key must be a layer index written plainly (0, 1, ...)");
      c.layer_mixers[layer] = mixer_from_json(*it, source, f);
    }
  }
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(source + ": " + e.what());
  }
  return c;
}

nlohmann::json config_to_json(const TRecViTConfig& c) {
  nlohmann::json j = config_table().write(c);
  if (c.image_height == c.image_width)
    j["image_size"] = c.image_height;
  else
    j["image_size"] = {c.image_height, c.image_width};
  auto mixer = [](const ChannelMixerOptions& m) { return m.to_json(); };
  j["channel_mixer"] = mixer(c.channel_mixer);
  if (!c.layer_mixers.empty()) {
    nlohmann::json lm = nlohmann::json::object();
    for (auto& [layer, m] : c.layer_mixers) lm[std::to_string(layer)] = mixer(m);
    j["layer_channel_mixers"] = lm;
  }
  return j;
}

TRecViTConfig load_config(const std::string& path) {
  if (const auto why = unreadable_reason(path); !why.empty()) throw ConfigError("config " + path + ": " + why);
  std::ifstream f(path);
  if (!f) throw ConfigError("config " + path + ": cannot open file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("config " + path + ": invalid JSON: " + plain_json_error(e));
  }
  // A file that gives no size would silently be the 137M-parameter base model.
  for (const char* field : {"width", "depth"})
    if (!j.is_object() || !j.contains(field))
      throw ConfigError("config " + path + ": missing '" + field + "' (a model config states its size: width, depth, ...)");
  return config_from_json(j, "config " + path);
}

}  // namespace trecvit

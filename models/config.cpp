#include "models/config.h"

#include <fstream>
#include <set>

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

ChannelMixerOptions mixer_from_json(const nlohmann::json& j, const std::string& source, const std::string& field) {
  if (!j.is_object()) fail(source, field, "must be an object like {\"type\": \"mlp\"}, got " + j.dump());
  ChannelMixerOptions m;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string k = it.key();
    if (k == "type") {
      if (!it->is_string()) fail(source, field + ".type", "must be a string");
      m.type = it->get<std::string>();
      if (m.type != "mlp") fail(source, field + ".type", "unknown mixer '" + m.type + "' (known: mlp)");
    } else if (k == "hidden") {
      m.hidden = get_int(j, source, k, 1);
    } else {
      fail(source, field + "." + k, "unknown field");
    }
  }
  return m;
}

}  // namespace

ChannelMixerOptions TRecViTConfig::mixer_for_layer(int64_t layer) const {
  auto it = layer_mixers.find(layer);
  ChannelMixerOptions m = it != layer_mixers.end() ? it->second : channel_mixer;
  if (m.hidden == 0) m.hidden = mlp_dim;
  return m;
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
}

TRecViTConfig config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": expected a JSON object");
  TRecViTConfig c;
  static const std::set<std::string> known = {
      "name",      "image_size", "patch_size", "num_frames", "width",      "depth",      "num_heads",
      "mlp_dim",   "lru_width",  "lru_heads",  "conv_width", "min_rad",    "rep_size",   "num_classes",
      "readout",   "channel_mixer", "layer_channel_mixers"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) fail(source, it.key(), "unknown field");
  if (j.contains("name")) {
    if (!j["name"].is_string()) fail(source, "name", "must be a string");
    c.name = j["name"].get<std::string>();
  }
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
  auto opt_int = [&](const char* f, int64_t& dst) {
    if (j.contains(f)) dst = get_int(j, source, f, 1);
  };
  opt_int("patch_size", c.patch_size);
  opt_int("num_frames", c.num_frames);
  opt_int("width", c.width);
  opt_int("depth", c.depth);
  opt_int("num_heads", c.num_heads);
  opt_int("mlp_dim", c.mlp_dim);
  c.lru_width = 2 * c.width;
  c.lru_heads = c.num_heads;
  opt_int("lru_width", c.lru_width);
  opt_int("lru_heads", c.lru_heads);
  opt_int("conv_width", c.conv_width);
  opt_int("rep_size", c.rep_size);
  opt_int("num_classes", c.num_classes);
  if (j.contains("min_rad")) {
    if (!j["min_rad"].is_number()) fail(source, "min_rad", "must be a number");
    c.min_rad = j["min_rad"].get<double>();
  }
  if (j.contains("readout")) {
    if (!j["readout"].is_string()) fail(source, "readout", "must be a string");
    c.readout = j["readout"].get<std::string>();
  }
  if (j.contains("channel_mixer")) c.channel_mixer = mixer_from_json(j["channel_mixer"], source, "channel_mixer");
  if (j.contains("layer_channel_mixers")) {
    const auto& lm = j["layer_channel_mixers"];
    if (!lm.is_object()) fail(source, "layer_channel_mixers", "must be an object {\"<layer>\": {mixer}}");
    for (auto it = lm.begin(); it != lm.end(); ++it) {
      const std::string f = "layer_channel_mixers." + it.key();
      int64_t layer = -1;
      try {
        size_t used = 0;
        layer = std::stoll(it.key(), &used);
        if (used != it.key().size()) layer = -1;
      } catch (const std::exception&) {
      }
      if (layer < 0) fail(source, f, "key must be a layer index");
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
  nlohmann::json j;
  j["name"] = c.name;
  if (c.image_height == c.image_width)
    j["image_size"] = c.image_height;
  else
    j["image_size"] = {c.image_height, c.image_width};
  j["patch_size"] = c.patch_size;
  j["num_frames"] = c.num_frames;
  j["width"] = c.width;
  j["depth"] = c.depth;
  j["num_heads"] = c.num_heads;
  j["mlp_dim"] = c.mlp_dim;
  j["lru_width"] = c.lru_width;
  j["lru_heads"] = c.lru_heads;
  j["conv_width"] = c.conv_width;
  j["min_rad"] = c.min_rad;
  j["rep_size"] = c.rep_size;
  j["num_classes"] = c.num_classes;
  j["readout"] = c.readout;
  auto mixer = [](const ChannelMixerOptions& m) {
    nlohmann::json o{{"type", m.type}};
    if (m.hidden) o["hidden"] = m.hidden;
    return o;
  };
  j["channel_mixer"] = mixer(c.channel_mixer);
  if (!c.layer_mixers.empty()) {
    nlohmann::json lm = nlohmann::json::object();
    for (auto& [layer, m] : c.layer_mixers) lm[std::to_string(layer)] = mixer(m);
    j["layer_channel_mixers"] = lm;
  }
  return j;
}

TRecViTConfig load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw ConfigError("config " + path + ": cannot open file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError("config " + path + ": invalid JSON: " + e.what());
  }
  return config_from_json(j, "config " + path);
}

}  // namespace trecvit

#include "models/config.h"

#include <algorithm>
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

double get_number(const nlohmann::json& v, const std::string& source, const std::string& field) {
  if (!v.is_number()) fail(source, field, "must be a number, got " + v.dump());
  return v.get<double>();
}

std::string get_string(const nlohmann::json& v, const std::string& source, const std::string& field) {
  if (!v.is_string()) fail(source, field, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

ChannelMixerOptions mixer_from_json(const nlohmann::json& j, const std::string& source, const std::string& field) {
  if (!j.is_object()) fail(source, field, "must be an object like {\"type\": \"mlp\"}, got " + j.dump());
  ChannelMixerOptions m;
  if (j.contains("type")) {
    if (!j["type"].is_string()) fail(source, field + ".type", "must be a string");
    m.type = j["type"].get<std::string>();
    const auto& types = channel_mixer_types();
    if (std::find(types.begin(), types.end(), m.type) == types.end())
      fail(source, field + ".type", "unknown mixer '" + m.type + "' (known: mlp, peer, pkm, moe, sigma_moe)");
  }
  const auto& allowed = channel_mixer_fields(m.type);
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string k = it.key(), f = field + "." + k;
    if (k == "type") continue;
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      std::string list;
      for (auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(source, f, "unknown field for a '" + m.type + "' mixer (fields: " + list + ")");
    }
    // Numbers are range-checked here; relations between fields in validate().
    auto integer = [&](int64_t lo) {
      const auto& v = *it;
      if (!v.is_number_integer()) fail(source, f, "must be an integer, got " + v.dump());
      const int64_t x = v.get<int64_t>();
      if (x < lo) fail(source, f, "must be >= " + std::to_string(lo) + ", got " + v.dump());
      return x;
    };
    if (k == "hidden") m.hidden = integer(1);
    else if (k == "num_experts") m.num_experts = integer(1);
    else if (k == "heads") m.heads = integer(1);
    else if (k == "topk") m.topk = integer(1);
    else if (k == "half_topk") m.half_topk = integer(1);
    else if (k == "key_dim") m.key_dim = integer(1);
    else if (k == "expert_size") m.expert_size = integer(1);
    else if (k == "chunk_tokens") m.chunk_tokens = integer(1);
    else if (k == "activation") m.activation = get_string(*it, source, f);
    else if (k == "query_norm") m.query_norm = get_string(*it, source, f);
    else if (k == "aux_weight" || k == "expert_dropout") {
      const double x = get_number(*it, source, f);
      if (!(x >= 0)) fail(source, f, "must be >= 0, got " + it->dump());
      (k == "aux_weight" ? m.aux_weight : m.expert_dropout) = x;
    } else if (k == "sparse_grad") {
      if (!it->is_boolean()) fail(source, f, "must be true or false, got " + it->dump());
      m.sparse_grad = it->get<bool>();
    }
  }
  return m;
}

nlohmann::json mixer_to_json(const ChannelMixerOptions& m) {
  nlohmann::json o{{"type", m.type}};
  auto put = [&](const char* k, int64_t v) {
    if (v) o[k] = v;
  };
  put("hidden", m.hidden);
  put("num_experts", m.num_experts);
  put("heads", m.heads);
  put("topk", m.topk);
  put("half_topk", m.half_topk);
  put("key_dim", m.key_dim);
  put("expert_size", m.expert_size);
  put("chunk_tokens", m.chunk_tokens);
  if (!m.activation.empty()) o["activation"] = m.activation;
  if (!m.query_norm.empty()) o["query_norm"] = m.query_norm;
  if (m.sparse_grad) o["sparse_grad"] = true;
  if (m.aux_weight >= 0) o["aux_weight"] = m.aux_weight;
  if (m.expert_dropout >= 0) o["expert_dropout"] = m.expert_dropout;
  return o;
}

}  // namespace

ChannelMixerOptions TRecViTConfig::mixer_for_layer(int64_t layer) const {
  auto it = layer_mixers.find(layer);
  ChannelMixerOptions m = it != layer_mixers.end() ? it->second : channel_mixer;
  if (m.hidden == 0) m.hidden = mlp_dim;
  return resolve_channel_mixer(m, mlp_dim);
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
  auto check_mixer = [&](const std::string& where, ChannelMixerOptions m) {
    if (m.hidden == 0) m.hidden = mlp_dim;
    const auto [field, reason] = channel_mixer_error(resolve_channel_mixer(m, mlp_dim), width);
    if (!field.empty()) fail(s, where + "." + field, reason);
  };
  if (layer_mixers.size() < size_t(depth)) check_mixer("channel_mixer", channel_mixer);
  for (auto& [layer, m] : layer_mixers) check_mixer("layer_channel_mixers." + std::to_string(layer), m);
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
  auto mixer = mixer_to_json;
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

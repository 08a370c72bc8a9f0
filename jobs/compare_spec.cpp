#include "jobs/compare_spec.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "blocks/file_safety.h"
#include "jobs/run_record.h"
#include "jobs/settings.h"
#include "models/accounting.h"
#include "models/config_locator.h"
#include "blocks/channel_mixer.h"
#include "models/trecvit.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw ConfigError(where + ": " + what); }

void only_fields(const nlohmann::json& j, const std::set<std::string>& known, const std::string& where) {
  if (!j.is_object()) fail(where, "must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(where, "unknown field '" + it.key() + "' (known: " + list + ")");
    }
}

std::string resolve_path(const std::string& p, const fs::path& dir) {
  if (p.empty() || fs::path(p).is_absolute()) return p;
  if (path_exists(dir / p)) return (dir / p).string();  // beside the spec first, then the working folder
  return p;
}

// The value at a dotted path of a model config (created on the way); a path through a
// non-object is an error naming `where`.
nlohmann::json* at_path(nlohmann::json& j, const std::string& path, const std::string& where) {
  nlohmann::json* slot = json_at_path(j, path);
  if (!slot) fail(where, "'" + path + "' is not a field path of the model config (a dotted path through JSON objects)");
  return slot;
}

bool has_path(const nlohmann::json& j, const std::string& path) { return json_find(j, path) != nullptr; }

// The model an arm builds, independent of how its config spells it: scalar fields, and every
// layer's mixer with the type's defaults filled in (an explicit {"type": "mlp"} equals none).
nlohmann::json canonical_model(const TRecViTConfig& c) {
  nlohmann::json j = config_to_json(c);
  for (auto key : {"name", "channel_mixer", "layer_channel_mixers"}) j.erase(key);
  nlohmann::json layers = nlohmann::json::array();
  for (int64_t i = 0; i < c.depth; ++i) layers.push_back(resolve_channel_mixer(c.mixer_for_layer(i), {c.width, c.mlp_dim}).to_json());
  j["mixers"] = layers;
  return j;
}

int64_t cost_of(const ArmCost& c, const std::string& what) {
  if (what == "params_total") return c.params_total;
  if (what == "params_active_per_token") return c.params_active_per_token;
  return c.flops_per_clip;
}

// A merge patch, except that a mixer given with a "type" replaces the base's mixer wholesale
// (merging a PEER's fields into an MLP would make no sense).
nlohmann::json apply_patch(nlohmann::json cfg, nlohmann::json patch) {
  if (patch.contains("channel_mixer") && patch["channel_mixer"].is_object() && patch["channel_mixer"].contains("type")) {
    cfg["channel_mixer"] = patch["channel_mixer"];
    patch.erase("channel_mixer");
  }
  if (patch.contains("layer_channel_mixers") && patch["layer_channel_mixers"].is_object()) {
    auto& layers = patch["layer_channel_mixers"];
    for (auto it = layers.begin(); it != layers.end();) {
      if (it.value().is_object() && it.value().contains("type")) {
        if (!cfg["layer_channel_mixers"].is_object()) cfg["layer_channel_mixers"] = nlohmann::json::object();
        cfg["layer_channel_mixers"][it.key()] = it.value();
        it = layers.erase(it);
      } else {
        ++it;
      }
    }
    if (layers.empty()) patch.erase("layer_channel_mixers");
  }
  cfg.merge_patch(patch);
  return cfg;
}

TRecViTConfig parse_arm(const nlohmann::json& j, const std::string& where) {
  return config_from_json(j, where);  // unknown or out-of-range fields name themselves
}

}  // namespace

nlohmann::json ArmCost::to_json() const {
  return {{"params_total", params_total}, {"params_active_per_token", params_active_per_token},
          {"flops_per_clip", flops_per_clip}, {"flops_router_per_clip", flops_router_per_clip},
          {"flops_experts_per_clip", flops_experts_per_clip}};
}

ArmCost arm_cost(const TRecViTConfig& config, int64_t frames) {
  torch::NoGradGuard ng;
  TRecViT model(config);
  const auto a = account(*model);
  ArmCost c;
  c.params_total = a.params_total;
  int64_t mixer_total = 0, mixer_active = 0, router = 0, experts = 0;
  for (const auto& [layer, m] : a.mixers) {
    mixer_total += m.params_total;
    mixer_active += m.params_active;
    router += m.flops_router;
    experts += m.flops_experts;
  }
  c.params_active_per_token = a.params_total - mixer_total + mixer_active;
  const int64_t T = frames > 0 ? frames : config.num_frames;
  const int64_t tokens = config.num_tokens() * T;
  c.flops_per_clip = a.flops_per_frame * T;
  c.flops_router_per_clip = router * tokens;
  c.flops_experts_per_clip = experts * tokens;
  return c;
}

CompareSpec load_compare_spec(const std::string& path) {
  std::string text, why;
  if (!read_regular_file(path, text, why)) throw ConfigError("compare spec " + path + ": " + why);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  const std::string where = "compare spec " + path;
  if (j.is_discarded()) fail(where, "invalid JSON");
  only_fields(j, {"name", "data", "model", "train", "recipe", "quick", "seeds", "reference", "arms", "sweeps"}, where);
  const fs::path dir = fs::path(path).parent_path();
  CompareSpec s;
  s.path = path;
  s.name = j.value("name", fs::path(path).stem().string());
  if (!j.contains("data")) fail(where, "'data' is required");
  const auto& d = j["data"];
  only_fields(d, {"root", "format", "train_split", "eval_split", "generate"}, where + ": data");
  s.data_root = resolve_path(d.value("root", ""), dir);
  if (s.data_root.empty()) fail(where, "data.root is required");
  s.format = d.value("format", s.format);
  s.train_split = d.value("train_split", s.train_split);
  s.eval_split = d.value("eval_split", s.eval_split);
  s.generate = d.value("generate", "");
  if (!s.generate.empty() && s.generate != "ssf") fail(where, "data.generate: only \"ssf\" can be generated");
  if (s.generate.empty() && !is_folder(s.data_root)) fail(where, "data.root " + s.data_root + " does not exist");
  if (!j.contains("model")) fail(where, "'model' (the base model config) is required");
  try {
    s.model_config = find_config(resolve_path(j["model"].get<std::string>(), dir));
    std::string model_text;
    if (!read_regular_file(s.model_config, model_text, why)) fail("model config " + s.model_config, why);
    s.base_model = nlohmann::json::parse(model_text, nullptr, false);
    if (s.base_model.is_discarded()) fail("model config " + s.model_config, "invalid JSON");
    if (j.contains("train")) s.train_config = find_config(resolve_path(j["train"].get<std::string>(), dir));
  } catch (const std::exception& e) {
    fail(where, e.what());
  }
  if (j.contains("recipe")) {
    const auto& r = j["recipe"];
    only_fields(r, {"steps", "batch_size", "frames", "stride", "sampler", "eval_sampler", "flip", "workers"}, where + ": recipe");
    if (r.contains("steps")) {
      if (!r["steps"].is_number_integer() || r["steps"].get<int64_t>() < 1)
        fail(where, "recipe.steps: must be an integer >= 1, got " + r["steps"].dump());
      s.recipe.steps = r["steps"].get<int64_t>();
    }
    nlohmann::json loader = r;  // the loader fields are the train job's data options, checked by its table
    loader.erase("steps");
    s.recipe.data = data_recipe_from_json(loader, where, s.recipe.data, "recipe.");
  }
  if (j.contains("quick")) {
    only_fields(j["quick"], {"steps", "batch_size", "train_clips", "validation_clips"}, where + ": quick");
    s.quick = j["quick"];
  }
  if (j.contains("seeds")) {
    if (!j["seeds"].is_number_integer() || j["seeds"].get<int64_t>() < 1) fail(where, "seeds: must be an integer >= 1");
    s.seeds = j["seeds"].get<int64_t>();
  }
  if (!j.contains("arms") || !j["arms"].is_array() || j["arms"].empty()) fail(where, "'arms' must be a non-empty list");
  std::set<std::string> names;
  for (const auto& a : j["arms"]) {
    const std::string aw = where + ": arm " + a.value("name", "?");
    only_fields(a, {"name", "note", "model", "match"}, aw);
    Arm arm;
    arm.name = a.value("name", "");
    if (arm.name.empty() || arm.name.find_first_of("/\\ ") != std::string::npos)
      fail(aw, "needs a 'name' without spaces or slashes");
    if (!names.insert(arm.name).second) fail(aw, "the name is used twice");
    arm.note = a.value("note", "");
    if (a.contains("model")) arm.patch = a["model"];
    for (const auto& m : a.value("match", nlohmann::json::array())) {
      only_fields(m, {"what", "arm", "field", "min", "max", "square"}, aw + ": match");
      ArmMatch am{m.value("what", ""), m.value("arm", ""), m.value("field", ""), m.value("min", int64_t{1}),
                  m.value("max", int64_t{65536}), m.value("square", false)};
      if (am.min < 1 || am.max < am.min) fail(aw, "match needs 1 <= min <= max");
      if (am.what != "params_total" && am.what != "params_active_per_token" && am.what != "flops_per_clip")
        fail(aw, "match.what must be params_total, params_active_per_token or flops_per_clip");
      if (am.field.empty() || am.arm.empty()) fail(aw, "match needs 'arm' and 'field'");
      arm.match.push_back(am);
    }
    s.arms.push_back(arm);
  }
  s.reference = j.value("reference", s.arms.front().name);
  if (!names.count(s.reference)) fail(where, "reference: no arm named '" + s.reference + "'");
  for (const auto& sw : j.value("sweeps", nlohmann::json::array())) add_sweep(s, sw.get<std::string>());
  return s;
}

void add_sweep(CompareSpec& spec, const std::string& sweep) {
  const std::string where = "--sweep " + sweep;
  const size_t eq = sweep.find('='), colon = sweep.substr(0, eq).find(':');
  if (eq == std::string::npos || eq == 0) fail(where, "expected [ARM:]FIELD=v1,v2,... (FIELD a dotted path into the model config)");
  const std::string field = colon == std::string::npos ? sweep.substr(0, eq) : sweep.substr(colon + 1, eq - colon - 1);
  std::string arm = colon == std::string::npos ? "" : sweep.substr(0, colon);
  if (arm.empty()) {
    // No arm named: the first whose model has the field (e.g. the first with a PEER for ...topk).
    for (const auto& a : spec.arms) {
      if (has_path(apply_patch(spec.base_model, a.patch), field)) {
        arm = a.name;
        break;
      }
    }
    if (arm.empty()) fail(where, "no arm's model config has the field '" + field + "' (name the arm: ARM:" + field + "=...)");
  }
  const Arm* base = nullptr;
  for (const auto& a : spec.arms)
    if (a.name == arm) base = &a;
  if (!base) fail(where, "no arm named '" + arm + "'");
  // The field must be one the arm's model has: setting it on an arm that removed it (a sweep of
  // PEER's topk over the dense arm) would quietly bring the base's mixer back.
  if (!has_path(apply_patch(spec.base_model, base->patch), field))
    fail(where, "arm '" + arm + "' has no field '" + field + "' in its model config");
  std::stringstream ss(sweep.substr(eq + 1));
  std::string v;
  std::vector<Arm> added;
  while (std::getline(ss, v, ',')) {
    Arm a = *base;
    nlohmann::json value = nlohmann::json::parse(v, nullptr, false);
    if (value.is_discarded()) value = v;  // a bare word: a string
    *at_path(a.patch, field, where) = value;
    a.name = arm + "[" + field.substr(field.rfind('.') + 1) + "=" + v + "]";
    for (const auto& other : spec.arms)
      if (other.name == a.name) a.name = arm + "[" + field + "=" + v + "]";  // another sweep of a same-named field
    for (const auto& other : spec.arms)
      if (other.name == a.name) fail(where, "arm '" + a.name + "' exists already");
    for (const auto& other : added)
      if (other.name == a.name) fail(where, "the value " + v + " is given twice");
    if (a.name.find_first_of("/\\ ") != std::string::npos) fail(where, "values must not hold spaces or slashes");
    a.swept = field + "=" + v;
    added.push_back(a);
  }
  if (added.size() < 2) fail(where, "a sweep needs at least two values");
  for (auto& a : added) spec.arms.push_back(a);
}

void resolve_arms(CompareSpec& spec) {
  const nlohmann::json& base = spec.base_model;
  auto find = [&](const std::string& name) -> Arm* {
    for (auto& a : spec.arms)
      if (a.name == name) return &a;
    return nullptr;
  };
  std::set<std::string> done;
  // Arms without matches first; a match needs its target arm's costs.
  for (size_t before = SIZE_MAX; done.size() < spec.arms.size() && done.size() != before;) {
    before = done.size();
    for (auto& a : spec.arms) {
      if (done.count(a.name)) continue;
      const std::string where = "compare spec " + spec.path + ": arm " + a.name;
      bool ready = true;
      for (const auto& m : a.match) {
        if (!find(m.arm)) fail(where, "match.arm: no arm named '" + m.arm + "'");
        if (m.arm == a.name) fail(where, "match.arm: an arm cannot match itself");
        if (!done.count(m.arm)) ready = false;
      }
      if (!ready) continue;
      nlohmann::json cfg = apply_patch(base, a.patch);
      a.matching.clear();
      for (const auto& m : a.match) {
        const Arm& target = *find(m.arm);
        const int64_t want = cost_of(target.cost, m.what);
        nlohmann::json* slot = at_path(cfg, m.field, where + ": match.field");
        std::map<int64_t, int64_t> probed;  // each probe builds a whole model: never twice
        auto eval = [&](int64_t x) {
          if (auto it = probed.find(x); it != probed.end()) return it->second;
          *slot = x;
          return probed[x] = cost_of(arm_cost(parse_arm(cfg, where), spec.recipe.data.frames), m.what);
        };
        // The cost grows with the field: bisect for the value whose cost is closest to the target.
        auto value_at = [&](int64_t i) { return m.square ? i * i : i; };
        int64_t lo = m.square ? static_cast<int64_t>(std::ceil(std::sqrt(double(m.min)))) : m.min;
        int64_t hi = m.square ? static_cast<int64_t>(std::floor(std::sqrt(double(m.max)))) : m.max;
        if (lo > hi) fail(where, "match: empty range for " + m.field);
        const int64_t c_lo = eval(value_at(lo)), c_hi = eval(value_at(hi));
        if (c_lo > c_hi) fail(where, "match: " + m.what + " falls as " + m.field + " grows; bisection needs it to grow");
        if (want < c_lo || want > c_hi)
          fail(where, "match: " + m.arm + "'s " + m.what + " (" + std::to_string(want) + ") is outside what " + m.field +
                          " in [" + std::to_string(value_at(lo)) + ", " + std::to_string(value_at(hi)) + "] gives (" +
                          std::to_string(c_lo) + " .. " + std::to_string(c_hi) + "): widen min/max");
        while (lo < hi) {
          const int64_t mid = lo + (hi - lo) / 2;
          if (eval(value_at(mid)) < want) lo = mid + 1;
          else hi = mid;
        }
        int64_t best = lo;
        if (lo > (m.square ? static_cast<int64_t>(std::ceil(std::sqrt(double(m.min)))) : m.min) &&
            std::llabs(eval(value_at(lo - 1)) - want) < std::llabs(eval(value_at(lo)) - want))
          best = lo - 1;
        const int64_t got = eval(value_at(best));
        *slot = value_at(best);
        std::ostringstream os;
        os.precision(4);
        os << m.what << " " << got << " = " << double(got) / double(want) << "x " << m.arm << " (" << want
           << ") with " << m.field << " = " << value_at(best);
        a.matching += (a.matching.empty() ? "" : "; ") + os.str();
      }
      a.config = parse_arm(cfg, where);
      a.config_json = config_to_json(a.config);
      a.cost = arm_cost(a.config, spec.recipe.data.frames);
      done.insert(a.name);
    }
  }
  if (done.size() < spec.arms.size()) fail("compare spec " + spec.path, "the arms' matches refer to each other in a cycle");
  for (const auto& a : spec.arms)
    if (a.config.readout != spec.arms.front().config.readout)
      fail("compare spec " + spec.path, "arm '" + a.name + "' changes the readout; every arm must be read out the same way "
                                        "(the report gives both the mean and the last-frame readout)");
  for (size_t i = 0; i < spec.arms.size(); ++i)
    for (size_t k = i + 1; k < spec.arms.size(); ++k) {
      if (canonical_model(spec.arms[i].config) == canonical_model(spec.arms[k].config))
        fail("compare spec " + spec.path, "arms '" + spec.arms[i].name + "' and '" + spec.arms[k].name +
                                              "' do not differ: they resolve to the same model");
    }
}

}  // namespace trecvit

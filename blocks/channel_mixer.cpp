#include "blocks/channel_mixer.h"

#include <mutex>

#include "blocks/mlp.h"
#include "blocks/moe.h"
#include "blocks/peer.h"
#include "blocks/pkm.h"
#include "blocks/sigma_moe.h"

namespace trecvit {
namespace {

struct Registry {
  std::mutex mu;
  // The built-in types, one line each (a static library would drop self-registering files).
  std::vector<ChannelMixerType> types = {mlp_mixer_type(), peer_mixer_type(), pkm_mixer_type(), moe_mixer_type(),
                                         sigma_moe_mixer_type()};
};

Registry& registry() {
  static Registry r;
  return r;
}

MixerContext complete(MixerContext ctx) {
  if (ctx.mlp_dim <= 0) ctx.mlp_dim = 4 * ctx.dim;
  return ctx;
}

}  // namespace

nlohmann::json ChannelMixerOptions::to_json() const {
  nlohmann::json j = {{"type", type}};
  for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
  return j;
}

void register_channel_mixer(ChannelMixerType type) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (auto& t : r.types)
    if (t.name == type.name) {
      t = std::move(type);
      return;
    }
  r.types.push_back(std::move(type));
}

std::vector<std::string> channel_mixer_types() {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (auto& t : r.types) names.push_back(t.name);
  return names;
}

ChannelMixerType channel_mixer_type(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::string known;
  for (auto& t : r.types) {
    if (t.name == name) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  throw FieldError("type", "unknown mixer '" + name + "' (known: " + known + ")");
}

ChannelMixerOptions resolve_channel_mixer(const ChannelMixerOptions& o, const MixerContext& ctx) {
  if (ctx.dim <= 0) throw FieldError("dim", "the model width must be > 0");
  return {o.type, channel_mixer_type(o.type).resolve(o.fields, complete(ctx))};
}

std::shared_ptr<ChannelMixerImpl> make_channel_mixer(const ChannelMixerOptions& o, int64_t dim, int64_t mlp_dim) {
  try {
    TORCH_CHECK(dim > 0, "channel_mixer: the model width must be > 0, got ", dim);
    return channel_mixer_type(o.type).make(o.fields, complete({dim, mlp_dim}));
  } catch (const FieldError& e) {
    TORCH_CHECK(false, "channel_mixer.", e.field, ": ", e.reason);
  }
}

std::string channel_mixers_markdown(const MixerContext& ctx_in) {
  const auto ctx = complete(ctx_in);
  std::string md;
  for (auto& name : channel_mixer_types()) {
    const auto t = channel_mixer_type(name);
    nlohmann::json defaults;
    try {
      defaults = t.resolve(nlohmann::json::object(), ctx);
    } catch (const FieldError&) {
      defaults = nlohmann::json::object();  // no valid default at this width: show none
    }
    md += "## `" + t.name + "`\n\n" + t.doc + "\n\n" + fields_markdown(t.fields, defaults) + "\n";
  }
  return md;
}

}  // namespace trecvit

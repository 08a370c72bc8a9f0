#pragma once
// The channel-mixing slot of a TRecViT layer, and the registry of the mixers that fill it. The
// dense MLP is the default; sparse mixers (PEER, PKM, MoE, sigma-MoE) implement the same
// interface. Each type registers once (name, option table, defaults, checks, factory): config
// parsing, validation, error messages, `trecvit info --options` and docs/OPTIONS.md read it.
#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "blocks/option_fields.h"
#include "blocks/routing_stats.h"

namespace trecvit {

// Honest cost accounting for PEER-vs-MLP comparisons (per token).
struct MixerCost {
  int64_t params_total = 0;
  int64_t params_active = 0;  // parameters touched by one token
  int64_t flops_router = 0;   // query, key scoring, top-k (0 for dense)
  int64_t flops_experts = 0;  // the value computation proper
  int64_t state_bytes = 0;    // per-stream state in streaming (0: stateless)
};

// What every mixer does. Implementations are torch::nn::Cloneable modules too (derive from
// ChannelMixerModule<Derived>), so a model holding them clones like any LibTorch model.
class ChannelMixerImpl {
 public:
  virtual ~ChannelMixerImpl() = default;
  // [..., D] -> [..., D], token-wise.
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  // Auxiliary training loss of the last forward (load balancing, entropy), or undefined.
  virtual torch::Tensor aux_loss() const { return {}; }
  virtual MixerCost cost() const = 0;
  virtual std::string type() const = 0;
  // Routing statistics of a sparse mixer (nullptr for dense ones); see routing_stats.h.
  virtual RoutingStats* routing_stats() { return nullptr; }
  // Parameters that receive row-sparse gradients (sparse_grad): step them with SparseRowAdam.
  virtual std::vector<torch::Tensor> sparse_grad_parameters() const { return {}; }
  virtual torch::nn::Module& module() = 0;
  const torch::nn::Module& module() const { return const_cast<ChannelMixerImpl*>(this)->module(); }
};

template <class Derived>
class ChannelMixerModule : public torch::nn::Cloneable<Derived>, public ChannelMixerImpl {
 public:
  torch::nn::Module& module() override { return *this; }
};

// What a config says about a mixer: its type and the fields it sets; fields left out take the
// type's defaults (resolve_channel_mixer fills them in).
struct ChannelMixerOptions {
  ChannelMixerOptions(std::string type_ = "mlp", nlohmann::json fields_ = nlohmann::json::object())
      : type(std::move(type_)), fields(std::move(fields_)) {}
  std::string type;
  nlohmann::json fields;
  ChannelMixerOptions& set(const std::string& name, nlohmann::json value) {
    fields[name] = std::move(value);
    return *this;
  }
  template <class T>
  T get(const std::string& name) const {
    return fields.at(name).get<T>();
  }
  bool has(const std::string& name) const { return fields.contains(name); }
  nlohmann::json to_json() const;  // {"type": ..., fields...}
};

// What a mixer's defaults may depend on: the model width and its dense MLP width.
struct MixerContext {
  int64_t dim = 0;
  int64_t mlp_dim = 0;  // 0: 4 * dim
};

// One registry entry.
struct ChannelMixerType {
  std::string name, doc;
  std::vector<FieldInfo> fields;
  // All fields with the type's defaults filled in; throws FieldError naming the bad field.
  std::function<nlohmann::json(const nlohmann::json& given, const MixerContext&)> resolve;
  std::function<std::shared_ptr<ChannelMixerImpl>(const nlohmann::json& given, const MixerContext&)> make;
};

// A registry entry for a mixer Impl built from Options: `defaults(ctx)` gives the type's
// options before the config's fields are read, `finish(o, given, ctx)` fills defaults that
// depend on other fields, `check(o)` returns {field, reason} of a violated relation ({} if none).
template <class Impl, class Options>
ChannelMixerType mixer_type(std::string name, std::string doc, FieldTable<Options> table,
                            std::function<Options(const MixerContext&)> defaults,
                            std::function<void(Options&, const nlohmann::json&, const MixerContext&)> finish,
                            std::function<std::pair<std::string, std::string>(const Options&)> check) {
  auto build = [=](const nlohmann::json& given, const MixerContext& ctx) {
    Options o = defaults(ctx);
    table.read(o, given, "a '" + name + "' mixer");
    if (finish) finish(o, given, ctx);
    if (check)
      if (auto [field, reason] = check(o); !field.empty()) throw FieldError(field, reason);
    return o;
  };
  ChannelMixerType t;
  t.name = name;
  t.doc = std::move(doc);
  t.fields = table.infos();
  t.resolve = [=](const nlohmann::json& given, const MixerContext& ctx) { return table.write(build(given, ctx)); };
  t.make = [=](const nlohmann::json& given, const MixerContext& ctx) -> std::shared_ptr<ChannelMixerImpl> {
    return std::make_shared<Impl>(build(given, ctx));
  };
  return t;
}

// Adds (or replaces, by name) a mixer type. Thread-safe; the built-in types are always there.
void register_channel_mixer(ChannelMixerType type);
std::vector<std::string> channel_mixer_types();
// Throws FieldError("type", "unknown mixer 'x' (known: ...)").
ChannelMixerType channel_mixer_type(const std::string& name);

// The given options with every field of the type filled in. Throws FieldError.
ChannelMixerOptions resolve_channel_mixer(const ChannelMixerOptions& options, const MixerContext& ctx);

// Builds the mixer; bad options fail a TORCH_CHECK naming channel_mixer.<field>.
std::shared_ptr<ChannelMixerImpl> make_channel_mixer(const ChannelMixerOptions& options, int64_t dim,
                                                     int64_t mlp_dim = 0);

// docs/OPTIONS.md: every registered type with its fields, defaults (for `ctx`) and checks.
std::string channel_mixers_markdown(const MixerContext& ctx);

}  // namespace trecvit

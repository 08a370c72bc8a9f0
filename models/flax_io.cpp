#include "models/flax_io.h"

#include "blocks/mlp.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace trecvit {
namespace {

std::string pad2(size_t i) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%02zu", i);
  return buf;
}

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

std::vector<FlaxParam> flax_params(TRecViTImpl& m) {
  const auto& c = m.config();
  const int64_t D = c.width, H = c.num_heads, hd = D / H, P = c.patch_size;
  std::vector<FlaxParam> out;
  auto add = [&](std::string key, torch::Tensor p, std::vector<int64_t> shape, bool transpose = false) {
    out.push_back({std::move(key), std::move(p), std::move(shape), transpose});
  };
  auto dense = [&](const std::string& key, torch::nn::Linear& lin) {
    add(key + "/kernel", lin->weight, {lin->weight.size(1), lin->weight.size(0)}, true);
    add(key + "/bias", lin->bias, {lin->bias.size(0)});
  };
  auto norm = [&](const std::string& key, torch::nn::LayerNorm& ln) {
    add(key + "/scale", ln->weight, {D});
    add(key + "/bias", ln->bias, {D});
  };
  add("tokenizer/embedding/kernel", m.embedding->weight, {1, P, P, 3, D}, true);
  add("tokenizer/embedding/bias", m.embedding->bias, {D});
  add("tokenizer/pos_embedding", m.pos_embedding, {1, c.num_patches(), D});
  add("tokenizer/cls", m.cls, {1, 1, D});
  for (size_t i = 0; i < m.layers->size(); ++i) {
    auto layer = m.layers[i]->as<TRecViTLayerImpl>();
    auto& rb = layer->recurrent_block;
    const std::string r = "encoder/residualblock_" + pad2(i);
    add(r + "/temporal_pre_norm/scale", layer->temporal_pre_norm->scale, {D});
    const std::string b = r + "/recurrent_block";
    dense(b + "/linear_y", rb->linear_y);
    dense(b + "/linear_x", rb->linear_x);
    dense(b + "/linear_out", rb->linear_out);
    add(b + "/conv_1d/w", rb->conv_1d->w, rb->conv_1d->w.sizes().vec());
    add(b + "/conv_1d/b", rb->conv_1d->b, rb->conv_1d->b.sizes().vec());
    auto& lru = rb->rg_lru;
    add(b + "/rg_lru/input_gate/w", lru->input_gate_w, lru->input_gate_w.sizes().vec());
    add(b + "/rg_lru/input_gate/b", lru->input_gate_b, lru->input_gate_b.sizes().vec());
    add(b + "/rg_lru/a_gate/w", lru->a_gate_w, lru->a_gate_w.sizes().vec());
    add(b + "/rg_lru/a_gate/b", lru->a_gate_b, lru->a_gate_b.sizes().vec());
    add(b + "/rg_lru/a_param", lru->a_param, lru->a_param.sizes().vec());
    const std::string e = "encoder/encoderblock_" + std::to_string(i);
    norm(e + "/LayerNorm_0", layer->norm1);
    const std::string a = e + "/MultiHeadDotProductAttention_0";
    auto& att = layer->attention;
    for (auto [name, lin] : {std::pair<const char*, torch::nn::Linear*>{"query", &att->query},
                             {"key", &att->key}, {"value", &att->value}}) {
      add(a + "/" + name + "/kernel", (*lin)->weight, {D, H, hd}, true);
      add(a + "/" + name + "/bias", (*lin)->bias, {H, hd});
    }
    add(a + "/out/kernel", att->out->weight, {H, hd, D}, true);
    add(a + "/out/bias", att->out->bias, {D});
    norm(e + "/LayerNorm_1", layer->norm2);
    auto mlp = std::dynamic_pointer_cast<MLPImpl>(layer->mixer);
    TORCH_CHECK(mlp, "npz export: layer ", i, " has a '", layer->mixer->type(),
                "' channel mixer; the released layout holds only MLP blocks");
    dense(e + "/MlpBlock_0/Dense_0", mlp->fc1);
    dense(e + "/MlpBlock_0/Dense_1", mlp->fc2);
  }
  norm("encoder/encoder_norm", m.encoder_norm);
  dense("decoder/pre_logits", m.pre_logits);
  dense("decoder/cls_head", m.cls_head);
  return out;
}

TRecViTConfig infer_config(const NamedArrays& arrays, const std::string& source) {
  std::map<std::string, torch::Tensor> a(arrays.begin(), arrays.end());
  auto need = [&](const std::string& key, int64_t dims) -> const torch::Tensor& {
    auto it = a.find(key);
    if (it == a.end()) throw NpyError(source + ": missing key '" + key + "' (needed to infer the architecture)");
    if (it->second.dim() != dims)
      throw NpyError(source + ": key '" + key + "' has shape " + shape_str(it->second.sizes()) + ", expected " +
                     std::to_string(dims) + " dimensions");
    return it->second;
  };
  TRecViTConfig c;
  c.name = "imported";
  const auto& emb = need("tokenizer/embedding/kernel", 5);
  c.patch_size = emb.size(1);
  c.width = emb.size(4);
  int64_t depth = 0;
  while (a.count("encoder/residualblock_" + pad2(depth) + "/temporal_pre_norm/scale")) ++depth;
  if (depth == 0) throw NpyError(source + ": no 'encoder/residualblock_00/...' keys: not a TRecViT checkpoint");
  c.depth = depth;
  const std::string b = "encoder/residualblock_00/recurrent_block";
  c.lru_width = need(b + "/linear_x/kernel", 2).size(1);
  c.conv_width = need(b + "/conv_1d/w", 2).size(0);
  c.lru_heads = need(b + "/rg_lru/input_gate/w", 3).size(0);
  c.num_heads = need("encoder/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel", 3).size(1);
  c.mlp_dim = need("encoder/encoderblock_0/MlpBlock_0/Dense_0/kernel", 2).size(1);
  c.rep_size = need("decoder/pre_logits/kernel", 2).size(1);
  c.num_classes = need("decoder/cls_head/kernel", 2).size(1);
  const int64_t n = need("tokenizer/pos_embedding", 3).size(1);
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(double(n))));
  if (g * g != n)
    throw NpyError(source + ": " + std::to_string(n) + " position embeddings are not a square grid; pass --config");
  c.image_height = c.image_width = g * c.patch_size;
  c.channel_mixer = ChannelMixerOptions("mlp");
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw NpyError(source + ": inferred architecture is invalid: " + e.what());
  }
  return c;
}

void load_flax_arrays(TRecViTImpl& model, const NamedArrays& arrays, const std::string& source) {
  std::map<std::string, torch::Tensor> a(arrays.begin(), arrays.end());
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  for (auto& p : flax_params(model)) {
    auto it = a.find(p.key);
    if (it == a.end()) throw NpyError(source + ": missing key '" + p.key + "'");
    const auto& arr = it->second;
    if (arr.sizes().vec() != p.flax_shape)
      throw NpyError(source + ": key '" + p.key + "' has shape " + shape_str(arr.sizes()) + ", expected " +
                     shape_str(p.flax_shape));
    if (!arr.is_floating_point()) throw NpyError(source + ": key '" + p.key + "' is not a floating-point array");
    auto v = arr.to(p.param.scalar_type());
    if (p.transpose)
      v = v.reshape({p.param.size(1), p.param.size(0)}).t();
    else
      v = v.reshape(p.param.sizes());
    p.param.copy_(v);
    used.insert(p.key);
  }
  for (auto& [key, arr] : arrays)
    if (!used.count(key)) throw NpyError(source + ": unexpected key '" + key + "' (not part of this architecture)");
}

TRecViT import_npz(const std::string& path, std::optional<TRecViTConfig> config) {
  auto arrays = read_npz(path);
  TRecViTConfig c = config ? *config : infer_config(arrays, path);
  TRecViT model(c);
  load_flax_arrays(*model, arrays, path);
  return model;
}

NamedArrays export_flax_arrays(TRecViTImpl& model) {
  NamedArrays out;
  for (auto& p : flax_params(model)) {
    auto t = p.param.detach().to(torch::kFloat);
    if (p.transpose) t = t.t();
    out.emplace_back(p.key, t.contiguous().reshape(p.flax_shape));
  }
  return out;
}

void export_npz(TRecViTImpl& model, const std::string& path) { write_npz(path, export_flax_arrays(model)); }

}  // namespace trecvit

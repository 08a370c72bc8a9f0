#include "models/accounting.h"

namespace trecvit {

ModelAccount account(TRecViTImpl& model) {
  const auto& c = model.config();
  ModelAccount a;
  auto numel = [](torch::nn::Module& m) {
    int64_t n = 0;
    for (auto& p : m.parameters()) n += p.numel();
    return n;
  };
  auto& comp = a.params_by_component;
  comp["tokenizer"] = model.embedding->weight.numel() + model.embedding->bias.numel() +
                      model.pos_embedding.numel() + model.cls.numel();
  for (size_t i = 0; i < model.layers->size(); ++i) {
    auto layer = model.layers[i]->as<TRecViTLayerImpl>();
    comp["temporal"] += numel(*layer->temporal_pre_norm) + numel(*layer->recurrent_block);
    comp["spatial_attention"] += numel(*layer->norm1) + numel(*layer->attention);
    comp["channel_mixer"] += numel(*layer->norm2) + numel(layer->mixer->module());
    a.mixers["layer" + std::to_string(i)] = layer->mixer->cost();
  }
  comp["encoder_norm"] = numel(*model.encoder_norm);
  comp["pre_logits"] = numel(*model.pre_logits);
  comp["cls_head"] = numel(*model.cls_head);
  for (auto& [k, v] : comp) a.params_total += v;
  a.params_backbone = a.params_total - comp["cls_head"];

  const int64_t D = c.width, L = c.lru_width, N1 = c.num_tokens(), P = c.patch_size;
  auto& f = a.flops_by_component;
  f["tokenizer"] = 2 * c.num_patches() * P * P * 3 * D;
  const int64_t bw = L / c.lru_heads;
  const int64_t temporal_per_token = 2 * (2 * D * L + L * D) + 2 * 2 * L * bw + 2 * c.conv_width * L;
  const int64_t attention_per_token = 2 * 4 * D * D + 2 * 2 * N1 * D;
  for (auto& [name, cost] : a.mixers) {
    f["temporal"] += N1 * temporal_per_token;
    f["spatial_attention"] += N1 * attention_per_token;
    f["channel_mixer"] += N1 * (cost.flops_router + cost.flops_experts);
  }
  f["readout"] = 2 * D * c.rep_size + 2 * c.rep_size * c.num_classes;
  for (auto& [k, v] : f) a.flops_per_frame += v;

  a.state_bytes_per_stream = model.init_stream(1).bytes();
  return a;
}

}  // namespace trecvit

#include "models/trecvit.h"

#include <cmath>

namespace trecvit {

int64_t StreamState::bytes() const {
  int64_t n = frames_seen.nbytes() + z_sum.nbytes();
  for (auto& l : layers) n += l.h.nbytes() + l.conv_tail.nbytes();
  return n;
}

StreamState StreamState::clone() const {
  StreamState c;
  for (auto& l : layers) c.layers.push_back({l.h.clone(), l.conv_tail.clone()});
  c.frames_seen = frames_seen.clone();
  c.z_sum = z_sum.clone();
  c.pool = std::make_shared<TensorPool>();
  return c;
}

TRecViTImpl::TRecViTImpl(const TRecViTConfig& config) : config_(config) {
  config_.validate();
  reset();
}

void TRecViTImpl::reset() {
  const auto& c = config_;
  const int64_t D = c.width, P = c.patch_size;
  embedding = register_module("embedding", torch::nn::Linear(P * P * 3, D));
  pos_embedding = register_parameter("pos_embedding", torch::randn({1, c.num_patches(), D}) / std::sqrt(double(D)));
  cls = register_parameter("cls", torch::zeros({1, 1, D}));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) {
    layers->push_back(TRecViTLayer(TRecViTLayerOptions(D, c.num_heads)
                                       .lru_width(c.lru_width)
                                       .lru_heads(c.lru_heads)
                                       .conv_width(c.conv_width)
                                       .min_rad(c.min_rad)
                                       .final_w_init_variance_scale(2.0 / c.depth)
                                       .channel_mixer(c.mixer_for_layer(i))
                                       .mlp_dim(c.mlp_dim)));
  }
  encoder_norm = register_module("encoder_norm", make_layer_norm(D));
  pre_logits = register_module("pre_logits", torch::nn::Linear(D, c.rep_size));
  cls_head = register_module("cls_head", torch::nn::Linear(c.rep_size, c.num_classes));
  // Flax defaults: lecun_normal kernels (variance 1 / fan_in), zero biases.
  torch::NoGradGuard no_grad;
  for (auto* lin : {&embedding, &pre_logits, &cls_head}) {
    (*lin)->weight.normal_(0, 1.0 / std::sqrt(double((*lin)->weight.size(1))));
    (*lin)->bias.zero_();
  }
}

void TRecViTImpl::set_class_names(std::vector<std::string> names) {
  if (!names.empty() && int64_t(names.size()) != config_.num_classes)
    throw std::invalid_argument(std::to_string(names.size()) + " class names for a model with " +
                                std::to_string(config_.num_classes) + " classes");
  class_names_ = std::move(names);
}

void TRecViTImpl::set_readout(const std::string& readout) {
  TORCH_CHECK(readout == "mean" || readout == "last", "readout: expected mean or last, got '", readout, "'");
  config_.readout = readout;
}

torch::Tensor TRecViTImpl::tokenize(const torch::Tensor& frames) {
  const auto& c = config_;
  TORCH_CHECK(frames.dim() == 5 && frames.size(4) == 3, "TRecViT: frames must be [B, T, H, W, 3], got ",
              frames.sizes());
  TORCH_CHECK(frames.size(2) == c.image_height && frames.size(3) == c.image_width, "TRecViT: frames are ",
              frames.size(2), "x", frames.size(3), " but the model was built for ", c.image_height, "x",
              c.image_width, " (resize or crop first)");
  const int64_t B = frames.size(0), T = frames.size(1), P = c.patch_size, gh = c.grid_h(), gw = c.grid_w();
  // [B, T, gh, P, gw, P, 3] -> [B, gh, gw, T, P, P, 3]: patches token-major, time next.
  // The permute happens before the float conversion: a quarter of the bytes for uint8.
  auto patches = frames.view({B, T, gh, P, gw, P, 3}).permute({0, 2, 4, 1, 3, 5, 6}).reshape({B, gh * gw, T, P * P * 3});
  torch::Tensor x = patches.scalar_type() == torch::kByte ? patches.to(embedding->weight.scalar_type()).div_(255)
                                                          : patches.to(embedding->weight.scalar_type());
  x = embedding(x);                                               // [B, N, T, D]
  x = x + pos_embedding.unsqueeze(2);                             // [1, N, 1, D]
  auto cls_tok = cls.view({1, 1, 1, c.width}).expand({B, 1, T, c.width});
  return torch::cat({cls_tok, x}, 1);                             // [B, N+1, T, D]
}

torch::Tensor TRecViTImpl::encode(torch::Tensor x, StreamState* state, const torch::Tensor& reset_rows) {
  for (size_t i = 0; i < layers->size(); ++i) {
    auto layer = layers[i]->as<TRecViTLayerImpl>();
    x = layer->forward(x, state ? &state->layers[i] : nullptr, reset_rows);
  }
  auto cls_out = x.select(1, 0);                                  // [B, T, D]: only CLS is read out
  return torch::tanh(pre_logits(encoder_norm(cls_out)));          // [B, T, rep]
}

torch::Tensor TRecViTImpl::readout(const torch::Tensor& z) { return cls_head(z); }

torch::Tensor TRecViTImpl::frame_features(const torch::Tensor& frames) {
  return encode(tokenize(frames), nullptr, {});
}

torch::Tensor TRecViTImpl::forward(const torch::Tensor& frames) {
  auto z = frame_features(frames);
  return readout(config_.readout == "last" ? z.select(1, z.size(1) - 1) : z.mean(1));
}

torch::Tensor TRecViTImpl::forward_per_frame(const torch::Tensor& frames) {
  auto z = frame_features(frames);
  if (config_.readout == "last") return readout(z);
  auto count = torch::arange(1, z.size(1) + 1, z.options()).view({1, -1, 1});
  return readout(z.cumsum(1) / count);
}

StreamState TRecViTImpl::init_stream(int64_t batch) {
  StreamState s;
  const auto opts = pos_embedding.options().requires_grad(false);
  for (size_t i = 0; i < layers->size(); ++i)
    s.layers.push_back(layers[i]->as<TRecViTLayerImpl>()->recurrent_block->initial_state(
        batch * config_.num_tokens(), opts));
  s.frames_seen = torch::zeros({batch}, torch::TensorOptions(torch::kLong).device(opts.device()));
  s.z_sum = torch::zeros({batch, config_.rep_size}, opts);
  s.pool = std::make_shared<TensorPool>();
  return s;
}

void TRecViTImpl::reset_stream(StreamState& s, int64_t b) const {
  TORCH_CHECK(b >= 0 && b < s.batch(), "reset_stream: stream ", b, " out of range [0, ", s.batch(), ")");
  const int64_t n = config_.num_tokens();
  for (auto& l : s.layers) {
    l.h.narrow(0, b * n, n).zero_();
    l.conv_tail.narrow(0, b * n, n).zero_();
  }
  s.frames_seen[b] = 0;
  s.z_sum[b].zero_();
}

torch::Tensor TRecViTImpl::encode_stream(StreamState& s, const torch::Tensor& frames) {
  TORCH_CHECK(frames.dim() == 5 && frames.size(0) == s.batch(), "step: frames must be [", s.batch(),
              ", t, H, W, 3], got ", frames.sizes());
  // A stream that has seen no frame starts its sequence here (first-frame rule).
  auto reset_rows = (s.frames_seen == 0).repeat_interleave(config_.num_tokens());
  return encode(tokenize(frames), &s, reset_rows);  // [B, t, rep]
}

torch::Tensor TRecViTImpl::step(StreamState& s, const torch::Tensor& frames) {
  TensorPool::Scope pooled(s.pool.get());
  auto z = encode_stream(s, frames);
  const int64_t t = frames.size(1);
  torch::Tensor logits;
  if (config_.readout == "last") {
    logits = readout(z);
  } else {
    auto seen = s.frames_seen.to(z.scalar_type()).view({-1, 1, 1});
    auto count = seen + torch::arange(1, t + 1, z.options()).view({1, -1, 1});
    logits = readout((s.z_sum.unsqueeze(1) + z.cumsum(1)) / count);
  }
  s.z_sum += z.sum(1).detach();
  s.frames_seen += t;
  return logits;
}

torch::Tensor TRecViTImpl::advance(StreamState& s, const torch::Tensor& frames, const torch::Tensor& streams) {
  TensorPool::Scope pooled(s.pool.get());
  const bool all = !streams.defined() ||
                   (streams.numel() == s.batch() && streams.equal(torch::arange(s.batch(), streams.options())));
  if (all) {
    auto z = encode_stream(s, frames);
    s.z_sum += z.sum(1).detach();
    s.frames_seen += frames.size(1);
    return z;
  }
  TORCH_CHECK(streams.dim() == 1 && streams.scalar_type() == torch::kLong, "advance: streams must be int64 [b]");
  TORCH_CHECK(streams.numel() == 0 || (streams.min().item<int64_t>() >= 0 && streams.max().item<int64_t>() < s.batch()),
              "advance: a stream index is outside [0, ", s.batch(), ")");
  TORCH_CHECK(std::get<0>(at::_unique(streams)).numel() == streams.numel(), "advance: streams must be distinct");
  // Gather the listed streams' rows, advance them as one batch, scatter them back.
  const int64_t n = config_.num_tokens();
  auto rows = (streams.unsqueeze(1) * n + torch::arange(n, streams.options()).unsqueeze(0)).flatten();
  StreamState sub;
  for (auto& l : s.layers) sub.layers.push_back({l.h.index_select(0, rows), l.conv_tail.index_select(0, rows)});
  sub.frames_seen = s.frames_seen.index_select(0, streams);
  sub.z_sum = s.z_sum.index_select(0, streams);
  auto z = encode_stream(sub, frames);
  for (size_t i = 0; i < s.layers.size(); ++i) {
    s.layers[i].h.index_copy_(0, rows, sub.layers[i].h);
    s.layers[i].conv_tail.index_copy_(0, rows, sub.layers[i].conv_tail);
  }
  s.z_sum.index_copy_(0, streams, sub.z_sum + z.sum(1).detach());
  s.frames_seen.index_copy_(0, streams, sub.frames_seen + frames.size(1));
  return z;
}

torch::Tensor TRecViTImpl::aux_loss() {
  auto total = torch::zeros({}, pos_embedding.options());
  for (size_t i = 0; i < layers->size(); ++i) {
    auto aux = layers[i]->as<TRecViTLayerImpl>()->mixer->aux_loss();
    if (aux.defined()) total = total + aux;
  }
  return total;
}

void TRecViTImpl::collect_routing_stats(bool on) {
  for (size_t i = 0; i < layers->size(); ++i)
    if (auto* s = layers[i]->as<TRecViTLayerImpl>()->mixer->routing_stats()) {
      s->reset();
      s->enable(on);
    }
}

std::map<int64_t, RoutingSummary> TRecViTImpl::routing_stats() {
  std::map<int64_t, RoutingSummary> out;
  for (size_t i = 0; i < layers->size(); ++i)
    if (auto* s = layers[i]->as<TRecViTLayerImpl>()->mixer->routing_stats()) out[int64_t(i)] = s->summary();
  return out;
}

std::vector<torch::Tensor> TRecViTImpl::sparse_grad_parameters() {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < layers->size(); ++i)
    for (auto& p : layers[i]->as<TRecViTLayerImpl>()->mixer->sparse_grad_parameters()) out.push_back(p);
  return out;
}

}  // namespace trecvit

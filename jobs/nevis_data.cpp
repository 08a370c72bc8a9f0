#include "jobs/nevis_data.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <functional>
#include <numeric>
#include <random>

namespace trecvit {
namespace {

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of a combined key
  uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

NevisBatchSource::NevisBatchSource(const data::NevisSplit& split, int64_t num_classes, bool multi_label, int64_t size,
                                   int64_t batch, data::CropOptions crop, uint64_t seed, int64_t rank, int64_t world)
    : split_(split), num_classes_(num_classes), size_(size), batch_(batch), rank_(rank), world_(world),
      multi_label_(multi_label), crop_(crop), seed_(seed) {
  if (split.size() == 0) throw std::invalid_argument("NevisBatchSource: empty split");
  if (world < 1 || rank < 0 || rank >= world) throw std::invalid_argument("NevisBatchSource: rank outside [0, world)");
  shuffle();
}

void NevisBatchSource::shuffle() {
  order_.resize(split_.size());
  std::iota(order_.begin(), order_.end(), 0);
  std::shuffle(order_.begin(), order_.end(), std::mt19937_64(mix(seed_, uint64_t(epoch_))));
}

void NevisBatchSource::restore(const nlohmann::json& position) {
  epoch_ = position.at("epoch").get<int64_t>();
  cursor_ = position.at("cursor").get<int64_t>();
  shuffle();
}

int64_t NevisBatchSource::batches_per_epoch() const {
  return std::max<int64_t>(1, split_.size() / (batch_ * world_));
}

// Every rank walks the same global stream of batch x world samples per step and keeps every
// world-th one from its rank on (augmentation seeded by the global position), so world ranks of
// batch b see exactly one process's batches of b x world.
Batch NevisBatchSource::next() {
  std::vector<int64_t> picks(batch_);
  std::vector<uint64_t> seeds(batch_);
  for (int64_t g = 0; g < batch_ * world_; ++g) {
    if (cursor_ == int64_t(order_.size())) {
      ++epoch_;
      cursor_ = 0;
      shuffle();
    }
    if (g % world_ == rank_) {
      seeds[g / world_] = mix(mix(seed_, uint64_t(epoch_)), uint64_t(cursor_) + 1);
      picks[g / world_] = order_[cursor_];
    }
    ++cursor_;
  }
  Batch out;
  out.frames = torch::empty({batch_, 1, size_, size_, 3}, torch::kByte);
  at::parallel_for(0, batch_, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      auto dst = out.frames[b][0];
      data::random_resized_crop(split_.images[picks[b]], dst, crop_, seeds[b]);
    }
  });
  out.labels = torch::empty({batch_}, torch::kLong);
  for (int64_t b = 0; b < batch_; ++b) out.labels[b] = split_.labels[picks[b]];
  if (multi_label_) {
    out.targets = torch::zeros({batch_, num_classes_});
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t c : split_.multi_labels[picks[b]]) out.targets[b][c] = 1.0f;
  }
  return out;
}

torch::Tensor nevis_eval_frames(const data::NevisSplit& split, int64_t size, int64_t begin, int64_t end) {
  auto frames = torch::empty({end - begin, 1, size, size, 3}, torch::kByte);
  at::parallel_for(begin, end, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      auto dst = frames[i - begin][0];
      data::center_crop(split.images[i], dst);
    }
  });
  return frames;
}

namespace {

// `f` of the first n images in batches, this rank's contiguous share only, put together on
// every rank.
torch::Tensor sharded_rows(int64_t n, int64_t batch, int64_t columns, dist::Group* group,
                           const std::function<torch::Tensor(int64_t, int64_t)>& f) {
  const auto [begin, end] = group ? dist::shard(n, group->rank(), group->world()) : std::pair<int64_t, int64_t>{0, n};
  std::vector<torch::Tensor> parts;
  for (int64_t b = begin; b < end; b += batch) parts.push_back(f(b, std::min(end, b + batch)));
  auto mine = parts.empty() ? torch::empty({0, columns}) : torch::cat(parts);
  return group && group->world() > 1 ? dist::gather_rows(*group, mine, begin, n) : mine;
}

}  // namespace

torch::Tensor nevis_logits(TRecViTImpl& model, const data::NevisSplit& split, int64_t batch, dist::Group* group) {
  model.eval();
  torch::NoGradGuard ng;
  const int64_t size = model.config().image_height;
  return sharded_rows(split.size(), batch, model.config().num_classes, group, [&](int64_t b, int64_t e) {
    return model.forward(nevis_eval_frames(split, size, b, e));
  });
}

torch::Tensor nevis_embeddings(TRecViTImpl& model, const data::NevisSplit& split, int64_t batch, int64_t limit,
                               dist::Group* group) {
  model.eval();
  torch::NoGradGuard ng;
  const int64_t size = model.config().image_height, n = limit > 0 ? std::min(limit, split.size()) : split.size();
  return sharded_rows(n, batch, model.config().rep_size, group, [&](int64_t b, int64_t e) {
    return model.frame_features(nevis_eval_frames(split, size, b, e)).select(1, 0);
  });
}

torch::Tensor nevis_multi_hot(const data::NevisSplit& split, int64_t num_classes) {
  auto t = torch::zeros({split.size(), num_classes});
  auto a = t.accessor<float, 2>();
  for (int64_t i = 0; i < split.size(); ++i)
    for (int64_t c : split.multi_labels[i]) a[i][c] = 1;
  return t;
}

double mean_average_precision(const torch::Tensor& scores, const torch::Tensor& targets) {
  double sum = 0;
  int64_t classes = 0;
  for (int64_t c = 0; c < scores.size(1); ++c) {
    auto t = targets.select(1, c);
    const double positives = t.sum().item<double>();
    if (positives == 0) continue;
    auto order = scores.select(1, c).argsort(0, /*descending=*/true);
    auto hits = t.index_select(0, order).cumsum(0);
    auto ranks = torch::arange(1, scores.size(0) + 1, torch::kFloat);
    auto precision = hits / ranks;
    sum += (precision * t.index_select(0, order)).sum().item<double>() / positives;
    ++classes;
  }
  return classes == 0 ? std::nan("") : sum / double(classes);
}

NevisMetrics nevis_metrics(const torch::Tensor& logits, const data::NevisSplit& split, int64_t num_classes,
                           bool multi_label) {
  NevisMetrics m;
  m.examples = split.size();
  if (m.examples == 0) return m;
  if (multi_label) {
    m.map = mean_average_precision(logits, nevis_multi_hot(split, num_classes));
    return m;
  }
  auto labels = torch::tensor(split.labels, torch::kLong);
  m.top1 = (logits.argmax(1) == labels).to(torch::kDouble).mean().item<double>();
  const int64_t k = std::min<int64_t>(5, num_classes);
  m.top5 = (std::get<1>(logits.topk(k, 1)) == labels.unsqueeze(1)).any(1).to(torch::kDouble).mean().item<double>();
  m.cross_entropy = torch::nn::functional::cross_entropy(logits, labels).item<double>();
  return m;
}

nlohmann::json NevisMetrics::to_json() const {
  nlohmann::json j = {{"examples", examples}};
  if (map >= 0 || std::isnan(map)) {
    j["map"] = std::isnan(map) ? nlohmann::json() : nlohmann::json(map);  // null: no positives to rank
  } else {
    j["top1"] = top1;
    j["top5"] = top5;
    j["cross_entropy"] = cross_entropy;
  }
  return j;
}

}  // namespace trecvit

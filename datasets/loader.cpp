#include "datasets/loader.h"

#include <algorithm>

#include "datasets/transforms.h"
#include "video_io/video_reader.h"

namespace trecvit::data {

torch::Tensor load_clip(const VideoItem& item, const LoaderOptions& o, std::mt19937_64& rng) {
  video::ReaderOptions ro;
  ro.decoder.threads = o.decoder_threads;
  video::VideoReader reader(item.path, ro);
  const int64_t n = reader.size();
  if (n <= 0) throw std::runtime_error("no decodable frames");
  std::vector<int64_t> idx;
  if (o.sampler == "random")
    idx = random_clip(n, o.clip, rng);
  else if (o.sampler == "segments")
    idx = uniform_segments(n, o.clip.frames, o.train, &rng);
  else
    idx = center_clip(n, o.clip);
  // Decode straight to the size the transforms need: the short side for a random crop, the
  // short side plus the centred crop for evaluation.
  const int side = static_cast<int>(std::max(o.height, o.width));
  auto clip = reader.frames(idx, o.train ? video::FrameSize::short_side_crop(side, 0, 0)
                                         : video::model_input_size(o.height, o.width));
  if (o.shuffle_frames) {
    clip = clip.index_select(0, torch::tensor(random_permutation(clip.size(0), rng), torch::kLong));
  }
  if (o.train) {
    clip = random_resized_crop(clip, o.height, o.width, rng, o.min_crop_scale);
    if (o.color_jitter > 0) clip = color_jitter(clip, o.color_jitter, o.color_jitter, o.color_jitter, rng);
  } else if (clip.size(1) != o.height || clip.size(2) != o.width) {
    clip = center_crop(clip, o.height, o.width);
  }
  return clip;
}

VideoLoader::VideoLoader(DatasetSplit split, LoaderOptions options) : split_(std::move(split)), opt_(std::move(options)) {
  if (opt_.batch_size <= 0 || opt_.workers <= 0 || opt_.prefetch <= 0 || opt_.world <= 0 || opt_.rank < 0 ||
      opt_.rank >= opt_.world)
    throw DatasetError("loader: batch_size, workers, prefetch and world must be > 0 and rank in [0, world)");
  if (static_cast<int64_t>(split_.items.size()) < opt_.batch_size * opt_.world)
    throw DatasetError("loader: " + std::to_string(split_.items.size()) + " samples, fewer than one batch of " +
                       std::to_string(opt_.batch_size) + (opt_.world > 1 ? " on each of " + std::to_string(opt_.world) + " ranks" : ""));
  for (auto& it : split_.items)
    if (it.label < 0) throw DatasetError("loader: " + it.path + " has no label (a test split cannot be trained on)");
  start();
}

VideoLoader::~VideoLoader() { stop(); }

// The remainder that does not fill a batch on every rank is dropped, the same on every rank.
int64_t VideoLoader::batches_per_epoch() const {
  return static_cast<int64_t>(split_.items.size()) / (opt_.batch_size * opt_.world);
}

// The whole split shuffled with the shared seed, then dealt out: this rank's k-th sample is
// global position k * world + rank (PyTorch's DistributedSampler). Batch i on every rank
// together is global batch i of one process with world x the batch size.
std::vector<int64_t> VideoLoader::global_order(int64_t epoch) const {
  std::vector<int64_t> order(split_.items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  if (opt_.shuffle) {
    std::mt19937_64 rng(opt_.seed * 7919 + static_cast<uint64_t>(epoch));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  }
  return order;
}

std::vector<int64_t> VideoLoader::epoch_order(int64_t epoch) const {
  {
    std::lock_guard<std::mutex> lock(order_mu_);  // every batch of an epoch asks: shuffle once
    if (order_epoch_ == epoch) return order_;
  }
  const auto all = global_order(epoch);
  std::vector<int64_t> mine;
  for (size_t k = static_cast<size_t>(opt_.rank); k < all.size(); k += static_cast<size_t>(opt_.world)) mine.push_back(all[k]);
  std::lock_guard<std::mutex> lock(order_mu_);
  order_epoch_ = epoch;
  order_ = mine;
  return mine;
}

LoadedBatch VideoLoader::make_batch(int64_t epoch, int64_t batch) {
  const auto order = epoch_order(epoch);
  const int64_t B = opt_.batch_size;
  std::vector<torch::Tensor> clips;
  std::vector<int64_t> labels, ids;
  int64_t pos = batch * B, failures_in_a_row = 0;
  while (static_cast<int64_t>(clips.size()) < B) {
    if (failures_in_a_row >= static_cast<int64_t>(order.size()))
      throw DatasetError("loader: no sample of this split could be decoded");
    const auto& item = split_.items[order[pos % order.size()]];
    // The sample's randomness depends only on (seed, epoch, global position): neither thread
    // timing nor the number of ranks can change it.
    const uint64_t global = static_cast<uint64_t>(pos) * static_cast<uint64_t>(opt_.world) + static_cast<uint64_t>(opt_.rank);
    std::mt19937_64 rng(opt_.seed ^ (static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ULL) ^
                        (global * 0xBF58476D1CE4E5B9ULL));
    ++pos;
    try {
      auto clip = load_clip(item, opt_, rng);
      int64_t label = item.label;
      if (opt_.train && opt_.horizontal_flip && (rng() & 1)) {
        clip = horizontal_flip(clip);
        if (!opt_.flip_label_map.empty()) label = opt_.flip_label_map.at(label);
      }
      clips.push_back(clip);
      labels.push_back(label);
      ids.push_back(order[(pos - 1) % order.size()]);
      failures_in_a_row = 0;
    } catch (const std::exception& e) {
      ++failures_in_a_row;
      std::lock_guard<std::mutex> lock(mu_);
      ++skipped_;
      if (failures_.size() < 1000) failures_.push_back({item.path, e.what()});
    }
  }
  return {torch::stack(clips), torch::tensor(labels, torch::kLong), std::move(ids)};
}

void VideoLoader::work() {
  for (;;) {
    int64_t epoch, batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Bounded prefetch: stay at most `prefetch` batches ahead of the consumer.
      auto ahead = [&] {
        return (next_epoch_ - want_epoch_) * batches_per_epoch() + (next_batch_ - want_batch_);
      };
      cv_.wait(lock, [&] { return stopping_ || ahead() < opt_.prefetch; });
      if (stopping_) return;
      epoch = next_epoch_;
      batch = next_batch_;
      if (++next_batch_ == batches_per_epoch()) next_batch_ = 0, ++next_epoch_;
    }
    LoadedBatch b;
    std::string error;
    try {
      b = make_batch(epoch, batch);
    } catch (const std::exception& e) {
      error = e.what();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!error.empty() && fatal_.empty()) fatal_ = error;
    ready_[{epoch, batch}] = std::move(b);
    cv_.notify_all();
  }
}

LoadedBatch VideoLoader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto key = std::make_pair(want_epoch_, want_batch_);
  cv_.wait(lock, [&] { return ready_.count(key) > 0 || !fatal_.empty(); });
  if (!fatal_.empty()) throw DatasetError(fatal_);
  LoadedBatch b = std::move(ready_[key]);
  ready_.erase(key);
  if (++want_batch_ == batches_per_epoch()) want_batch_ = 0, ++want_epoch_;
  cv_.notify_all();
  return b;
}

nlohmann::json VideoLoader::position() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {{"epoch", want_epoch_}, {"batch", want_batch_}};
}

void VideoLoader::restore(const nlohmann::json& p) {
  stop();
  // What the discarded prefetch ran into was never trained on: count from the restored position.
  skipped_ = 0;
  failures_.clear();
  fatal_.clear();
  want_epoch_ = next_epoch_ = p.at("epoch").get<int64_t>();
  want_batch_ = next_batch_ = p.at("batch").get<int64_t>();
  if (want_batch_ < 0 || want_batch_ >= batches_per_epoch())
    throw DatasetError("loader: saved position is outside this dataset's epoch (different dataset?)");
  start();
}

int64_t VideoLoader::skipped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skipped_;
}

std::vector<LoadFailure> VideoLoader::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

void VideoLoader::start() {
  stopping_ = false;
  ready_.clear();
  for (int i = 0; i < opt_.workers; ++i) threads_.emplace_back([this] { work(); });
}

void VideoLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace trecvit::data

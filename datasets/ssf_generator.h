#pragma once
// "Something-Something-Fashion": the toolkit's embedded default dataset. A generator that writes
// a real SSv2-format dataset (VP9 .webm at 12 fps, labels.json, train.json, validation.json)
// whose templates are motions of real Fashion-MNIST items, with distractor items and noise.
// Every class has a twin that is its time reverse (left->right / right->left, approaching /
// moving away, clockwise / counterclockwise, appearing / disappearing, up / down), so a
// frame-shuffled clip is ambiguous: only temporal order separates the classes.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace trecvit::data {

struct SSFOptions {
  std::string out_dir;
  int64_t train_clips = 2400;
  int64_t validation_clips = 600;
  int64_t frames = 16;      // per video, at 12 fps
  int64_t size = 64;        // height = width in pixels
  int64_t distractors = 2;  // static items of other classes
  double noise = 10.0;      // std of the per-pixel noise, in 0..255 units
  uint64_t seed = 0;
  int threads = 0;          // 0: all cores
  std::string mnist_dir;    // "" = /usr/share/datasets/fashion-mnist
  // Called from the worker threads after each clip (written or kept); returning false stops the
  // generation early (the annotations are then not written: the dataset stays incomplete).
  std::function<bool()> on_clip;
};

const std::vector<std::string>& ssf_templates();  // with "[something]", as SSv2 writes them

struct SSFReport {
  int64_t written = 0, reused = 0;  // reused: already present from an earlier (interrupted) run
  double seconds = 0;
  bool stopped = false;  // on_clip asked to stop
};

// Writes the dataset under out_dir (videos/<id>.webm). Deterministic from the seed; videos already
// there are kept, so an interrupted run resumes. Train items come from Fashion-MNIST's train
// split, validation items from its test split.
SSFReport generate_ssf(const SSFOptions& options);

// One clip as uint8 [frames, size, size, 3] (what generate_ssf encodes), for tests.
torch::Tensor render_ssf_clip(const torch::Tensor& item, const std::vector<torch::Tensor>& distractors,
                              int64_t template_index, const SSFOptions& options, uint64_t clip_seed);

}  // namespace trecvit::data

#pragma once
// Clip inference as the command line runs it, callable from tests.
#include <torch/torch.h>

#include "models/trecvit.h"

namespace trecvit {

struct Prediction {
  torch::Tensor logits;     // [num_classes]
  torch::Tensor per_frame;  // [T, num_classes] (streaming), undefined unless asked for
};

// frames: [T, H, W, 3] uint8 (or float in [0, 1]). With per_frame, the clip is streamed
// one frame at a time through the causal path and the logits after each frame kept; the
// final logits are then the last row (equal to the offline forward).
Prediction predict_clip(TRecViTImpl& model, const torch::Tensor& frames, bool per_frame);

// A synthetic clip: a bright square moving left to right over a dark, noisy background.
torch::Tensor synthetic_clip(int64_t frames, int64_t height, int64_t width, uint64_t seed = 0);

}  // namespace trecvit

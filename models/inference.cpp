#include "models/inference.h"

#include <ATen/CPUGeneratorImpl.h>

namespace trecvit {

Prediction predict_clip(TRecViTImpl& model, const torch::Tensor& frames, bool per_frame) {
  TORCH_CHECK(frames.dim() == 4 && frames.size(3) == 3, "predict: frames must be [T, H, W, 3], got ",
              frames.sizes());
  torch::NoGradGuard no_grad;
  model.eval();
  Prediction p;
  auto clip = frames.unsqueeze(0);
  if (!per_frame) {
    p.logits = model.forward(clip)[0];
    return p;
  }
  auto state = model.init_stream(1);
  std::vector<torch::Tensor> rows;
  for (int64_t t = 0; t < frames.size(0); ++t) rows.push_back(model.step(state, clip.narrow(1, t, 1))[0][0]);
  p.per_frame = torch::stack(rows);
  p.logits = rows.back();
  return p;
}

torch::Tensor synthetic_clip(int64_t frames, int64_t height, int64_t width, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto clip = torch::randint(0, 40, {frames, height, width, 3}, gen, torch::kByte);
  const int64_t side = std::max<int64_t>(2, std::min(height, width) / 4);
  for (int64_t t = 0; t < frames; ++t) {
    const int64_t x0 = frames > 1 ? t * (width - side) / (frames - 1) : 0;
    const int64_t y0 = (height - side) / 2;
    clip[t].narrow(0, y0, side).narrow(1, x0, side).fill_(220);
  }
  return clip;
}

}  // namespace trecvit

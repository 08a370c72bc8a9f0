#pragma once
// Exact frame access returning LibTorch tensors: uint8 [T, H, W, 3], RGB, as displayed.
//
//   trecvit::video::VideoReader r("clip.webm");
//   auto x = r.clip(0, 16, 2, FrameSize::exact(224, 224));   // frames 0, 2, ..., 30
//
// One reader per thread; many readers may run in parallel (no shared state).
#include <torch/torch.h>

#include "video_io/reader.h"

namespace trecvit::video {

class VideoReader {
 public:
  explicit VideoReader(const std::string& path_or_url, const ReaderOptions& options = {});
  VideoReader(Bytes data, const ReaderOptions& options = {}, const std::string& name = "<memory>");

  const VideoInfo& info() const { return reader_.info(); }
  int64_t size() const { return reader_.info().frames; }
  double timestamp(int64_t i) const { return reader_.timestamp(i); }
  Reader& raw() { return reader_; }

  // Exactly these frames (any order, repeats allowed). Throws VideoError(kIncomplete) naming
  // the missing indices when any cannot be decoded; the overload with a report returns the
  // partial result instead (missing frames are zeros).
  torch::Tensor frames(const std::vector<int64_t>& indices, const FrameSize& size = {});
  torch::Tensor frames(const std::vector<int64_t>& indices, const FrameSize& size, ReadReport* report);
  // Frames start, start + stride, ..., count of them.
  torch::Tensor clip(int64_t start, int64_t count, int64_t stride = 1, const FrameSize& size = {});
  // The frames on screen at these times (seconds from the first frame).
  torch::Tensor frames_at(const std::vector<double>& seconds, const FrameSize& size = {});
  // Every frame, in order.
  torch::Tensor all(const FrameSize& size = {});
  // Into a preallocated contiguous uint8 tensor [indices.size(), H, W, 3] of the right size.
  ReadReport read_into(const std::vector<int64_t>& indices, const FrameSize& size, torch::Tensor& out);

 private:
  Reader reader_;
};

// The usual model input: short side resized to max(height, width) of the model, then the
// centred height x width crop.
FrameSize model_input_size(int64_t height, int64_t width);

}  // namespace trecvit::video

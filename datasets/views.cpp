#include "datasets/views.h"

#include "datasets/samplers.h"
#include "datasets/transforms.h"
#include "video_io/video_reader.h"

namespace trecvit::data {

torch::Tensor load_views(const VideoItem& item, const ViewSpec& spec) {
  if (spec.spatial != 1 && spec.spatial != 3) throw DatasetError("views: spatial views must be 1 or 3");
  video::VideoReader reader(item.path);
  const int64_t n = reader.size();
  if (n <= 0) throw DatasetError(item.path + ": no decodable frames");
  std::vector<std::vector<int64_t>> clips;
  if (spec.sampler == "segments") {
    for (int64_t v = 0; v < spec.temporal; ++v) clips.push_back(segments_at(n, spec.clip.frames, (v + 0.5) / spec.temporal));
  } else {
    clips = temporal_views(n, spec.clip, spec.temporal);
  }
  std::vector<torch::Tensor> views;
  const auto size = video::FrameSize::short_side_crop(static_cast<int>(spec.size), 0, 0);
  for (auto& idx : clips) {
    auto frames = reader.frames(idx, size);
    if (spec.spatial == 1)
      views.push_back(center_crop(frames, spec.size, spec.size));
    else
      for (auto& v : three_crop(frames, spec.size)) views.push_back(v);
  }
  return torch::stack(views);
}

}  // namespace trecvit::data

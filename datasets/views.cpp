#include "datasets/views.h"

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
    for (int64_t v = 0; v < spec.temporal; ++v) {
      // Segment midpoints shifted by v / temporal of a segment: distinct, evenly spread views.
      std::vector<int64_t> idx(spec.clip.frames);
      const double len = double(n) / spec.clip.frames;
      for (int64_t s = 0; s < spec.clip.frames; ++s)
        idx[s] = std::min<int64_t>(n - 1, static_cast<int64_t>(len * (s + (v + 0.5) / spec.temporal)));
      clips.push_back(idx);
    }
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

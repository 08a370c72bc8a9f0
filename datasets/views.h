#pragma once
// Evaluation views of one video: N temporal clips x M spatial crops (M = 1: centre, 3: along the
// long side), the way SSv2/Kinetics results are reported.
#include <torch/torch.h>

#include "datasets/annotations.h"
#include "datasets/samplers.h"

namespace trecvit::data {

struct ViewSpec {
  ClipSpec clip;
  std::string sampler = "center";  // "center" clips or TSN "segments" (temporal views then shift the segments' offsets)
  int64_t temporal = 1, spatial = 1;
  int64_t size = 112;              // square crops of this size, from frames with this short side
};

// [temporal * spatial, frames, size, size, 3] uint8. Throws on a video that cannot be decoded.
torch::Tensor load_views(const VideoItem& item, const ViewSpec& spec);

}  // namespace trecvit::data

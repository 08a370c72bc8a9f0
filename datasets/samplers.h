#pragma once
// Which frames of a video make a clip. All samplers return indices in [0, n) for a video of n
// frames; a clip longer than the video follows the ShortVideoPolicy.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace trecvit::data {

enum class ShortVideoPolicy { kRepeatLast, kLoop };
ShortVideoPolicy parse_short_video_policy(const std::string& s);  // "repeat_last" | "loop"

struct ClipSpec {
  int64_t frames = 16;  // frames per clip
  int64_t stride = 1;   // frame interval within the clip
  ShortVideoPolicy policy = ShortVideoPolicy::kRepeatLast;
  int64_t span() const { return (frames - 1) * stride + 1; }  // frames the clip covers
};

// frames start, start + stride, ... mapped into [0, n) by the policy.
std::vector<int64_t> clip_at(int64_t n, int64_t start, const ClipSpec& spec);
// Training: a uniformly random start among those that fit (0 when the video is too short).
std::vector<int64_t> random_clip(int64_t n, const ClipSpec& spec, std::mt19937_64& rng);
// The clip centred in the video.
std::vector<int64_t> center_clip(int64_t n, const ClipSpec& spec);
// TSN-style: the video split into spec.frames equal segments, one frame from each (random
// within its segment when training, the segment's middle when evaluating). Covers the whole video.
std::vector<int64_t> uniform_segments(int64_t n, int64_t segments, bool random, std::mt19937_64* rng);
// The same segments read at a fixed fraction `offset` in [0, 1) of each (0.5: the middles);
// evaluation's temporal views v = 0..V-1 use offset (v + 0.5) / V: distinct, evenly spread.
std::vector<int64_t> segments_at(int64_t n, int64_t segments, double offset);
// A uniformly random permutation of 0..n-1 (Fisher-Yates on rng): frame-shuffling ablations.
std::vector<int64_t> random_permutation(int64_t n, std::mt19937_64& rng);
// Evaluation: `views` clips with evenly spaced starts from the first to the last that fits.
std::vector<std::vector<int64_t>> temporal_views(int64_t n, const ClipSpec& spec, int64_t views);

}  // namespace trecvit::data

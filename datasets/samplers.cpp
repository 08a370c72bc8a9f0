#include "datasets/samplers.h"

#include <algorithm>
#include <stdexcept>

namespace trecvit::data {

ShortVideoPolicy parse_short_video_policy(const std::string& s) {
  if (s == "repeat_last") return ShortVideoPolicy::kRepeatLast;
  if (s == "loop") return ShortVideoPolicy::kLoop;
  throw std::invalid_argument("short-video policy must be 'repeat_last' or 'loop', got '" + s + "'");
}

std::vector<int64_t> clip_at(int64_t n, int64_t start, const ClipSpec& spec) {
  if (n <= 0) throw std::invalid_argument("clip_at: the video has no frames");
  std::vector<int64_t> out(spec.frames);
  for (int64_t i = 0; i < spec.frames; ++i) {
    const int64_t f = start + i * spec.stride;
    out[i] = spec.policy == ShortVideoPolicy::kLoop ? f % n : std::min(f, n - 1);
  }
  return out;
}

std::vector<int64_t> random_clip(int64_t n, const ClipSpec& spec, std::mt19937_64& rng) {
  const int64_t room = n - spec.span();
  const int64_t start = room > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(room + 1)) : 0;
  return clip_at(n, start, spec);
}

std::vector<int64_t> center_clip(int64_t n, const ClipSpec& spec) {
  return clip_at(n, std::max<int64_t>(0, (n - spec.span()) / 2), spec);
}

std::vector<int64_t> uniform_segments(int64_t n, int64_t segments, bool random, std::mt19937_64* rng) {
  if (n <= 0) throw std::invalid_argument("uniform_segments: the video has no frames");
  std::vector<int64_t> out(segments);
  const double len = double(n) / double(segments);
  for (int64_t s = 0; s < segments; ++s) {
    const int64_t lo = static_cast<int64_t>(s * len);
    const int64_t hi = std::max(lo, static_cast<int64_t>((s + 1) * len) - 1);
    const int64_t pick = random && rng ? lo + static_cast<int64_t>((*rng)() % static_cast<uint64_t>(hi - lo + 1))
                                       : (lo + hi) / 2;
    out[s] = std::min(pick, n - 1);
  }
  return out;
}

std::vector<int64_t> segments_at(int64_t n, int64_t segments, double offset) {
  if (n <= 0) throw std::invalid_argument("segments_at: the video has no frames");
  std::vector<int64_t> idx(segments);
  const double len = double(n) / segments;
  for (int64_t s = 0; s < segments; ++s) idx[s] = std::min<int64_t>(n - 1, static_cast<int64_t>(len * (s + offset)));
  return idx;
}

std::vector<int64_t> random_permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  for (int64_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng() % i]);
  return perm;
}

std::vector<std::vector<int64_t>> temporal_views(int64_t n, const ClipSpec& spec, int64_t views) {
  std::vector<std::vector<int64_t>> out;
  const int64_t last = std::max<int64_t>(0, n - spec.span());
  for (int64_t v = 0; v < views; ++v) {
    const int64_t start = views == 1 ? last / 2 : last * v / (views - 1);
    out.push_back(clip_at(n, start, spec));
  }
  return out;
}

}  // namespace trecvit::data

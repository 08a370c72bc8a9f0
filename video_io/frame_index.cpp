#include "video_io/frame_index.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "video_io/error.h"
#include "video_io/ffmpeg_raii.h"

namespace trecvit::video {

double FrameIndex::seconds(int64_t i) const {
  return static_cast<double>(pts[i] - pts[0]) * tb_num / tb_den;
}

int64_t FrameIndex::keyframe_at_or_before(int64_t i) const {
  for (int64_t j = i; j >= 0; --j)
    if (key[j]) return j;
  return 0;
}

int64_t FrameIndex::find(int64_t ts) const {
  auto it = std::lower_bound(pts.begin(), pts.end(), ts);
  return (it != pts.end() && *it == ts) ? it - pts.begin() : -1;
}

int64_t FrameIndex::at_time(double t) const {
  if (pts.empty()) return -1;
  // Compare in ticks; the epsilon absorbs the rounding of a time printed from these pts.
  const double ticks = t * tb_den / tb_num + static_cast<double>(pts[0]) + 1e-6;
  auto it = std::upper_bound(pts.begin(), pts.end(), ticks, [](double v, int64_t p) { return v < p; });
  return std::max<int64_t>(0, (it - pts.begin()) - 1);
}

FrameIndex build_index(AVFormatContext* fmt, int stream, bool* missing_timestamps) {
  FrameIndex index;
  const AVRational tb = fmt->streams[stream]->time_base;
  index.tb_num = tb.num;
  index.tb_den = tb.den;
  *missing_timestamps = false;
  std::vector<std::pair<int64_t, uint8_t>> entries;
  auto pkt = make_packet();
  while (true) {
    const int r = av_read_frame(fmt, pkt.get());
    if (r < 0) {
      if (r != AVERROR_EOF) {
        index.truncated = true;
        index.problem = av_error_text(r);
      }
      break;
    }
    PacketUnref unref{pkt.get()};
    if (pkt->stream_index != stream) continue;
    if (pkt->flags & AV_PKT_FLAG_DISCARD) continue;
    if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
      index.truncated = true;
      index.problem = "partial or corrupt packet at byte " + std::to_string(pkt->pos);
      continue;
    }
    // Without pts the decoder's output times cannot be matched to packets (dts is in
    // decode order): the caller indexes by decoding instead.
    if (pkt->pts == AV_NOPTS_VALUE) {
      *missing_timestamps = true;
      return index;
    }
    entries.emplace_back(pkt->pts, (pkt->flags & AV_PKT_FLAG_KEY) ? 1 : 0);
  }
  std::stable_sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.first < b.first; });
  index.pts.reserve(entries.size());
  index.key.reserve(entries.size());
  for (auto& [ts, k] : entries) {
    index.pts.push_back(ts);
    index.key.push_back(k);
  }
  return index;
}

}  // namespace trecvit::video

#include "video_io/frame_index.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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

namespace {

// EBML variable-length integer at p (at most 8 bytes); false when it does not fit in `end`.
bool ebml_vint(const uint8_t*& p, const uint8_t* end, bool keep_marker, uint64_t* value, bool* unknown) {
  if (p >= end || *p == 0) return false;
  int len = 1;
  while (!(*p & (0x80 >> (len - 1)))) ++len;
  if (p + len > end) return false;
  uint64_t v = keep_marker ? *p : (*p & (0xff >> len));
  bool all_ones = (*p & (0xff >> len)) == (0xff >> len);
  for (int i = 1; i < len; ++i) {
    v = (v << 8) | p[i];
    all_ones = all_ones && p[i] == 0xff;
  }
  p += len;
  *value = v;
  if (unknown) *unknown = all_ones;
  return true;
}

// A Matroska/WebM file shorter than its Segment element declares was cut (a copy or a download
// that stopped): its demuxer then just reports the end of the file. "" when it is whole, or
// when the segment size is unknown (live recordings).
std::string matroska_cut(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  uint8_t head[4096];
  const size_t n = std::fread(head, 1, sizeof(head), f);
  std::fseek(f, 0, SEEK_END);
  const long file_size = std::ftell(f);
  std::fclose(f);
  const uint8_t *p = head, *end = head + n;
  uint64_t id = 0, size = 0;
  bool unknown = false;
  if (!ebml_vint(p, end, true, &id, nullptr) || id != 0x1A45DFA3 || !ebml_vint(p, end, false, &size, nullptr) ||
      size > uint64_t(end - p))
    return "";
  p += size;
  if (!ebml_vint(p, end, true, &id, nullptr) || id != 0x18538067 || !ebml_vint(p, end, false, &size, &unknown) || unknown)
    return "";
  const uint64_t declared_end = uint64_t(p - head) + size;
  if (file_size < 0 || declared_end <= uint64_t(file_size)) return "";
  return "truncated: the file ends at byte " + std::to_string(file_size) + " of the " + std::to_string(declared_end) +
         " its Matroska segment declares";
}

}  // namespace

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
  if (!index.truncated && fmt->url && fmt->iformat && std::strstr(fmt->iformat->name, "matroska") &&
      !std::strstr(fmt->url, "://")) {
    const std::string cut = matroska_cut(fmt->url);
    if (!cut.empty()) {
      index.truncated = true;
      index.problem = cut;
    }
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

#pragma once
// The exact frame index of one video stream, built by a demux-only pass: one entry per
// packet that yields a displayed frame, sorted by pts (display order). Frame counts and
// timestamps come from here, never from container headers or fps.
#include <cstdint>
#include <string>
#include <vector>

struct AVFormatContext;

namespace trecvit::video {

struct FrameIndex {
  std::vector<int64_t> pts;      // display order, in the stream time base
  std::vector<uint8_t> key;      // 1 where that frame's packet is a keyframe (a seek point)
  int tb_num = 1, tb_den = 1;    // stream time base
  bool truncated = false;        // the demuxer hit a partial packet or a read error
  bool by_order = false;         // no timestamps at all: pts are output positions 0..n-1 and
                                 // frames are identified by counting from the start
  std::string problem;           // why, when truncated (FFmpeg's message)

  int64_t size() const { return static_cast<int64_t>(pts.size()); }
  double seconds(int64_t i) const;  // presentation time of frame i from the first frame
  // The last keyframe at or before display index i (0 when none is marked).
  int64_t keyframe_at_or_before(int64_t i) const;
  // The display index whose pts equals `ts`, or -1.
  int64_t find(int64_t ts) const;
  // The frame on screen at `seconds` after the first frame: the last one starting at or before it.
  int64_t at_time(double seconds) const;
};

// Reads every packet of `stream` (no decoding) and leaves the demuxer at end of file.
// Packets flagged discard (edit lists) or corrupt (partial at a truncation) are not frames.
// Sets *missing_timestamps when a packet has no pts (raw streams, some AVI): the caller must
// then index by decoding.
FrameIndex build_index(AVFormatContext* fmt, int stream, bool* missing_timestamps);

}  // namespace trecvit::video

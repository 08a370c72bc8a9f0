#pragma once
// Decoded frame -> packed RGB24 with swscale: display rotation, resizing (exact size, or
// short side plus center crop), and the colour matrix and range the frame declares, with the
// same scaler settings as the ffmpeg CLI (bicubic), so native-size output matches
// `ffmpeg -i VIDEO -pix_fmt rgb24` bit for bit. 8-bit 4:2:0 frames are resized in YUV first
// and then converted (4x faster than resizing into RGB24), which equals
// `-vf scale=W:H:flags=bicubic,format=yuv420p -pix_fmt rgb24`.
#include <cstdint>
#include <string>
#include <vector>

#include "video_io/ffmpeg_raii.h"

namespace trecvit::video {

// The requested output size. Default: native (as displayed, after rotation).
struct FrameSize {
  int width = 0, height = 0;             // exact output size (both or neither)
  int short_side = 0;                    // or: scale so the shorter side is this, keeping the aspect
  int crop_width = 0, crop_height = 0;   // then take the centred crop of this size (0: none)

  static FrameSize native() { return {}; }
  static FrameSize exact(int w, int h) { return {w, h, 0, 0, 0}; }
  static FrameSize short_side_crop(int s, int cw, int ch) { return {0, 0, s, cw, ch}; }
};

// What a FrameSize means for one stream.
struct Geometry {
  int rotation = 0;                // clockwise, applied before scaling
  int scaled_w = 0, scaled_h = 0;  // after scaling
  int crop_x = 0, crop_y = 0;      // top-left of the kept region in the scaled image
  int out_w = 0, out_h = 0;        // the frames handed out
  int64_t frame_bytes() const { return static_cast<int64_t>(out_w) * out_h * 3; }
};

// Throws VideoError(kBadRequest) naming `source` for impossible sizes.
Geometry plan_geometry(int display_w, int display_h, int rotation, const FrameSize& size, const std::string& source);

class FrameConverter {
 public:
  // Writes `frame` as RGB24 [out_h, out_w, 3] with row stride out_w * 3 at dst.
  void convert(const AVFrame* frame, const Geometry& g, uint8_t* dst);

 private:
  struct Key {
    int w = 0, h = 0, fmt = -1, colorspace = -1, range = -1, dst_w = 0, dst_h = 0, dst_fmt = -1;
    bool operator==(const Key& o) const;
  };
  SwsContext* context(SwsPtr& ctx, Key& have, const AVFrame* src, int dst_w, int dst_h, int dst_fmt);
  void scale(const AVFrame* src, int dst_w, int dst_h, uint8_t* dst, int dst_stride);

  SwsPtr sws_, pre_sws_, yuv_sws_;
  Key key_, pre_key_, yuv_key_;
  FramePtr rotated_, rgb_, resized_;  // scratch frames for rotation and YUV resizing
  std::vector<uint8_t> scratch_;
};

}  // namespace trecvit::video

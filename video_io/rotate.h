#pragma once
// Display rotation of decoded frames, done on the decoded planes before colour conversion
// (as the ffmpeg CLI's transpose/hflip/vflip filters do), so rotated output stays
// bit-identical to `ffmpeg -i VIDEO -pix_fmt rgb24`.
#include <cstdint>

#include "video_io/ffmpeg_raii.h"

namespace trecvit::video {

// Clockwise rotation (0, 90, 180, 270) that displays a stream, from its display matrix:
// the angle the ffmpeg CLI's autorotate applies.
int display_rotation_cw(const AVStream* stream);

// Rotates one plane of w x h elements of `elem` bytes clockwise by `rotation_cw`.
void rotate_plane(const uint8_t* src, int src_stride, int w, int h, int elem, uint8_t* dst, int dst_stride,
                  int rotation_cw);

// True when rotate_frame can rotate this pixel format plane by plane: planar, whole-byte
// samples, and for 90/270 the same chroma subsampling in both directions.
bool can_rotate_planes(int pix_fmt, int rotation_cw);

// Writes `src` rotated clockwise into `dst` (reallocated when its size or format differ).
void rotate_frame(const AVFrame* src, int rotation_cw, AVFrame* dst);

}  // namespace trecvit::video

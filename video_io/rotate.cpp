#include "video_io/rotate.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <new>

extern "C" {
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
}

namespace trecvit::video {

int display_rotation_cw(const AVStream* stream) {
  size_t size = 0;
  const uint8_t* m = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (!m || size < 9 * sizeof(int32_t)) return 0;
  const double ccw = av_display_rotation_get(reinterpret_cast<const int32_t*>(m));
  if (std::isnan(ccw)) return 0;
  // The matrix stores the counter-clockwise angle; displaying undoes it clockwise.
  double theta = -std::round(ccw);
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  for (int r : {90, 180, 270})
    if (std::fabs(theta - r) < 1.0) return r;
  return 0;
}

void rotate_plane(const uint8_t* src, int src_stride, int w, int h, int elem, uint8_t* dst, int dst_stride,
                  int rotation) {
  if (rotation == 180) {
    for (int y = 0; y < h; ++y) {
      const uint8_t* s = src + static_cast<ptrdiff_t>(h - 1 - y) * src_stride;
      uint8_t* d = dst + static_cast<ptrdiff_t>(y) * dst_stride;
      for (int x = 0; x < w; ++x) std::memcpy(d + x * elem, s + (w - 1 - x) * elem, elem);
    }
    return;
  }
  // 90: output (w' = h, h' = w), out[y][x] = in[h-1-x][y]; 270: out[y][x] = in[x][w-1-y].
  for (int y = 0; y < w; ++y) {
    uint8_t* d = dst + static_cast<ptrdiff_t>(y) * dst_stride;
    if (rotation == 90) {
      for (int x = 0; x < h; ++x)
        std::memcpy(d + x * elem, src + static_cast<ptrdiff_t>(h - 1 - x) * src_stride + y * elem, elem);
    } else {
      for (int x = 0; x < h; ++x)
        std::memcpy(d + x * elem, src + static_cast<ptrdiff_t>(x) * src_stride + (w - 1 - y) * elem, elem);
    }
  }
}

bool can_rotate_planes(int pix_fmt, int rotation) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(pix_fmt));
  if (!d || (d->flags & (AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_PAL))) return false;
  if (d->nb_components > 1 && !(d->flags & AV_PIX_FMT_FLAG_PLANAR)) return false;
  if (av_pix_fmt_count_planes(static_cast<AVPixelFormat>(pix_fmt)) != d->nb_components) return false;
  for (int c = 0; c < d->nb_components; ++c)
    if (d->comp[c].step != d->comp[0].step || d->comp[c].step < 1 || d->comp[c].step > 2) return false;
  return rotation == 180 || d->log2_chroma_w == d->log2_chroma_h;
}

void rotate_frame(const AVFrame* src, int rotation, AVFrame* dst) {
  const bool swap = rotation == 90 || rotation == 270;
  const int w = swap ? src->height : src->width, h = swap ? src->width : src->height;
  if (dst->width != w || dst->height != h || dst->format != src->format || !dst->data[0]) {
    av_frame_unref(dst);
    dst->format = src->format;
    dst->width = w;
    dst->height = h;
    if (av_frame_get_buffer(dst, 0) < 0) throw std::bad_alloc();
  }
  av_frame_copy_props(dst, src);
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(src->format));
  for (int p = 0; p < av_pix_fmt_count_planes(static_cast<AVPixelFormat>(src->format)); ++p) {
    const bool chroma = p == 1 || p == 2;
    const int pw = chroma ? AV_CEIL_RSHIFT(src->width, d->log2_chroma_w) : src->width;
    const int ph = chroma ? AV_CEIL_RSHIFT(src->height, d->log2_chroma_h) : src->height;
    rotate_plane(src->data[p], src->linesize[p], pw, ph, d->comp[0].step, dst->data[p], dst->linesize[p], rotation);
  }
}

}  // namespace trecvit::video

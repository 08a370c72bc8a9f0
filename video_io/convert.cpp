#include "video_io/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "video_io/error.h"
#include "video_io/rotate.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace trecvit::video {

namespace {
constexpr int kScalerFlags = SWS_BICUBIC;  // the ffmpeg CLI's default for format conversion
constexpr int kAlign = 64;
}  // namespace

Geometry plan_geometry(int display_w, int display_h, int rotation, const FrameSize& s, const std::string& source) {
  auto bad = [&](const std::string& what) { throw VideoError(ErrorKind::kBadRequest, source, what); };
  if (s.width < 0 || s.height < 0 || s.short_side < 0 || s.crop_width < 0 || s.crop_height < 0)
    bad("negative output size");
  if ((s.width > 0) != (s.height > 0)) bad("an exact output size needs both width and height");
  if (s.width > 0 && s.short_side > 0) bad("give either an exact size or a short side, not both");
  if ((s.crop_width > 0) != (s.crop_height > 0)) bad("a crop needs both width and height");
  Geometry g;
  g.rotation = rotation;
  if (s.width > 0) {
    g.scaled_w = s.width;
    g.scaled_h = s.height;
  } else if (s.short_side > 0) {
    const double f = static_cast<double>(s.short_side) / std::min(display_w, display_h);
    g.scaled_w = display_w <= display_h ? s.short_side : std::max(1, static_cast<int>(std::lround(display_w * f)));
    g.scaled_h = display_h < display_w ? s.short_side : std::max(1, static_cast<int>(std::lround(display_h * f)));
  } else {
    g.scaled_w = display_w;
    g.scaled_h = display_h;
  }
  if (g.scaled_w > 16384 || g.scaled_h > 16384) bad("output size above 16384 pixels");
  g.out_w = s.crop_width > 0 ? s.crop_width : g.scaled_w;
  g.out_h = s.crop_height > 0 ? s.crop_height : g.scaled_h;
  if (g.out_w > g.scaled_w || g.out_h > g.scaled_h)
    bad("crop " + std::to_string(g.out_w) + "x" + std::to_string(g.out_h) + " is larger than the resized frame " +
        std::to_string(g.scaled_w) + "x" + std::to_string(g.scaled_h));
  g.crop_x = (g.scaled_w - g.out_w) / 2;
  g.crop_y = (g.scaled_h - g.out_h) / 2;
  return g;
}

bool FrameConverter::Key::operator==(const Key& o) const {
  return w == o.w && h == o.h && fmt == o.fmt && colorspace == o.colorspace && range == o.range &&
         dst_w == o.dst_w && dst_h == o.dst_h && dst_fmt == o.dst_fmt;
}

SwsContext* FrameConverter::context(SwsPtr& ctx, Key& have, const AVFrame* src, int dst_w, int dst_h,
                                    int dst_fmt) {
  const Key want{src->width, src->height, src->format, src->colorspace, src->color_range, dst_w, dst_h, dst_fmt};
  if (ctx && want == have) return ctx.get();
  ctx.reset(sws_getContext(src->width, src->height, static_cast<AVPixelFormat>(src->format), dst_w, dst_h,
                           static_cast<AVPixelFormat>(dst_fmt), kScalerFlags, nullptr, nullptr, nullptr));
  if (!ctx) {
    const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(src->format));
    throw VideoError(ErrorKind::kUnsupported, "swscale",
                     std::string("cannot convert pixel format ") + (name ? name : "?") + " to RGB24");
  }
  // As the CLI's scale filter: the matrix the frame declares, its range if declared.
  int *inv_table, *table, src_full, dst_full, brightness, contrast, saturation;
  sws_getColorspaceDetails(ctx.get(), &inv_table, &src_full, &table, &dst_full, &brightness, &contrast, &saturation);
  const int* coefficients = sws_getCoefficients(src->colorspace);
  if (src->color_range != AVCOL_RANGE_UNSPECIFIED) src_full = src->color_range == AVCOL_RANGE_JPEG;
  sws_setColorspaceDetails(ctx.get(), coefficients, src_full, coefficients, dst_full, brightness, contrast, saturation);
  have = want;
  return ctx.get();
}

void FrameConverter::scale(const AVFrame* src, int dst_w, int dst_h, uint8_t* dst, int dst_stride) {
  if (src->format == AV_PIX_FMT_RGB24 && src->width == dst_w && src->height == dst_h) {
    for (int y = 0; y < dst_h; ++y) std::memcpy(dst + static_cast<ptrdiff_t>(y) * dst_stride, src->data[0] + static_cast<ptrdiff_t>(y) * src->linesize[0], dst_w * 3);
    return;
  }
  const bool yuv420 = src->format == AV_PIX_FMT_YUV420P || src->format == AV_PIX_FMT_YUVJ420P;
  if (yuv420 && (src->width != dst_w || src->height != dst_h)) {
    if (!resized_) resized_ = make_frame();
    if (resized_->width != dst_w || resized_->height != dst_h || resized_->format != src->format) {
      av_frame_unref(resized_.get());
      resized_->format = src->format;
      resized_->width = dst_w;
      resized_->height = dst_h;
      if (av_frame_get_buffer(resized_.get(), kAlign) < 0) throw std::bad_alloc();
    }
    av_frame_copy_props(resized_.get(), src);  // same matrix and range for the second step
    SwsContext* down = context(yuv_sws_, yuv_key_, src, dst_w, dst_h, src->format);
    sws_scale(down, src->data, src->linesize, 0, src->height, resized_->data, resized_->linesize);
    src = resized_.get();
  }
  SwsContext* ctx = context(sws_, key_, src, dst_w, dst_h, AV_PIX_FMT_RGB24);
  uint8_t* planes[4] = {dst, nullptr, nullptr, nullptr};
  int strides[4] = {dst_stride, 0, 0, 0};
  sws_scale(ctx, src->data, src->linesize, 0, src->height, planes, strides);
}

void FrameConverter::convert(const AVFrame* frame, const Geometry& g, uint8_t* dst) {
  const AVFrame* src = frame;
  if (g.rotation != 0) {
    if (!rotated_) rotated_ = make_frame();
    if (can_rotate_planes(frame->format, g.rotation)) {
      rotate_frame(frame, g.rotation, rotated_.get());
    } else {
      // Packed or unevenly subsampled formats: to RGB first, then rotate the RGB plane.
      if (!rgb_) rgb_ = make_frame();
      if (rgb_->width != frame->width || rgb_->height != frame->height) {
        av_frame_unref(rgb_.get());
        rgb_->format = AV_PIX_FMT_RGB24;
        rgb_->width = frame->width;
        rgb_->height = frame->height;
        if (av_frame_get_buffer(rgb_.get(), kAlign) < 0) throw std::bad_alloc();
      }
      SwsContext* pre = context(pre_sws_, pre_key_, frame, frame->width, frame->height, AV_PIX_FMT_RGB24);
      sws_scale(pre, frame->data, frame->linesize, 0, frame->height, rgb_->data, rgb_->linesize);
      rotate_frame(rgb_.get(), g.rotation, rotated_.get());
    }
    src = rotated_.get();
  }
  const int row = g.out_w * 3;
  const bool cropped = g.out_w != g.scaled_w || g.out_h != g.scaled_h;
  // swscale's SIMD paths write whole 8-pixel groups and want 16-byte rows; other layouts
  // go through an aligned, padded scratch image.
  const bool direct = !cropped && reinterpret_cast<uintptr_t>(dst) % 16 == 0 && row % 16 == 0 && g.out_w % 8 == 0;
  if (direct) {
    scale(src, g.scaled_w, g.scaled_h, dst, row);
    return;
  }
  // Room for whole 16-pixel groups per row, as the padded frames of FFmpeg's filters have:
  // swscale's RGB24 SIMD output otherwise leaves the last pixels of a row unconverted.
  const int stride = ((g.scaled_w + 15) / 16 * 16 * 3 + kAlign - 1) / kAlign * kAlign;
  scratch_.resize(static_cast<size_t>(stride) * g.scaled_h + 2 * kAlign);
  uint8_t* base = scratch_.data();
  base += (kAlign - reinterpret_cast<uintptr_t>(base) % kAlign) % kAlign;
  scale(src, g.scaled_w, g.scaled_h, base, stride);
  for (int y = 0; y < g.out_h; ++y)
    std::memcpy(dst + static_cast<ptrdiff_t>(y) * row, base + static_cast<ptrdiff_t>(y + g.crop_y) * stride + g.crop_x * 3, row);
}

}  // namespace trecvit::video

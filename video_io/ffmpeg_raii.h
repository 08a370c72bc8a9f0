#pragma once
// Owning handles for every FFmpeg object video_io creates: unique_ptr with the matching
// free function, so an exception anywhere leaves nothing behind.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>
}

#include <memory>

namespace trecvit::video {

struct FormatCloser {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
// Output side: closes the file the muxer wrote to (if it opened one), then frees the context.
struct OutputFormatCloser {
  void operator()(AVFormatContext* p) const {
    if (p && p->pb && p->oformat && !(p->oformat->flags & AVFMT_NOFILE)) avio_closep(&p->pb);
    avformat_free_context(p);
  }
};
struct CodecFreer {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct FrameFreer {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct PacketFreer {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFreer {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};
// The AVIOContext's buffer may have been replaced by FFmpeg, so free the current one.
struct AvioFreer {
  void operator()(AVIOContext* p) const {
    if (p) av_freep(&p->buffer);
    avio_context_free(&p);
  }
};
struct AvFreer {
  void operator()(void* p) const { av_free(p); }
};

using FormatPtr = std::unique_ptr<AVFormatContext, FormatCloser>;
using OutputFormatPtr = std::unique_ptr<AVFormatContext, OutputFormatCloser>;
using CodecPtr = std::unique_ptr<AVCodecContext, CodecFreer>;
using FramePtr = std::unique_ptr<AVFrame, FrameFreer>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFreer>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFreer>;
using AvioPtr = std::unique_ptr<AVIOContext, AvioFreer>;
using AvBufferPtr = std::unique_ptr<uint8_t, AvFreer>;

// Allocators that throw std::bad_alloc instead of returning null.
FramePtr make_frame();
PacketPtr make_packet();

// Unreferences a packet on scope exit (av_read_frame hands out a new reference each call).
struct PacketUnref {
  AVPacket* pkt;
  ~PacketUnref() { av_packet_unref(pkt); }
};

}  // namespace trecvit::video

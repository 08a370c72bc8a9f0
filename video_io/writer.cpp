#include "video_io/writer.h"

extern "C" {
#include <libavutil/dict.h>
#include <libavutil/opt.h>
}

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "video_io/error.h"
#include "video_io/ffmpeg_raii.h"

namespace trecvit::video {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Dict {
  AVDictionary* d = nullptr;
  ~Dict() { av_dict_free(&d); }
  void set(const char* k, const std::string& v) { av_dict_set(&d, k, v.c_str(), 0); }
};

// Encoder-private options for the preset; unknown keys are left in the dictionary, not errors.
void preset_options(const std::string& codec, const WriterOptions& o, Dict& opts, AVCodecContext* ctx) {
  const bool fast = o.preset == WriterOptions::Preset::kFast;
  if (codec == "libvpx-vp9" || codec == "libvpx") {
    opts.set("deadline", fast ? "realtime" : "good");
    opts.set("cpu-used", fast ? "8" : "4");
    opts.set("crf", std::to_string(o.crf >= 0 ? o.crf : 32));
    ctx->bit_rate = 0;  // with crf: constant quality, no bitrate cap
  } else if (codec == "libx264") {
    opts.set("preset", fast ? "veryfast" : "medium");
    opts.set("crf", std::to_string(o.crf >= 0 ? o.crf : 20));
  } else {
    ctx->bit_rate = 0;
    ctx->global_quality = FF_QP2LAMBDA * (o.crf >= 0 ? std::max(1, o.crf / 8) : 3);
    ctx->flags |= AV_CODEC_FLAG_QSCALE;
  }
}

// libvpx's encoder allocates tens of MB of differently aligned buffers per open. Under the
// retaining jemalloc configuration (cmake/malloc_conf.cpp: no decay) those pages stay resident but
// rarely fit the next encoder's requests: writing the default dataset grew the process by ~2 MB per
// file (5.8 GB peak for 3000 files). Encoders therefore allocate from an arena of their own whose
// pages idle for a second go back to the kernel, while the next encoder still reuses the hot ones.
using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);

struct EncoderArena {
  MallctlFn mallctl = nullptr;  // null: not jemalloc (glibc returns large blocks itself)
  unsigned index = 0;
  EncoderArena() {
    auto f = reinterpret_cast<MallctlFn>(dlsym(RTLD_DEFAULT, "mallctl"));
    size_t len = sizeof(index);
    if (!f || f("arenas.create", &index, &len, nullptr, 0) != 0) return;
    ssize_t dirty_ms = 1000, muzzy_ms = 0;
    const std::string arena = "arena." + std::to_string(index);
    f((arena + ".dirty_decay_ms").c_str(), nullptr, nullptr, &dirty_ms, sizeof(dirty_ms));
    f((arena + ".muzzy_decay_ms").c_str(), nullptr, nullptr, &muzzy_ms, sizeof(muzzy_ms));
    mallctl = f;
  }
};

// Binds the calling thread to the encoder arena while alive (allocations only: frees always go
// back to the arena that made the block).
class EncoderArenaScope {
 public:
  EncoderArenaScope() {
    static EncoderArena arena;
    size_t len = sizeof(previous_);
    if (arena.mallctl && arena.mallctl("thread.arena", &previous_, &len, &arena.index, sizeof(arena.index)) == 0)
      mallctl_ = arena.mallctl;
  }
  ~EncoderArenaScope() {
    if (mallctl_) mallctl_("thread.arena", nullptr, nullptr, &previous_, sizeof(previous_));
  }
  EncoderArenaScope(const EncoderArenaScope&) = delete;
  EncoderArenaScope& operator=(const EncoderArenaScope&) = delete;

 private:
  MallctlFn mallctl_ = nullptr;
  unsigned previous_ = 0;
};

}  // namespace

struct VideoWriter::State {
  OutputFormatPtr fmt;
  CodecPtr ctx;
  AVStream* stream = nullptr;  // owned by fmt
  FramePtr frame = make_frame();
  PacketPtr packet = make_packet();
  SwsPtr sws;
  bool open = false;
};

namespace {

// Container by extension (so `data prepare` keeps a dataset's file names), encoders in order.
struct Container {
  const char* ext;
  const char* muxer;
  std::vector<const char*> encoders;
};

const Container* container_for(const std::string& path) {
  static const std::vector<Container> containers = {
      {".mp4", "mp4", {"libx264", "mpeg4"}},  {".m4v", "mp4", {"libx264", "mpeg4"}},
      {".mov", "mov", {"libx264", "mpeg4"}},  {".mkv", "matroska", {"libx264", "mpeg4"}},
      {".webm", "webm", {"libvpx-vp9", "libvpx"}}, {".avi", "avi", {"mpeg4"}}};
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const auto& c : containers)
    if (ends_with(lower, c.ext)) return &c;
  return nullptr;
}

}  // namespace

bool VideoWriter::supports(const std::string& path) { return container_for(path) != nullptr; }

VideoWriter::VideoWriter(const std::string& path, double fps, int width, int height, WriterOptions options)
    : path_(path), width_(width), height_(height), s_(new State) {
  EncoderArenaScope arena;
  if (fps <= 0 || width <= 0 || height <= 0)
    throw VideoError(ErrorKind::kBadRequest, path, "fps, width and height must be positive");
  const Container* container = container_for(path);
  if (!container)
    throw VideoError(ErrorKind::kWriteFailed, path, "unsupported extension (use " + std::string(kWriterExtensions) + ")");
  const auto& encoders = container->encoders;
  if (encoders[0] == std::string("libx264") && (width % 2 || height % 2))
    throw VideoError(ErrorKind::kBadRequest, path, "H.264 with 4:2:0 chroma needs an even width and height, got " +
                                                       std::to_string(width) + "x" + std::to_string(height));

  AVFormatContext* raw = nullptr;
  int ret = avformat_alloc_output_context2(&raw, nullptr, container->muxer, path.c_str());
  s_->fmt.reset(raw);
  if (ret < 0) throw VideoError(ErrorKind::kWriteFailed, path, "no muxer for this file name", av_error_text(ret));

  const AVRational rate = av_d2q(fps, 1000000);
  std::string tried;
  for (const char* name : encoders) {
    const AVCodec* codec = avcodec_find_encoder_by_name(name);
    if (!codec) {
      tried += std::string(tried.empty() ? "" : ", ") + name + " (not built in)";
      continue;
    }
    CodecPtr ctx(avcodec_alloc_context3(codec));
    if (!ctx) throw std::bad_alloc();
    ctx->width = width;
    ctx->height = height;
    ctx->pix_fmt = AV_PIX_FMT_YUV420P;
    ctx->time_base = av_inv_q(rate);
    ctx->framerate = rate;
    ctx->gop_size = 12;
    ctx->thread_count = std::max(1, options.threads);
    if (s_->fmt->oformat->flags & AVFMT_GLOBALHEADER) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    Dict opts;
    preset_options(name, options, opts, ctx.get());
    ret = avcodec_open2(ctx.get(), codec, &opts.d);
    if (ret >= 0) {
      s_->ctx = std::move(ctx);
      codec_ = name;
      break;
    }
    tried += std::string(tried.empty() ? "" : ", ") + name + " (" + av_error_text(ret) + ")";
  }
  if (!s_->ctx) throw VideoError(ErrorKind::kWriteFailed, path, "no encoder could be opened: tried " + tried);

  s_->stream = avformat_new_stream(s_->fmt.get(), nullptr);
  if (!s_->stream) throw std::bad_alloc();
  s_->stream->time_base = s_->ctx->time_base;
  s_->stream->avg_frame_rate = rate;
  ret = avcodec_parameters_from_context(s_->stream->codecpar, s_->ctx.get());
  if (ret < 0) throw VideoError(ErrorKind::kWriteFailed, path, "cannot describe the stream", av_error_text(ret));
  if (!(s_->fmt->oformat->flags & AVFMT_NOFILE) && (ret = avio_open(&s_->fmt->pb, path.c_str(), AVIO_FLAG_WRITE)) < 0)
    throw VideoError(ErrorKind::kWriteFailed, path, "cannot create the file", av_error_text(ret));
  if ((ret = avformat_write_header(s_->fmt.get(), nullptr)) < 0)
    throw VideoError(ErrorKind::kWriteFailed, path, "cannot write the container header", av_error_text(ret));

  AVFrame* f = s_->frame.get();
  f->format = AV_PIX_FMT_YUV420P;
  f->width = width;
  f->height = height;
  if ((ret = av_frame_get_buffer(f, 0)) < 0) throw VideoError(ErrorKind::kWriteFailed, path, "cannot allocate a frame", av_error_text(ret));
  s_->sws.reset(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                               SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
  if (!s_->sws) throw VideoError(ErrorKind::kWriteFailed, path, "no RGB to YUV 4:2:0 conversion");
  s_->open = true;
}

VideoWriter::~VideoWriter() {
  try {
    close();
  } catch (const std::exception&) {
    // Destructors must not throw; close() explicitly to see the error.
  }
}

void VideoWriter::write(const torch::Tensor& rgb) {
  if (!s_->open) throw VideoError(ErrorKind::kWriteFailed, path_, "the writer is closed");
  if (rgb.scalar_type() != torch::kByte || rgb.dim() != 3 || rgb.size(0) != height_ || rgb.size(1) != width_ ||
      rgb.size(2) != 3)
    throw VideoError(ErrorKind::kBadRequest, path_,
                     "expected a uint8 frame [" + std::to_string(height_) + ", " + std::to_string(width_) +
                         ", 3], got " + c10::str(rgb.sizes()) + " " + std::string(c10::toString(rgb.scalar_type())));
  auto c = rgb.contiguous();
  EncoderArenaScope arena;
  AVFrame* f = s_->frame.get();
  int ret = av_frame_make_writable(f);  // the encoder may still hold the previous picture
  if (ret < 0) throw VideoError(ErrorKind::kWriteFailed, path_, "cannot get a writable frame", av_error_text(ret));
  const uint8_t* src[1] = {c.data_ptr<uint8_t>()};
  const int src_stride[1] = {3 * width_};
  sws_scale(s_->sws.get(), src, src_stride, 0, height_, f->data, f->linesize);
  f->pts = frames_;
  encode(false);
  ++frames_;
}

// Sends the current frame (or the end-of-stream marker) and muxes every packet that comes out.
void VideoWriter::encode(bool flush) {
  int ret = avcodec_send_frame(s_->ctx.get(), flush ? nullptr : s_->frame.get());
  if (ret < 0) throw VideoError(ErrorKind::kWriteFailed, path_, "the encoder refused a frame", av_error_text(ret));
  AVPacket* pkt = s_->packet.get();
  while ((ret = avcodec_receive_packet(s_->ctx.get(), pkt)) >= 0) {
    av_packet_rescale_ts(pkt, s_->ctx->time_base, s_->stream->time_base);
    pkt->stream_index = s_->stream->index;
    ret = av_interleaved_write_frame(s_->fmt.get(), pkt);  // takes the packet's reference
    if (ret < 0) throw VideoError(ErrorKind::kWriteFailed, path_, "cannot write a packet", av_error_text(ret));
  }
  if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF)
    throw VideoError(ErrorKind::kWriteFailed, path_, "encoding failed", av_error_text(ret));
}

void VideoWriter::close() {
  if (!s_ || !s_->open) return;
  s_->open = false;
  EncoderArenaScope arena;
  encode(true);
  int ret = av_write_trailer(s_->fmt.get());
  if (ret < 0) throw VideoError(ErrorKind::kWriteFailed, path_, "cannot write the container trailer", av_error_text(ret));
  if (s_->fmt->pb && (ret = avio_closep(&s_->fmt->pb)) < 0)  // the last buffered bytes reach the disk here
    throw VideoError(ErrorKind::kWriteFailed, path_, "cannot finish the file", av_error_text(ret));
}

}  // namespace trecvit::video

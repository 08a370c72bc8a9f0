#include "video_io/decoder.h"

#include "video_io/error.h"

namespace trecvit::video {

Decoder::Decoder(Input& input, const DecoderOptions& options) : input_(input) {
  ctx_.reset(avcodec_alloc_context3(input.codec()));
  if (!ctx_) throw std::bad_alloc();
  int r = avcodec_parameters_to_context(ctx_.get(), input.stream()->codecpar);
  if (r < 0) throw VideoError(ErrorKind::kUnsupported, input.source(), "bad codec parameters", av_error_text(r));
  ctx_->pkt_timebase = input.stream()->time_base;
  ctx_->thread_count = options.threads;
  switch (options.thread_type) {
    case ThreadType::kSlice: ctx_->thread_type = FF_THREAD_SLICE; break;
    case ThreadType::kFrame: ctx_->thread_type = FF_THREAD_FRAME; break;
    case ThreadType::kAuto: ctx_->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE; break;
  }
  r = avcodec_open2(ctx_.get(), input.codec(), nullptr);
  if (r < 0)
    throw VideoError(ErrorKind::kUnsupported, input.source(),
                     std::string("cannot open the ") + input.codec()->name + " decoder", av_error_text(r));
  pkt_ = make_packet();
  frame_ = make_frame();
}

void Decoder::record(int code, const char* what) {
  ++errors_;
  last_error_ = std::string(what) + ": " + av_error_text(code);
}

int64_t Decoder::timestamp(const AVFrame* f) {
  return f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
}

AVFrame* Decoder::next() {
  // A decoder whose receive keeps failing consumes no input and would spin; give up then.
  int failures = 0;
  while (!finished_) {
    int r = avcodec_receive_frame(ctx_.get(), frame_.get());
    if (r >= 0) return frame_.get();
    if (r == AVERROR_EOF) break;
    if (r != AVERROR(EAGAIN)) {
      record(r, "decoding");
      if (++failures > 1000) break;
      continue;
    }
    if (draining_) break;  // EAGAIN after the flush packet: nothing more will come
    r = av_read_frame(input_.fmt(), pkt_.get());
    if (r < 0) {
      if (r != AVERROR_EOF) record(r, "reading");
      avcodec_send_packet(ctx_.get(), nullptr);  // enter draining mode
      draining_ = true;
      continue;
    }
    PacketUnref unref{pkt_.get()};
    if (pkt_->stream_index != input_.stream_index()) continue;
    r = avcodec_send_packet(ctx_.get(), pkt_.get());
    if (r < 0 && r != AVERROR(EAGAIN)) record(r, "decoding a packet");
  }
  finished_ = true;
  return nullptr;
}

bool Decoder::seek(int64_t ts) {
  AVFormatContext* fmt = input_.fmt();
  const int s = input_.stream_index();
  int r = av_seek_frame(fmt, s, ts, AVSEEK_FLAG_BACKWARD);
  if (r < 0) r = avformat_seek_file(fmt, s, INT64_MIN, ts, ts, 0);
  if (r < 0) return false;
  avcodec_flush_buffers(ctx_.get());
  draining_ = finished_ = false;
  return true;
}

}  // namespace trecvit::video

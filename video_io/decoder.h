#pragma once
// The send/receive decode loop over one Input's video stream, as in FFmpeg's
// doc/examples: read a packet, send it, receive every frame it produced; at end of file
// send a NULL packet and drain. Damaged packets are counted and skipped, never fatal.
#include <string>

#include "video_io/ffmpeg_raii.h"
#include "video_io/input.h"

namespace trecvit::video {

enum class ThreadType {
  kSlice,  // safe to stop early and adds no latency (live sources)
  kFrame,  // higher throughput on long clips, one frame of latency per thread
  kAuto,   // whatever the codec supports, frame first
};

struct DecoderOptions {
  int threads = 1;  // 0: FFmpeg picks from the core count
  ThreadType thread_type = ThreadType::kSlice;
};

class Decoder {
 public:
  Decoder(Input& input, const DecoderOptions& options);

  // Next frame in display order, or nullptr once the stream is drained. The frame is owned
  // by the decoder and valid until the next call.
  AVFrame* next();
  // Seeks the demuxer to the keyframe at or before `ts` (stream time base) and resets the
  // decoder. Returns false when the demuxer refused the seek.
  bool seek(int64_t ts);
  // The frame's presentation time: pts, else FFmpeg's best guess.
  static int64_t timestamp(const AVFrame* frame);

  int64_t errors() const { return errors_; }
  void clear_errors() {
    errors_ = 0;
    last_error_.clear();
  }
  const std::string& last_error() const { return last_error_; }
  bool at_end() const { return finished_; }

 private:
  void record(int code, const char* what);

  Input& input_;
  CodecPtr ctx_;
  PacketPtr pkt_;
  FramePtr frame_;
  bool draining_ = false, finished_ = false;
  int64_t errors_ = 0;
  std::string last_error_;
};

}  // namespace trecvit::video

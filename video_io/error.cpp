#include "video_io/error.h"

#include <new>

#include "video_io/ffmpeg_raii.h"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
}

namespace trecvit::video {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kMissingFile: return "missing file";
    case ErrorKind::kNotAVideo: return "not a video";
    case ErrorKind::kNoVideoStream: return "no video stream";
    case ErrorKind::kCorruptData: return "corrupt data";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kBadRequest: return "bad request";
    case ErrorKind::kIncomplete: return "incomplete decode";
    case ErrorKind::kSourceLost: return "source lost";
    case ErrorKind::kWriteFailed: return "write failed";
  }
  return "video error";
}

static std::string compose(ErrorKind kind, const std::string& source, const std::string& problem,
                           const std::string& ffmpeg_message) {
  std::string s = source + ": " + to_string(kind) + ": " + problem;
  if (!ffmpeg_message.empty()) s += " (FFmpeg: " + ffmpeg_message + ")";
  return s;
}

VideoError::VideoError(ErrorKind kind, std::string source, const std::string& problem, std::string ffmpeg_message)
    : std::runtime_error(compose(kind, source, problem, ffmpeg_message)),
      kind_(kind),
      source_(std::move(source)),
      ffmpeg_message_(std::move(ffmpeg_message)) {}

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

void set_ffmpeg_log_level(int av_log_level) { av_log_set_level(av_log_level); }

FramePtr make_frame() {
  FramePtr f(av_frame_alloc());
  if (!f) throw std::bad_alloc();
  return f;
}

PacketPtr make_packet() {
  PacketPtr p(av_packet_alloc());
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace trecvit::video

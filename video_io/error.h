#pragma once
// Typed errors of video_io. Every one names the source (file path, URL, "<memory>" or camera)
// and, where FFmpeg or OpenCV gave one, their message.
#include <stdexcept>
#include <string>

namespace trecvit::video {

enum class ErrorKind {
  kMissingFile,    // the path does not exist or cannot be opened for reading
  kNotAVideo,      // FFmpeg does not recognise the data as a container it can demux
  kNoVideoStream,  // a container without a decodable video stream
  kCorruptData,    // the data breaks the container or codec rules
  kUnsupported,    // no decoder / conversion for what the file holds
  kBadRequest,     // a frame index, time or size the video cannot satisfy
  kIncomplete,     // some requested frames could not be decoded (truncated or damaged file)
  kSourceLost,     // a live source failed and reconnecting gave up
  kWriteFailed,    // the writer could not open or encode its output
};

const char* to_string(ErrorKind kind);

class VideoError : public std::runtime_error {
 public:
  VideoError(ErrorKind kind, std::string source, const std::string& problem, std::string ffmpeg_message = {});
  ErrorKind kind() const { return kind_; }
  const std::string& source() const { return source_; }
  const std::string& ffmpeg_message() const { return ffmpeg_message_; }

 private:
  ErrorKind kind_;
  std::string source_, ffmpeg_message_;
};

// FFmpeg's text for an AVERROR code.
std::string av_error_text(int code);

// Raises the level below which FFmpeg prints nothing (process-wide; for command-line tools,
// tests and the fuzzer, whose errors are reported by video_io itself).
void set_ffmpeg_log_level(int av_log_level);

}  // namespace trecvit::video

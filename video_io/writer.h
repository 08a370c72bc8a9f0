#pragma once
// RGB frames to a video file, encoded with libavcodec and muxed with libavformat (FFmpeg's
// doc/examples/mux.c loop): .mp4/.m4v/.mov/.mkv get H.264 (else MPEG-4 Part 2), .webm VP9 (else
// VP8), .avi MPEG-4 Part 2. Used for the generated default dataset, `data prepare` and output.
#include <torch/torch.h>

#include <memory>
#include <string>

namespace trecvit::video {

struct WriterOptions {
  // kFast: VP9 realtime cpu-used 8 / x264 veryfast (about 10x faster than libvpx's defaults);
  // kQuality: VP9 good cpu-used 4 / x264 medium, for re-encoding real datasets.
  enum class Preset { kFast, kQuality };
  Preset preset = Preset::kFast;
  int crf = -1;     // constant quality; -1: 32 for VP9, 20 for H.264
  int threads = 1;  // encoder threads; callers usually parallelise over files instead
};

inline constexpr const char* kWriterExtensions = ".mp4, .m4v, .mov, .mkv, .webm or .avi";

class VideoWriter {
 public:
  // Whether the path's extension is one the writer can produce (case-insensitive).
  static bool supports(const std::string& path);
  // Throws VideoError(kWriteFailed) for other extensions (matched case-insensitively), when no
  // encoder can be opened or the file cannot be created; kBadRequest for a non-positive fps or
  // size, or odd sides with H.264.
  VideoWriter(const std::string& path, double fps, int width, int height, WriterOptions options = {});
  ~VideoWriter();  // finishes the file; errors there are lost, so call close() to see them
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // rgb: uint8 [height, width, 3] (any strides).
  void write(const torch::Tensor& rgb);
  // Flushes the encoder and writes the trailer; later writes throw.
  void close();
  int64_t frames() const { return frames_; }
  const std::string& codec() const { return codec_; }  // the encoder's name, e.g. "libvpx-vp9"

 private:
  struct State;
  void encode(bool flush);
  std::string path_, codec_;
  int width_, height_;
  int64_t frames_ = 0;
  std::unique_ptr<State> s_;
};

}  // namespace trecvit::video

#pragma once
// Annotated output for demos: RGB frames to an .mp4 (H.264) or .webm (VP9) file through
// OpenCV's FFmpeg back end.
#include <torch/torch.h>

#include <memory>
#include <string>

namespace cv {
class VideoWriter;
class Mat;
}  // namespace cv

namespace trecvit::video {

class VideoWriter {
 public:
  // Throws VideoError(kWriteFailed) for other extensions or when no encoder can be opened.
  VideoWriter(const std::string& path, double fps, int width, int height);
  ~VideoWriter();  // closes the file
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // rgb: uint8 [height, width, 3] (any strides).
  void write(const torch::Tensor& rgb);
  void close();
  int64_t frames() const { return frames_; }
  const std::string& codec() const { return codec_; }

 private:
  std::string path_, codec_;
  int width_, height_;
  int64_t frames_ = 0;
  std::unique_ptr<cv::VideoWriter> writer_;
  std::unique_ptr<cv::Mat> bgr_;
};

}  // namespace trecvit::video

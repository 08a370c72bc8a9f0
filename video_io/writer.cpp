#include "video_io/writer.h"

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "video_io/error.h"

namespace trecvit::video {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

VideoWriter::VideoWriter(const std::string& path, double fps, int width, int height)
    : path_(path), width_(width), height_(height), writer_(new cv::VideoWriter), bgr_(new cv::Mat) {
  if (fps <= 0 || width <= 0 || height <= 0)
    throw VideoError(ErrorKind::kBadRequest, path, "fps, width and height must be positive");
  // Preferred codec first, then a fallback the container also accepts.
  std::vector<const char*> codecs;
  if (ends_with(path, ".mp4")) codecs = {"avc1", "mp4v"};
  else if (ends_with(path, ".webm")) codecs = {"VP90", "VP80"};
  else throw VideoError(ErrorKind::kWriteFailed, path, "unsupported extension (use .mp4 or .webm)");
  for (const char* c : codecs) {
    const int fourcc = cv::VideoWriter::fourcc(c[0], c[1], c[2], c[3]);
    if (writer_->open(path, cv::CAP_FFMPEG, fourcc, fps, cv::Size(width, height), true)) {
      codec_ = c;
      return;
    }
  }
  throw VideoError(ErrorKind::kWriteFailed, path, "no encoder could be opened (tried " + std::string(codecs[0]) + ", " + codecs[1] + ")");
}

VideoWriter::~VideoWriter() { close(); }

void VideoWriter::write(const torch::Tensor& rgb) {
  if (!writer_->isOpened()) throw VideoError(ErrorKind::kWriteFailed, path_, "the writer is closed");
  if (rgb.scalar_type() != torch::kByte || rgb.dim() != 3 || rgb.size(0) != height_ || rgb.size(1) != width_ ||
      rgb.size(2) != 3)
    throw VideoError(ErrorKind::kBadRequest, path_,
                     "expected a uint8 frame [" + std::to_string(height_) + ", " + std::to_string(width_) +
                         ", 3], got " + c10::str(rgb.sizes()) + " " + std::string(c10::toString(rgb.scalar_type())));
  auto c = rgb.contiguous();
  const cv::Mat view(height_, width_, CV_8UC3, c.data_ptr<uint8_t>());
  cv::cvtColor(view, *bgr_, cv::COLOR_RGB2BGR);
  writer_->write(*bgr_);
  ++frames_;
}

void VideoWriter::close() {
  if (writer_ && writer_->isOpened()) writer_->release();
}

}  // namespace trecvit::video

#include <opencv2/videoio.hpp>

#include "video_io/capture_source.h"
#include "video_io/error.h"

namespace trecvit::video {
namespace {

// OpenCV hands out BGR (or grey, or BGRA) Mats; they are wrapped, not copied, as AVFrames.
class CameraSource : public CaptureSource {
 public:
  CameraSource(std::string device, int index, const CaptureOptions& options)
      : device_(std::move(device)), index_(index), options_(options), frame_(make_frame()) {}

  void open() override {
    close();
    cap_ = std::make_unique<cv::VideoCapture>();
    bool ok = false;
    try {
      // V4L2 directly (not CAP_ANY, which may pick GStreamer): its reads time out after 10 s.
      ok = index_ >= 0 ? cap_->open(index_, cv::CAP_V4L2) : cap_->open(device_, cv::CAP_V4L2);
    } catch (const cv::Exception& e) {
      throw VideoError(ErrorKind::kSourceLost, device_, "the camera cannot be opened", e.what());
    }
    if (!ok || !cap_->isOpened()) {
      cap_.reset();
      throw VideoError(ErrorKind::kSourceLost, device_, "the camera cannot be opened (no such device, or busy)");
    }
    cap_->set(cv::CAP_PROP_BUFFERSIZE, 1);  // V4L2: hand out the newest frame, not a queued one
    if (options_.width > 0) cap_->set(cv::CAP_PROP_FRAME_WIDTH, options_.width);
    if (options_.height > 0) cap_->set(cv::CAP_PROP_FRAME_HEIGHT, options_.height);
    if (options_.fps > 0) cap_->set(cv::CAP_PROP_FPS, options_.fps);
    fps_ = cap_->get(cv::CAP_PROP_FPS);
    problem_.clear();
  }

  void close() override { cap_.reset(); }

  const AVFrame* read() override {
    bool ok = false;
    try {
      ok = cap_ && cap_->read(mat_) && !mat_.empty();
    } catch (const cv::Exception& e) {
      problem_ = e.what();
      return nullptr;
    }
    if (!ok) {
      problem_ = "the camera stopped delivering frames";
      return nullptr;
    }
    const int ch = mat_.channels();
    frame_->format = ch == 1 ? AV_PIX_FMT_GRAY8 : ch == 4 ? AV_PIX_FMT_BGRA : AV_PIX_FMT_BGR24;
    frame_->width = mat_.cols;
    frame_->height = mat_.rows;
    frame_->data[0] = mat_.data;
    frame_->linesize[0] = static_cast<int>(mat_.step[0]);
    return frame_.get();
  }

  double seconds(const AVFrame*) const override { return -1; }  // camera clocks are not comparable
  double fps() const override { return fps_; }
  int rotation() const override { return 0; }

 private:
  std::string device_;
  int index_;
  CaptureOptions options_;
  std::unique_ptr<cv::VideoCapture> cap_;
  cv::Mat mat_;
  FramePtr frame_;  // borrows mat_'s pixels; never owns a buffer
  double fps_ = 0;
};

}  // namespace

std::unique_ptr<CaptureSource> make_camera_source(const std::string& device, int index, const CaptureOptions& options) {
  return std::make_unique<CameraSource>(device, index, options);
}

}  // namespace trecvit::video

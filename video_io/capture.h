#pragma once
// Live frames over OpenCV videoio: a camera (index or V4L2 device path), an RTSP/HTTP URL,
// or a file played back at its native rate so demos and tests behave like a camera.
//
// A grab thread reads as fast as the source delivers and keeps only the newest frame; the
// consumer takes frames when it is ready and learns how many it missed. Memory stays flat
// however slow the consumer is. Live sources that fail are reopened with exponential backoff,
// a bounded number of times, then next() throws VideoError(kSourceLost).
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace cv {
class VideoCapture;
class Mat;
}  // namespace cv

namespace trecvit::video {

struct CaptureOptions {
  int width = 0, height = 0;  // cameras: requested size (0: the camera's default)
  double fps = 0;             // cameras: requested rate (0: default)
  bool realtime = true;       // files: deliver at the file's own rate (false: as fast as decoded)
  bool loop = false;          // files: restart at the end instead of ending
  int max_reconnects = 5;     // live sources: reopen attempts after a failure before giving up
  std::chrono::milliseconds backoff{200};       // first wait before reopening; doubles per attempt
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds io_timeout{10000};  // FFmpeg back end: open and read timeouts
};

struct CapturedFrame {
  torch::Tensor rgb;        // uint8 [H, W, 3]
  int64_t sequence = 0;     // 0-based count of frames grabbed from the source before this one
  double timestamp = 0;     // seconds since the capture started, when it was grabbed
  double source_time = -1;  // the source's own timestamp in seconds (-1: none)
  int64_t dropped = 0;      // frames grabbed but never handed out, so far
};

class Capture {
 public:
  enum class Kind { kCamera, kStream, kFile };

  // "0", "1", ...: camera index; "/dev/video*": V4L2 device; "scheme://...": stream; else a file.
  explicit Capture(const std::string& source, const CaptureOptions& options = {});
  ~Capture();  // stops the grab thread and releases the source
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // The newest frame not yet returned, waiting up to `timeout` for one. std::nullopt on a
  // timeout or when a file source has ended (ended() tells which). Throws
  // VideoError(kSourceLost) once a live source is gone for good.
  std::optional<CapturedFrame> next(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  void stop();

  Kind kind() const { return kind_; }
  bool ended() const;
  int64_t grabbed() const { return grabbed_.load(); }
  int64_t dropped() const;
  int reconnects() const { return reconnects_.load(); }
  double fps() const { return fps_; }
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  bool open_source();  // one attempt; true when frames can be read
  bool reconnect();    // bounded retries with backoff; false when giving up or stopping
  void grab_loop();
  bool sleep_for(std::chrono::steady_clock::duration d);  // false when stopped meanwhile

  std::string source_;
  CaptureOptions options_;
  Kind kind_;
  int camera_index_ = -1;
  std::unique_ptr<cv::VideoCapture> cap_;
  std::unique_ptr<cv::Mat> frame_, rgb_, slot_;  // grabbed, converted, newest for the consumer
  std::atomic<double> fps_{0};  // rewritten by the grab thread on reconnect
  std::atomic<int> width_{0}, height_{0};
  std::chrono::steady_clock::time_point start_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool fresh_ = false, ended_ = false, failed_ = false, stopping_ = false;
  std::string failure_;
  int64_t slot_sequence_ = 0, dropped_ = 0;
  double slot_time_ = 0, slot_source_time_ = -1;
  std::atomic<int64_t> grabbed_{0};
  std::atomic<int> reconnects_{0};
  std::thread thread_;
};

}  // namespace trecvit::video

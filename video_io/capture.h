#pragma once
// Live frames: a camera (index or V4L2 device, over OpenCV), a network stream (any URL FFmpeg
// opens: rtsp, http, udp, tcp, srt, ...) or a file played back at its native rate so it behaves
// like a camera. Files and streams are decoded by video_io's own FFmpeg loop and converted with
// the same scaler as VideoReader, so a file captured without drops yields exactly the frames
// VideoReader returns for the same FrameSize.
//
// A grab thread reads as fast as the source delivers, converts each frame once to the
// requested size and keeps only the newest; the consumer takes frames when it is ready and
// learns how many it missed. Memory stays flat however slow the consumer is. Live sources that
// fail are reopened with exponential backoff, a bounded number of times, then the capture is
// lost (next() throws VideoError(kSourceLost)).
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "video_io/convert.h"

namespace trecvit::video {

// Wakes one consumer of many captures: every capture sharing it notifies on a new frame, an
// end or a loss.
class FrameSignal {
 public:
  uint64_t count() const;
  void notify();
  // Waits until count() differs from `seen` or `timeout` passes; returns the count.
  uint64_t wait(uint64_t seen, std::chrono::steady_clock::duration timeout) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  uint64_t count_ = 0;
};

struct CaptureOptions {
  FrameSize size;          // the frames handed out (default: native, as displayed)
  FrameSize display;       // a second copy per frame (for windows, annotated video); default none
  bool display_enabled = false;
  int width = 0, height = 0;  // cameras: requested size (0: the camera's default)
  double fps = 0;             // cameras: requested rate (0: default)
  bool realtime = true;       // files: deliver at the file's own rate (false: as fast as decoded)
  bool loop = false;          // files: restart at the end instead of ending
  bool wait_for_consumer = false;  // files: drop nothing; decoding waits until each frame is taken
  int max_reconnects = 5;     // live sources: reopen attempts after a failure before giving up
  std::chrono::milliseconds backoff{200};       // first wait before reopening; doubles per attempt
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds io_timeout{10000};  // streams: longest wait in one open or read
  std::shared_ptr<FrameSignal> signal;          // notified as well as next()'s waiters
  std::function<bool()> cancel;  // polled while opening, reconnecting and reading: true gives up
};

struct CapturedFrame {
  torch::Tensor rgb;        // uint8 [H, W, 3] at CaptureOptions::size (undefined from take())
  torch::Tensor display;    // uint8 [h, w, 3] at CaptureOptions::display, when enabled
  int64_t sequence = 0;     // 0-based count of frames grabbed from the source before this one
  double timestamp = 0;     // seconds since the capture started, when it was grabbed
  std::chrono::steady_clock::time_point grabbed_at;  // the same instant, for latencies across captures
  double source_time = -1;  // the source's own timestamp in seconds (-1: none)
  int64_t dropped = 0;      // frames grabbed but never handed out, so far
  int reconnects = 0;       // reopenings before this frame: a change means the stream restarted
};

// The backend that produces decoded frames (FFmpeg or OpenCV); defined in capture_source.h.
class CaptureSource;

class Capture {
 public:
  enum class Kind { kCamera, kStream, kFile };
  enum class State { kRunning, kEnded, kLost };

  // "0", "1", ...: camera index; "/dev/video*": V4L2 device; "scheme://...": stream; else a
  // file. Throws VideoError naming the source when it cannot be opened (live sources after the
  // backoff), or kBadRequest for a scheme FFmpeg has no protocol for.
  explicit Capture(const std::string& source, const CaptureOptions& options = {});
  static Kind classify(const std::string& source);  // what the constructor will open it as
  ~Capture();  // stops the grab thread and releases the source
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // The newest frame not yet returned, waiting up to `timeout` for one. std::nullopt on a
  // timeout or when a file source has ended (ended() tells which). Throws
  // VideoError(kSourceLost) once a live source is gone for good.
  std::optional<CapturedFrame> next(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  // Without waiting: copies the newest frame into `rgb` (`capacity` bytes, which must equal
  // its size: frame_bytes() is fixed when options.size crops) and fills `meta` (and allocates
  // meta->display when enabled). False when there is none; VideoError(kBadRequest) when the
  // frame's size differs from `capacity` (a reconnected source at a new size, uncropped).
  bool take(uint8_t* rgb, int64_t capacity, CapturedFrame* meta);
  void stop();

  Kind kind() const { return kind_; }
  State state() const;
  std::string problem() const;  // why the source was lost, or why a file ended early (decode errors)
  bool ended() const;
  int64_t grabbed() const { return grabbed_.load(); }
  int64_t dropped() const;
  int reconnects() const { return reconnects_.load(); }
  double fps() const { return fps_; }
  int width() const { return width_; }    // the source, as displayed
  int height() const { return height_; }
  Geometry geometry() const;               // of the frames handed out (fixed when size crops)
  int64_t frame_bytes() const { return geometry().frame_bytes(); }
  const std::string& source() const { return source_; }

 private:
  bool open_source();  // one attempt; true when frames can be read
  bool reconnect();    // bounded retries with backoff; false when giving up or stopping
  void grab_loop();
  bool pace(double source_seconds, int64_t played, std::chrono::steady_clock::time_point start, double* first);
  bool sleep_for(std::chrono::steady_clock::duration d);  // false when stopped meanwhile
  void publish(double source_time, std::chrono::steady_clock::time_point grabbed_at);
  void notify_locked();
  bool take_locked(uint8_t* rgb, int64_t capacity, CapturedFrame* meta);
  void grab_frames();

  std::string source_;
  CaptureOptions options_;
  Kind kind_;
  std::atomic<bool> stop_flag_{false};  // polled by FFmpeg inside blocking reads; outlives src_
  std::unique_ptr<CaptureSource> src_;
  const AVFrame* pending_ = nullptr;  // decoded while opening, handed out first
  std::vector<uint8_t> back_, slot_;                  // converting into, newest for the consumer
  std::vector<uint8_t> back_display_, slot_display_;
  Geometry geometry_, display_geometry_, slot_geometry_, slot_display_geometry_;
  FrameConverter converter_, display_converter_;
  std::atomic<double> fps_{0};  // rewritten by the grab thread on reconnect
  std::atomic<int> width_{0}, height_{0};
  std::chrono::steady_clock::time_point start_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool fresh_ = false, ended_ = false, failed_ = false, stopping_ = false;
  std::string failure_, end_problem_, last_error_;
  int64_t slot_sequence_ = 0, dropped_ = 0;
  double slot_source_time_ = -1;
  std::chrono::steady_clock::time_point slot_grabbed_at_;
  int slot_reconnects_ = 0;
  std::atomic<int64_t> grabbed_{0};
  std::atomic<int> reconnects_{0};
  std::thread thread_;
};

}  // namespace trecvit::video

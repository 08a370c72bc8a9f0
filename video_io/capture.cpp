#include "video_io/capture.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "video_io/error.h"

namespace trecvit::video {

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Capture::Capture(const std::string& source, const CaptureOptions& options)
    : source_(source), options_(options), frame_(new cv::Mat), rgb_(new cv::Mat), slot_(new cv::Mat) {
  if (all_digits(source)) {
    kind_ = Kind::kCamera;
    camera_index_ = std::stoi(source);
  } else if (source.rfind("/dev/video", 0) == 0) {
    kind_ = Kind::kCamera;
  } else if (source.find("://") != std::string::npos) {
    kind_ = Kind::kStream;
  } else {
    kind_ = Kind::kFile;
    struct stat st;
    if (::stat(source.c_str(), &st) != 0) throw VideoError(ErrorKind::kMissingFile, source, "no such file");
  }
  if (!open_source()) {
    if (kind_ == Kind::kFile) throw VideoError(ErrorKind::kNotAVideo, source, "OpenCV (FFmpeg back end) cannot open it");
    if (!reconnect()) throw VideoError(ErrorKind::kSourceLost, source, failure_);
    reconnects_ = 0;  // attempts to open are not reconnections
  }
  start_ = std::chrono::steady_clock::now();
  thread_ = std::thread(&Capture::grab_loop, this);
}

Capture::~Capture() { stop(); }

void Capture::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  cap_.reset();
}

bool Capture::open_source() {
  cap_ = std::make_unique<cv::VideoCapture>();
  bool ok = false;
  try {
    if (kind_ == Kind::kCamera) {
      ok = camera_index_ >= 0 ? cap_->open(camera_index_, cv::CAP_ANY) : cap_->open(source_, cv::CAP_V4L2);
      if (ok) {
        cap_->set(cv::CAP_PROP_BUFFERSIZE, 1);  // V4L2: hand out the newest frame, not a queued one
        if (options_.width > 0) cap_->set(cv::CAP_PROP_FRAME_WIDTH, options_.width);
        if (options_.height > 0) cap_->set(cv::CAP_PROP_FRAME_HEIGHT, options_.height);
        if (options_.fps > 0) cap_->set(cv::CAP_PROP_FPS, options_.fps);
      }
    } else {
      const int ms = static_cast<int>(options_.io_timeout.count());
      ok = cap_->open(source_, cv::CAP_FFMPEG, {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv::CAP_PROP_READ_TIMEOUT_MSEC, ms});
    }
  } catch (const cv::Exception& e) {
    failure_ = e.what();
    ok = false;
  }
  if (!ok || !cap_->isOpened()) {
    cap_.reset();
    return false;
  }
  fps_ = cap_->get(cv::CAP_PROP_FPS);
  width_ = static_cast<int>(cap_->get(cv::CAP_PROP_FRAME_WIDTH));
  height_ = static_cast<int>(cap_->get(cv::CAP_PROP_FRAME_HEIGHT));
  return true;
}

bool Capture::sleep_for(std::chrono::steady_clock::duration d) {
  std::unique_lock<std::mutex> lk(mu_);
  return !cv_.wait_for(lk, d, [this] { return stopping_; });
}

bool Capture::reconnect() {
  auto wait = options_.backoff;
  for (int attempt = 1; attempt <= options_.max_reconnects; ++attempt) {
    cap_.reset();
    if (!sleep_for(wait)) return false;
    if (open_source()) {
      ++reconnects_;
      return true;
    }
    wait = std::min(wait * 2, options_.max_backoff);
  }
  failure_ = "cannot be opened; gave up after " + std::to_string(options_.max_reconnects) +
             " reconnect attempts with backoff from " + std::to_string(options_.backoff.count()) + " ms";
  return false;
}

void Capture::grab_loop() {
  auto play_start = std::chrono::steady_clock::now();
  double first_ms = -1;
  int64_t played = 0;
  while (true) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return;
    }
    bool ok = false;
    try {
      ok = cap_ && cap_->read(*frame_) && !frame_->empty();
    } catch (const cv::Exception& e) {
      failure_ = e.what();
    }
    if (!ok) {
      if (kind_ == Kind::kFile && options_.loop && played > 0 && open_source()) {
        play_start = std::chrono::steady_clock::now();
        first_ms = -1;
        played = 0;
        continue;
      }
      const bool gone = kind_ == Kind::kFile || !reconnect();
      if (!gone) continue;
      std::lock_guard<std::mutex> lk(mu_);
      if (kind_ == Kind::kFile) ended_ = true; else if (!stopping_) failed_ = true;
      cv_.notify_all();
      return;
    }
    const double source_ms = cap_->get(cv::CAP_PROP_POS_MSEC);
    if (kind_ == Kind::kFile && options_.realtime) {
      // Keep the file's own clock (its timestamps; frame count / fps when it has none).
      if (first_ms < 0) first_ms = source_ms;
      double at_ms = source_ms - first_ms;
      if (!(at_ms >= 0) || (played > 0 && at_ms == 0)) at_ms = fps_ > 0 ? played * 1000.0 / fps_ : 0;
      auto due = play_start + std::chrono::microseconds(static_cast<int64_t>(at_ms * 1000));
      if (due > std::chrono::steady_clock::now() && !sleep_for(due - std::chrono::steady_clock::now())) return;
    }
    ++played;
    const int ch = frame_->channels();
    cv::cvtColor(*frame_, *rgb_, ch == 1 ? cv::COLOR_GRAY2RGB : ch == 4 ? cv::COLOR_BGRA2RGB : cv::COLOR_BGR2RGB);
    const int64_t seq = grabbed_++;
    std::lock_guard<std::mutex> lk(mu_);
    if (fresh_) ++dropped_;  // the consumer never saw the previous one
    cv::swap(*slot_, *rgb_);
    slot_sequence_ = seq;
    slot_time_ = seconds_since(start_);
    slot_source_time_ = source_ms >= 0 ? source_ms / 1000.0 : -1;
    fresh_ = true;
    cv_.notify_all();
  }
}

std::optional<CapturedFrame> Capture::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [this] { return fresh_ || ended_ || failed_ || stopping_; });
  if (fresh_) {
    CapturedFrame f;
    f.rgb = torch::empty({slot_->rows, slot_->cols, 3}, torch::kByte);
    for (int y = 0; y < slot_->rows; ++y)
      std::memcpy(f.rgb.data_ptr<uint8_t>() + static_cast<int64_t>(y) * slot_->cols * 3, slot_->ptr(y), slot_->cols * 3);
    f.sequence = slot_sequence_;
    f.timestamp = slot_time_;
    f.source_time = slot_source_time_;
    f.dropped = dropped_;
    fresh_ = false;
    return f;
  }
  if (failed_) throw VideoError(ErrorKind::kSourceLost, source_, failure_);
  return std::nullopt;
}

bool Capture::ended() const {
  std::lock_guard<std::mutex> lk(mu_);
  return ended_ && !fresh_;
}

int64_t Capture::dropped() const {
  std::lock_guard<std::mutex> lk(mu_);
  return dropped_;
}

}  // namespace trecvit::video

#include "video_io/capture.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "video_io/capture_source.h"
#include "video_io/error.h"
#include "blocks/parse_number.h"

namespace trecvit::video {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kSimdSlack = 64;  // swscale may write a little past the last row

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void check_scheme(const std::string& source) {
  const std::string scheme = source.substr(0, source.find("://"));
  const auto known = ffmpeg_input_protocols();
  if (std::find(known.begin(), known.end(), scheme) != known.end()) return;
  std::string list;
  for (const auto& p : known) list += (list.empty() ? "" : ", ") + p;
  throw VideoError(ErrorKind::kBadRequest, source, "unknown source scheme '" + scheme + "' (this FFmpeg reads: " + list + ")");
}

}  // namespace

uint64_t FrameSignal::count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return count_;
}

void FrameSignal::notify() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++count_;
  }
  cv_.notify_all();
}

uint64_t FrameSignal::wait(uint64_t seen, Clock::duration timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return count_ != seen; });
  return count_;
}

Capture::Kind Capture::classify(const std::string& source) {
  if (all_digits(source) || source.rfind("/dev/video", 0) == 0) return Kind::kCamera;
  return source.find("://") != std::string::npos ? Kind::kStream : Kind::kFile;
}

Capture::Capture(const std::string& source, const CaptureOptions& options)
    : source_(source), options_(options), kind_(classify(source)) {
  if (kind_ == Kind::kCamera && all_digits(source)) {
    if (source.size() > 4) throw VideoError(ErrorKind::kBadRequest, source, "not a camera index (0 to 9999)");
    src_ = make_camera_source(source, static_cast<int>(*parse_int(source)), options_);
  } else if (kind_ == Kind::kCamera) {
    src_ = make_camera_source(source, -1, options_);
  } else {
    if (kind_ == Kind::kStream) check_scheme(source);
    src_ = make_ffmpeg_source(source, options_, stop_flag_);
  }
  if (kind_ != Kind::kFile && options_.wait_for_consumer)
    throw VideoError(ErrorKind::kBadRequest, source, "only files can wait for the consumer; a live source cannot be paused");
  if (!open_source()) {  // a missing or broken file throws at once, never reconnects
    const std::string first = failure_;
    if (!reconnect()) {
      // Never opened: say so, with the attempts and the source's own last error.
      std::string last = last_error_.empty() ? first : last_error_;
      // Drop the "SOURCE: source lost: " that VideoError::what() puts in front of the problem.
      for (const std::string& prefix : {source + ": ", std::string(to_string(ErrorKind::kSourceLost)) + ": "})
        if (last.rfind(prefix, 0) == 0) last = last.substr(prefix.size());
      throw VideoError(ErrorKind::kSourceLost, source,
                       "cannot be opened (" + std::to_string(options_.max_reconnects + 1) + " attempt" +
                           (options_.max_reconnects ? "s, backoff from " + std::to_string(options_.backoff.count()) + " ms" : "") +
                           "): " + last);
    }
    reconnects_ = 0;  // attempts to open are not reconnections
  }
  start_ = Clock::now();
  thread_ = std::thread(&Capture::grab_loop, this);
}

Capture::~Capture() { stop(); }

void Capture::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  stop_flag_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  src_.reset();
}

bool Capture::open_source() {
  try {
    src_->open();
    // The first frame fixes the displayed size: cameras report theirs unreliably.
    const AVFrame* first = src_->read();
    if (!first) throw VideoError(ErrorKind::kCorruptData, source_, "no frame could be decoded (" + src_->problem() + ")");
    const int rot = src_->rotation();
    const bool swap = rot == 90 || rot == 270;
    width_ = swap ? first->height : first->width;
    height_ = swap ? first->width : first->height;
    fps_ = src_->fps();
    const Geometry g = plan_geometry(width_, height_, rot, options_.size, source_);
    const Geometry d = options_.display_enabled ? plan_geometry(width_, height_, rot, options_.display, source_) : Geometry{};
    {
      std::lock_guard<std::mutex> lk(mu_);
      geometry_ = g;
      display_geometry_ = d;
    }
    pending_ = first;
    return true;
  } catch (const VideoError& e) {
    if (kind_ == Kind::kFile) throw;
    failure_ = e.what();
    src_->close();
    return false;
  }
}

bool Capture::sleep_for(Clock::duration d) {
  const auto until = Clock::now() + d;
  std::unique_lock<std::mutex> lk(mu_);
  // In slices, so a cancel request (which cannot notify us) is seen within 50 ms.
  while (!stopping_ && !(options_.cancel && options_.cancel())) {
    const auto now = Clock::now();
    if (now >= until) return true;
    cv_.wait_for(lk, std::min<Clock::duration>(until - now, std::chrono::milliseconds(50)), [this] { return stopping_; });
  }
  return false;
}

bool Capture::reconnect() {
  auto wait = options_.backoff;
  std::string last = failure_;  // what made the source fail, until an attempt says more
  for (int attempt = 1; attempt <= options_.max_reconnects; ++attempt) {
    src_->close();
    if (!sleep_for(wait)) return false;
    if (open_source()) {
      ++reconnects_;
      return true;
    }
    if (!failure_.empty()) last = last_error_ = failure_;
    wait = std::min(wait * 2, options_.max_backoff);
  }
  failure_ = "cannot be opened; gave up after " + std::to_string(options_.max_reconnects) +
             " reconnect attempts with backoff from " + std::to_string(options_.backoff.count()) + " ms" +
             (last.empty() ? "" : " (last: " + last + ")");
  return false;
}

bool Capture::pace(double source_seconds, int64_t played, Clock::time_point start, double* first) {
  // Keep the file's own clock (its timestamps; frame count / fps when it has none).
  if (*first < 0 && source_seconds >= 0) *first = source_seconds;
  double at = source_seconds >= 0 ? source_seconds - *first : -1;
  if (!(at >= 0) || (played > 0 && at == 0)) at = fps_ > 0 ? played / fps_ : 0;
  const auto due = start + std::chrono::microseconds(static_cast<int64_t>(at * 1e6));
  const auto now = Clock::now();
  return due <= now || sleep_for(due - now);
}

void Capture::notify_locked() {
  cv_.notify_all();
  if (options_.signal) options_.signal->notify();
}

void Capture::publish(double source_time, Clock::time_point grabbed_at) {
  std::unique_lock<std::mutex> lk(mu_);
  if (options_.wait_for_consumer) {
    cv_.wait(lk, [this] { return !fresh_ || stopping_; });
    if (stopping_) return;
  }
  if (fresh_) ++dropped_;  // the consumer never saw the previous one
  std::swap(back_, slot_);
  std::swap(back_display_, slot_display_);
  slot_geometry_ = geometry_;
  slot_display_geometry_ = display_geometry_;
  slot_sequence_ = grabbed_++;
  slot_grabbed_at_ = grabbed_at;
  slot_source_time_ = source_time;
  slot_reconnects_ = reconnects_;
  fresh_ = true;
  notify_locked();
}

void Capture::grab_loop() {
  try {
    grab_frames();
  } catch (const std::exception& e) {  // bad_alloc, cv::Exception: the source is lost, the process lives
    std::lock_guard<std::mutex> lk(mu_);
    failed_ = true;
    failure_ = std::string("capture failed: ") + e.what();
    notify_locked();
  }
}

void Capture::grab_frames() {
  auto play_start = Clock::now();
  double first = -1;
  int64_t played = 0;
  while (!stop_flag_) {
    const AVFrame* f = pending_;  // the frame open_source() decoded to learn the size
    pending_ = nullptr;
    std::string problem;
    try {
      if (!f) f = src_->read();
    } catch (const std::exception& e) {
      f = nullptr;
      problem = e.what();
    }
    if (!f) {
      if (stop_flag_) return;
      if (kind_ == Kind::kFile && options_.loop && played > 0) {
        try {
          src_->open();
          play_start = Clock::now();
          first = -1;
          played = 0;
          continue;
        } catch (const VideoError& e) {
          problem = e.what();
        }
      }
      if (problem.empty()) problem = src_->problem();
      if (kind_ != Kind::kFile) failure_ = problem;
      const bool gone = kind_ == Kind::kFile || !reconnect();
      if (!gone) {
        first = -1;
        played = 0;
        play_start = Clock::now();
        continue;
      }
      std::lock_guard<std::mutex> lk(mu_);
      if (kind_ == Kind::kFile) {
        ended_ = true;
        if (problem != "the stream ended") end_problem_ = problem;  // damaged or unreadable data
      } else if (!stopping_) {
        failed_ = true;
        if (failure_.empty()) failure_ = problem;
      }
      notify_locked();
      return;
    }
    const double st = src_->seconds(f);
    if (kind_ == Kind::kFile && options_.realtime && !pace(st, played, play_start, &first)) return;
    const auto grabbed_at = Clock::now();  // a paced file's frame arrives when it is due, like a camera's
    ++played;
    // Sized once; again only when a reconnected source changed its frame size.
    if (back_.size() < static_cast<size_t>(geometry_.frame_bytes() + kSimdSlack)) back_.resize(geometry_.frame_bytes() + kSimdSlack);
    if (back_display_.size() < static_cast<size_t>(display_geometry_.frame_bytes() + kSimdSlack))
      back_display_.resize(display_geometry_.frame_bytes() + kSimdSlack);
    try {
      converter_.convert(f, geometry_, back_.data());
      if (options_.display_enabled) display_converter_.convert(f, display_geometry_, back_display_.data());
    } catch (const VideoError& e) {
      std::lock_guard<std::mutex> lk(mu_);
      failed_ = true;
      failure_ = e.what();
      notify_locked();
      return;
    }
    publish(st, grabbed_at);
  }
}

bool Capture::take(uint8_t* rgb, int64_t capacity, CapturedFrame* meta) {
  std::lock_guard<std::mutex> lk(mu_);
  return take_locked(rgb, capacity, meta);
}

bool Capture::take_locked(uint8_t* rgb, int64_t capacity, CapturedFrame* meta) {
  if (!fresh_) return false;
  if (rgb && capacity != slot_geometry_.frame_bytes())
    throw VideoError(ErrorKind::kBadRequest, source_,
                     "the frame is " + std::to_string(slot_geometry_.out_w) + "x" + std::to_string(slot_geometry_.out_h) +
                         " now (the source changed size); the buffer holds " + std::to_string(capacity) + " bytes");
  if (rgb) std::memcpy(rgb, slot_.data(), slot_geometry_.frame_bytes());
  if (options_.display_enabled) {
    const auto& g = slot_display_geometry_;
    meta->display = torch::empty({g.out_h, g.out_w, 3}, torch::kByte);
    std::memcpy(meta->display.data_ptr<uint8_t>(), slot_display_.data(), g.frame_bytes());
  }
  meta->sequence = slot_sequence_;
  meta->grabbed_at = slot_grabbed_at_;
  meta->timestamp = std::chrono::duration<double>(slot_grabbed_at_ - start_).count();
  meta->source_time = slot_source_time_;
  meta->dropped = dropped_;
  meta->reconnects = slot_reconnects_;
  fresh_ = false;
  cv_.notify_all();  // a grab thread waiting for the consumer may go on
  return true;
}

std::optional<CapturedFrame> Capture::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [this] { return fresh_ || ended_ || failed_ || stopping_; });
  if (!fresh_) {
    if (failed_) throw VideoError(ErrorKind::kSourceLost, source_, failure_);
    return std::nullopt;
  }
  CapturedFrame f;
  f.rgb = torch::empty({slot_geometry_.out_h, slot_geometry_.out_w, 3}, torch::kByte);
  take_locked(f.rgb.data_ptr<uint8_t>(), f.rgb.numel(), &f);
  return f;
}

Capture::State Capture::state() const {
  std::lock_guard<std::mutex> lk(mu_);
  if (fresh_) return State::kRunning;
  if (failed_) return State::kLost;
  return ended_ ? State::kEnded : State::kRunning;
}

std::string Capture::problem() const {
  std::lock_guard<std::mutex> lk(mu_);
  return failed_ ? failure_ : end_problem_;
}

Geometry Capture::geometry() const {
  std::lock_guard<std::mutex> lk(mu_);
  return geometry_;
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

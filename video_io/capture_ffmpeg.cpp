#include <chrono>

#include "video_io/capture_source.h"
#include "video_io/decoder.h"
#include "video_io/error.h"
#include "video_io/input.h"
#include "video_io/rotate.h"

namespace trecvit::video {
namespace {

using Clock = std::chrono::steady_clock;

class FfmpegSource : public CaptureSource {
 public:
  FfmpegSource(std::string source, const CaptureOptions& options, const std::atomic<bool>& stop)
      : source_(std::move(source)), timeout_(options.io_timeout), cancel_(options.cancel), stop_(stop) {}

  void open() override {
    close();
    InputOptions o;
    o.live = true;
    o.interrupt = [this] { return stop_.load() || Clock::now() > deadline_.load() || (cancel_ && cancel_()); };
    deadline_ = Clock::now() + timeout_;
    input_ = Input::open(source_, o);
    // Slice threads only: frame threads add latency and can hang when a live decode stops.
    decoder_ = std::make_unique<Decoder>(*input_, DecoderOptions{1, ThreadType::kSlice});
    const AVStream* st = input_->stream();
    tb_ = av_q2d(st->time_base);
    start_ = st->start_time;
    const AVRational r = av_guess_frame_rate(input_->fmt(), const_cast<AVStream*>(st), nullptr);
    fps_ = r.num > 0 && r.den > 0 ? av_q2d(r) : 0;
    rotation_ = display_rotation_cw(st);
    problem_.clear();
  }

  void close() override {
    decoder_.reset();
    input_.reset();
  }

  const AVFrame* read() override {
    if (!decoder_) return nullptr;
    deadline_ = Clock::now() + timeout_;
    const AVFrame* f = decoder_->next();
    if (!f) {
      problem_ = decoder_->last_error().empty() ? "the stream ended" : decoder_->last_error();
      if (!stop_ && Clock::now() > deadline_.load())
        problem_ = "no data for " + std::to_string(timeout_.count()) + " ms (" + problem_ + ")";
    }
    return f;
  }

  double seconds(const AVFrame* f) const override {
    const int64_t ts = Decoder::timestamp(f);
    if (ts == AV_NOPTS_VALUE) return -1;
    return static_cast<double>(ts - (start_ != AV_NOPTS_VALUE ? start_ : 0)) * tb_;
  }
  double fps() const override { return fps_; }
  int rotation() const override { return rotation_; }

 private:
  std::string source_;
  std::chrono::milliseconds timeout_;
  std::function<bool()> cancel_;
  const std::atomic<bool>& stop_;
  std::atomic<Clock::time_point> deadline_{Clock::time_point::max()};
  std::unique_ptr<Input> input_;  // declared before the decoder, which refers to it
  std::unique_ptr<Decoder> decoder_;
  double tb_ = 0, fps_ = 0;
  int64_t start_ = AV_NOPTS_VALUE;
  int rotation_ = 0;
};

}  // namespace

std::unique_ptr<CaptureSource> make_ffmpeg_source(const std::string& source, const CaptureOptions& options,
                                                  const std::atomic<bool>& stop) {
  return std::make_unique<FfmpegSource>(source, options, stop);
}

std::vector<std::string> ffmpeg_input_protocols() {
  std::vector<std::string> out;
  void* opaque = nullptr;
  while (const char* name = avio_enum_protocols(&opaque, 0)) out.emplace_back(name);
  return out;
}

}  // namespace trecvit::video

#include "jobs/stream_job.h"

#include <algorithm>
#include <filesystem>
#include <atomic>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "jobs/labels.h"
#include "jobs/stream_support.h"
#include "models/checkpoint.h"
#include "video_io/error.h"
#include "video_io/video_reader.h"
#include "video_io/writer.h"
#include "blocks/parse_number.h"

namespace trecvit {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One source's capture and bookkeeping across steps.
struct Stream {
  std::unique_ptr<video::Capture> capture;
  SourceSummary summary;
  LatencyStats latency;
  int last_reconnects = 0;
  int64_t since_reset = 0;
  bool done = false;
  bool started = false;
  Clock::time_point first_frame, last_frame;
  // Frames per second over the grab times of the processed frames: N frames span N - 1 gaps.
  double fps() const {
    const double span = started ? std::chrono::duration<double>(last_frame - first_frame).count() : 0;
    return summary.frames > 1 && span > 0 ? (summary.frames - 1) / span : 0;
  }
  std::vector<LabelProb> top;
  std::unique_ptr<video::VideoWriter> writer;
  std::string writer_path;
  int64_t writer_h = 0, writer_w = 0;
};

// "out.mp4" for one source; "out.0.mp4", "out.1.mp4", ... for several.
std::string writer_path(const std::string& out, size_t i, size_t n) {
  if (n == 1) return out;
  std::filesystem::path p(out);
  return (p.parent_path() / (p.stem().string() + "." + std::to_string(i) + p.extension().string())).string();
}

video::FrameSize display_size(int short_side) { return video::FrameSize::short_side_crop(short_side, 0, 0); }

}  // namespace

StreamReadout StreamReadout::parse(const std::string& text) {
  StreamReadout r;
  if (text == "mean") return r;
  if (text == "last") {
    r.kind = Kind::kLast;
    return r;
  }
  if (text.rfind("ema:", 0) == 0) {
    const double a = parse_double(text.substr(4)).value_or(-1);
    if (a > 0 && a <= 1) {
      r.kind = Kind::kEma;
      r.alpha = a;
      return r;
    }
    throw std::invalid_argument("--readout " + text + ": ema:A needs a weight A in (0, 1], e.g. ema:0.1");
  }
  throw std::invalid_argument("--readout " + text + ": expected mean, last or ema:A");
}

std::string StreamReadout::name() const {
  if (kind != Kind::kEma) return kind == Kind::kMean ? "mean" : "last";
  std::ostringstream os;
  os << "ema:" << alpha;
  return os.str();
}

nlohmann::json SourceSummary::to_json() const {
  return {{"source", source}, {"state", state}, {"problem", problem}, {"frames", frames}, {"dropped", dropped},
          {"grabbed", grabbed}, {"resets", resets}, {"reconnects", reconnects}, {"fps", fps},
          {"latency_ms", {{"p50", latency_p50_ms}, {"p95", latency_p95_ms}, {"max", latency_max_ms}}}};
}

nlohmann::json StreamResult::to_json() const {
  nlohmann::json s = nlohmann::json::array();
  for (const auto& x : sources) s.push_back(x.to_json());
  return {{"sources", s}, {"steps", steps}, {"seconds", seconds}, {"peak_rss_bytes", peak_rss_bytes},
          {"stopped", stopped}, {"lost", lost}};
}

StreamResult run_stream(const StreamJob& job, const ProgressSink& sink, const CancelToken* cancel,
                        const StreamDisplay& display) {
  const Reporter report(sink, "stream");
  if (job.sources.empty()) throw std::invalid_argument("stream: give at least one SOURCE");
  if (job.topk < 1) throw std::invalid_argument("--topk: must be >= 1, got " + std::to_string(job.topk));
  if (job.threshold < 0 || job.threshold > 1) throw std::invalid_argument("--threshold: must be in [0, 1]");
  if (job.reset_every < 0 || job.max_frames < 0 || job.duration < 0)
    throw std::invalid_argument("--reset-every, --max-frames and --duration must not be negative");
  TRecViT model = load_checkpoint(job.checkpoint);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto& cfg = model->config();
  const StreamReadout readout = StreamReadout::parse(job.readout.empty() ? cfg.readout : job.readout);
  const auto names = !job.labels.empty()              ? load_class_names(job.labels, cfg.num_classes)
                     : !model->class_names().empty() ? model->class_names()
                                                      : default_class_names(cfg.num_classes);
  const int64_t topk = std::min<int64_t>(job.topk, cfg.num_classes);

  video::CaptureOptions co;
  co.size = video::model_input_size(cfg.image_height, cfg.image_width);
  co.realtime = !job.as_fast_as_possible;
  co.loop = job.loop;
  co.wait_for_consumer = job.no_drop;
  co.max_reconnects = job.reconnects;
  co.backoff = job.backoff;
  co.max_backoff = std::max(job.backoff, std::chrono::milliseconds(5000));
  co.io_timeout = job.io_timeout;
  co.signal = std::make_shared<video::FrameSignal>();
  co.display_enabled = job.display || !job.write_video.empty();
  const size_t S = job.sources.size();
  std::vector<Stream> streams(S);
  co.display = display_size(job.display_short_side);
  for (const auto& src : job.sources)
    if (job.no_drop && video::Capture::classify(src) != video::Capture::Kind::kFile)
      throw std::invalid_argument("--no-drop: " + src + " is a live source; only files can wait for the model");
  // All at once: N network cameras start in the time of the slowest, not the sum. The first
  // failure (or a stop request) makes the others give up at their next timeout poll.
  std::atomic<bool> abort_open{false};
  co.cancel = [&abort_open, cancel] { return abort_open.load() || cancelled(cancel); };
  report.stage("opening " + std::to_string(S) + (S > 1 ? " sources" : " source"));
  std::exception_ptr first_error;
  {
    std::mutex mu;
    std::vector<std::thread> openers;
    for (size_t i = 0; i < S; ++i)
      openers.emplace_back([&, i] {
        try {
          streams[i].capture = std::make_unique<video::Capture>(job.sources[i], co);  // throws naming the source
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu);
          if (!first_error && !cancelled(cancel)) first_error = std::current_exception();
          abort_open = true;
        }
      });
    for (auto& t : openers) t.join();
  }
  if (first_error) std::rethrow_exception(first_error);
  StreamResult result;
  if (cancelled(cancel)) {
    result.stopped = true;
    return result;
  }
  for (size_t i = 0; i < S; ++i) streams[i].summary.source = job.sources[i];
  report.stage("streaming " + std::to_string(S) + (S > 1 ? " sources" : " source") + " with " + job.checkpoint + " (" +
               std::to_string(cfg.image_width) + "x" + std::to_string(cfg.image_height) + ", readout " + readout.name() + ")");

  const int64_t H = cfg.image_height, W = cfg.image_width;
  auto batch = torch::empty({static_cast<int64_t>(S), 1, H, W, 3}, torch::kByte);
  auto state = model->init_stream(static_cast<int64_t>(S));
  torch::Tensor ema = torch::zeros({static_cast<int64_t>(S), cfg.rep_size});
  std::vector<video::CapturedFrame> meta(S);
  const auto start = Clock::now();
  auto last_status = start;

  auto finish = [&](Stream& s, const std::string& state_name) {
    s.done = true;
    s.summary.state = state_name;
    s.capture->stop();
  };
  auto emit_status = [&] {
    for (auto& s : streams) {
      report(EventKind::kStatus,
             {{"source", s.summary.source}, {"frames", s.summary.frames}, {"fps", s.fps()},
              {"latency_p50_ms", s.latency.recent_percentile(0.5)}, {"latency_p95_ms", s.latency.recent_percentile(0.95)},
              {"dropped", s.capture->dropped()}, {"reconnects", s.capture->reconnects()},
              {"state", s.done ? s.summary.state : "running"},
              {"top", s.top.empty() ? nlohmann::json(nullptr) : nlohmann::json{{"label", s.top[0].label}, {"prob", s.top[0].prob}}}});
    }
  };

  while (true) {
    if (cancelled(cancel)) {
      result.stopped = true;
      break;
    }
    if (job.duration > 0 && seconds_between(start, Clock::now()) >= job.duration) break;
    const uint64_t seen = co.signal->count();
    std::vector<int64_t> rows;
    for (size_t i = 0; i < S; ++i) {
      auto& s = streams[i];
      if (s.done) continue;
      if (s.capture->take(batch[i].data_ptr<uint8_t>(), H * W * 3, &meta[i])) {
        rows.push_back(static_cast<int64_t>(i));
        continue;
      }
      const auto st = s.capture->state();
      if (st == video::Capture::State::kEnded) {
        s.summary.problem = s.capture->problem();  // a damaged file ends early: say so
        if (!s.summary.problem.empty()) report.problem(s.summary.source + ": ended early: " + s.summary.problem);
        finish(s, "ended");
      }
      if (st == video::Capture::State::kLost) {
        s.summary.problem = s.capture->problem();
        report.problem(s.summary.source + ": lost: " + s.summary.problem);
        result.lost.push_back(s.summary.source);
        finish(s, "lost");
      }
    }
    if (Clock::now() - last_status >= std::chrono::duration<double>(job.status_interval_s)) {
      emit_status();
      last_status = Clock::now();
    }
    if (rows.empty()) {
      if (std::all_of(streams.begin(), streams.end(), [](const Stream& s) { return s.done; })) break;
      co.signal->wait(seen, std::chrono::milliseconds(50));
      continue;
    }
    // Restarts: a reconnected source is a new sequence; --reset-every bounds a stream's memory.
    for (int64_t i : rows) {
      auto& s = streams[i];
      const bool reconnected = meta[i].reconnects != s.last_reconnects;
      if (reconnected || (job.reset_every > 0 && s.since_reset == job.reset_every)) {
        model->reset_stream(state, i);
        s.since_reset = 0;
        ++s.summary.resets;
        if (reconnected)
          report.problem(s.summary.source + ": reconnected (reconnect " + std::to_string(meta[i].reconnects) + "); its state restarts");
        s.last_reconnects = meta[i].reconnects;
      }
      ++s.since_reset;
    }
    auto idx = torch::tensor(rows, torch::kLong);
    const bool all = rows.size() == S;
    auto frames = all ? batch : batch.index_select(0, idx);
    auto z = model->advance(state, frames, all ? torch::Tensor() : idx).select(1, 0);  // [b, rep]
    if (job.step_delay.count() > 0) std::this_thread::sleep_for(job.step_delay);
    torch::Tensor rep;
    switch (readout.kind) {
      case StreamReadout::Kind::kMean:
        rep = state.z_sum.index_select(0, idx) / state.frames_seen.index_select(0, idx).to(z.scalar_type()).unsqueeze(1);
        break;
      case StreamReadout::Kind::kLast: rep = z; break;
      case StreamReadout::Kind::kEma: {
        auto first = (state.frames_seen.index_select(0, idx) == 1).unsqueeze(1);
        auto prev = ema.index_select(0, idx);
        rep = torch::where(first, z, readout.alpha * z + (1 - readout.alpha) * prev);
        ema.index_copy_(0, idx, rep);
        break;
      }
    }
    auto logits = model->head(rep).to(torch::kDouble);
    auto probs = torch::softmax(logits, 1);
    auto [top_p, top_i] = probs.topk(topk, 1);
    const auto now = Clock::now();
    ++result.steps;
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t i = rows[r];
      auto& s = streams[i];
      const auto& m = meta[i];
      if (!s.started) {
        s.started = true;
        s.first_frame = m.grabbed_at;
      }
      s.last_frame = m.grabbed_at;
      const double latency_ms = 1e3 * seconds_between(m.grabbed_at, now);
      s.latency.add(latency_ms);
      s.top.clear();
      nlohmann::json top = nlohmann::json::array();
      for (int64_t k = 0; k < topk; ++k) {
        const double p = top_p[r][k].item<double>();
        if (p < job.threshold) break;  // sorted: the rest are below too
        const std::string& label = names[top_i[r][k].item<int64_t>()];
        s.top.push_back({label, p});
        top.push_back({{"label", label}, {"prob", p}});
      }
      nlohmann::json rec = {{"source", s.summary.source}, {"index", m.sequence},
                            {"pts", m.source_time >= 0 ? nlohmann::json(m.source_time) : nlohmann::json(nullptr)},
                            {"wall", seconds_between(start, now)}, {"latency_ms", latency_ms},
                            {"dropped", m.dropped}, {"topk", top}};
      if (job.logits) {
        auto row = logits[r].contiguous();
        rec["logits"] = std::vector<double>(row.data_ptr<double>(), row.data_ptr<double>() + row.numel());
      }
      report(EventKind::kFrame, std::move(rec));
      ++s.summary.frames;
      if (m.display.defined()) {
        auto annotated = m.display;
        draw_topk(annotated, s.top, s.summary.source + " #" + std::to_string(m.sequence));
        if (!job.write_video.empty()) {
          // H.264 wants even sides: drop a last odd row or column.
          auto even = annotated.narrow(0, 0, annotated.size(0) & ~1).narrow(1, 0, annotated.size(1) & ~1);
          if (!s.writer) {
            s.writer_path = writer_path(job.write_video, i, S);
            const double fps = s.capture->fps() > 0 ? s.capture->fps() : 25;
            s.writer = std::make_unique<video::VideoWriter>(s.writer_path, fps, even.size(1), even.size(0));
            s.writer_h = even.size(0);
            s.writer_w = even.size(1);
          }
          // A reconnected source may come back at another size: keep the file's.
          s.writer->write(even.size(0) == s.writer_h && even.size(1) == s.writer_w ? even : resize_rgb(even, s.writer_h, s.writer_w));
        }
        if (display) display(i, annotated);
      }
      if (job.max_frames > 0 && s.summary.frames >= job.max_frames) finish(s, "done");
    }
  }

  emit_status();
  for (auto& s : streams) {
    s.capture->stop();
    if (s.writer) s.writer->close();  // errors here are the caller's to see
    auto& x = s.summary;
    if (x.state.empty()) x.state = "running";
    x.dropped = s.capture->dropped();
    x.grabbed = s.capture->grabbed();
    x.reconnects = s.capture->reconnects();
    x.fps = s.fps();
    x.latency_p50_ms = s.latency.percentile(0.5);
    x.latency_p95_ms = s.latency.percentile(0.95);
    x.latency_max_ms = s.latency.max();
    result.sources.push_back(x);
  }
  result.seconds = seconds_between(start, Clock::now());
  result.peak_rss_bytes = peak_rss_bytes();
  return result;
}

}  // namespace trecvit

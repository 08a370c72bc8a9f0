#pragma once
// Causal inference on live sources (cameras, network streams, files played like cameras), many
// at once: each step takes the newest frame of every source that has one and advances all of
// those streams in ONE batched model step; streams without a new frame keep their state. Frames
// the model could not keep up with are dropped and counted, so memory stays flat.
//
// Each processed frame is reported as an EventKind::kFrame event:
//   {"source", "index", "pts", "wall", "latency_ms", "dropped", "topk": [{"label", "prob"}][, "logits"]}
// and each source's health every status interval as EventKind::kStatus.
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "jobs/progress.h"
#include "video_io/capture.h"

namespace trecvit {

// How a stream's running prediction is read out of its state.
struct StreamReadout {
  enum class Kind { kMean, kLast, kEma };
  Kind kind = Kind::kMean;
  double alpha = 0;  // kEma: weight of the newest frame, e_t = alpha z_t + (1 - alpha) e_{t-1}
  // "mean", "last" or "ema:A" with 0 < A <= 1; throws std::invalid_argument naming --readout.
  static StreamReadout parse(const std::string& text);
  std::string name() const;
};

struct StreamJob {
  std::string checkpoint;
  std::vector<std::string> sources;  // camera index, /dev/video*, URL or file, as given
  std::string labels;                // one class name per line, or a JSON list / {"name": index} object
  std::string readout;               // "" (the model's own readout), "mean", "last", "ema:A"
  int64_t reset_every = 0;           // restart a stream's state every N frames (0: never)
  int64_t max_frames = 0;            // per source: stop it after N processed frames (0: no limit)
  double duration = 0;               // seconds (0: until every source ends)
  int64_t topk = 5;
  double threshold = 0;              // report only classes with at least this probability
  bool logits = false;               // add the raw logits to each frame event
  bool no_drop = false;              // files only: process every frame (exact offline equivalence)
  bool as_fast_as_possible = false;  // files: decode without pacing at the native rate
  bool loop = false;                 // files: restart at the end
  std::string write_video;           // annotated frames to this file (one per source: name.<i>.ext)
  bool display = false;              // hand annotated frames to the display callback
  int display_short_side = 480;      // annotated frames: the source scaled to this short side
  int reconnects = 5;                // live sources: reopen attempts before a source is lost
  std::chrono::milliseconds backoff{500};
  std::chrono::milliseconds io_timeout{10000};
  double status_interval_s = 1.0;
  std::chrono::milliseconds step_delay{0};  // test hook: a slower model step
};

struct SourceSummary {
  std::string source;
  std::string state;  // "ended", "done" (max frames), "lost", "running" (duration or stop)
  std::string problem;
  int64_t frames = 0, dropped = 0, grabbed = 0, resets = 0;
  int reconnects = 0;
  double fps = 0;  // processed frames per second, between the first and the last processed frame's grab
  double latency_p50_ms = 0, latency_p95_ms = 0, latency_max_ms = 0;
  nlohmann::json to_json() const;
};

struct StreamResult {
  std::vector<SourceSummary> sources;
  int64_t steps = 0;            // batched model steps
  double seconds = 0;
  int64_t peak_rss_bytes = 0;   // the process's
  bool stopped = false;         // a cancel request ended it
  std::vector<std::string> lost;  // sources that stayed lost
  nlohmann::json to_json() const;
};

// Called from the job's thread with each annotated frame (uint8 [h, w, 3] RGB) when
// StreamJob::display is set: the command's --show window.
using StreamDisplay = std::function<void(size_t source, const torch::Tensor& annotated)>;

// Opens every source first (a source that cannot be opened is an error before anything runs),
// then streams until each source ends, is lost or reaches max_frames, the duration passes or
// `cancel` is requested. Lost sources do not stop the others; they are listed in the result.
StreamResult run_stream(const StreamJob& job, const ProgressSink& sink = {}, const CancelToken* cancel = nullptr,
                        const StreamDisplay& display = {});

}  // namespace trecvit

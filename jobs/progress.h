#pragma once
// How a job reports while it runs. A job never prints: it sends structured events to the
// caller's sink (apps/ renders them as progress lines or JSON lines) and polls the caller's
// CancelToken at safe points. Every event serialises to one JSON object.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "train/cancel.h"

namespace trecvit {

enum class EventKind {
  kStage,    // a phase begins: {"message"}
  kStep,     // an optimizer step was logged: {"step", "steps", "epoch", "loss", "accuracy", "lr", "clips_per_s", "eta_s"}
  kEpoch,    // an epoch ended: {"epoch", "skipped"} (unreadable samples replaced so far)
  kEval,     // an evaluation finished: {"split", "count", "top1", "top5", "views", "skipped", "missing"}
  kItem,     // one of many items is done: {"done", "total", "rate", "eta_s"[, "path"]}
  kProblem,  // bad input, counted and survived: {"message"[, "path", "reason"]}
  kFrame,    // a streamed frame's prediction: {"index", "topk": [{"class", "label", "prob"}], ...} (stream: see stream_job.h)
  kStatus,   // a live source's health: {"source", "frames", "fps", "latency_p50_ms", "latency_p95_ms", "dropped", "reconnects", "state", "top"}
};

const char* event_kind_name(EventKind kind);

struct Event {
  EventKind kind;
  std::string job;        // "train", "eval", "data inspect", "data prepare", "data generate", "demo", "stream"
  nlohmann::json fields;  // kind-specific, listed above
  nlohmann::json to_json() const;  // {"event": kind, "job": job, ...fields}
};

// Called from the job's worker threads too (data inspect/prepare/generate): make it thread-safe.
using ProgressSink = std::function<void(const Event&)>;

// Sends to `sink` when there is one: jobs hold a Reporter instead of testing the sink each time.
class Reporter {
 public:
  Reporter(ProgressSink sink, std::string job) : sink_(std::move(sink)), job_(std::move(job)) {}
  void operator()(EventKind kind, nlohmann::json fields) const {
    if (sink_) sink_(Event{kind, job_, std::move(fields)});
  }
  void stage(const std::string& message) const { (*this)(EventKind::kStage, {{"message", message}}); }
  void problem(const std::string& message) const { (*this)(EventKind::kProblem, {{"message", message}}); }

 private:
  ProgressSink sink_;
  std::string job_;
};

// Counts finished items of a parallel loop and reports count, rate and ETA at most every
// `interval_s` seconds (and always for the first and the last item). Thread-safe.
class ItemProgress {
 public:
  ItemProgress(const Reporter& report, int64_t total, double interval_s = 1.0);
  void done(const std::string& path = "");

 private:
  const Reporter& report_;
  int64_t total_;
  double interval_s_;
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace trecvit

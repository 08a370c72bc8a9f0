#include "jobs/progress.h"

#include <chrono>
#include <mutex>

namespace trecvit {

const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::kStage: return "stage";
    case EventKind::kStep: return "step";
    case EventKind::kEpoch: return "epoch";
    case EventKind::kEval: return "eval";
    case EventKind::kItem: return "item";
    case EventKind::kProblem: return "problem";
    case EventKind::kFrame: return "frame";
    case EventKind::kStatus: return "status";
  }
  return "unknown";
}

nlohmann::json Event::to_json() const {
  nlohmann::json j = {{"event", event_kind_name(kind)}, {"job", job}};
  if (fields.is_object())
    for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
  return j;
}

struct ItemProgress::State {
  std::mutex mu;
  int64_t done = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last = start;
};

ItemProgress::ItemProgress(const Reporter& report, int64_t total, double interval_s)
    : report_(report), total_(total), interval_s_(interval_s), state_(std::make_shared<State>()) {}

void ItemProgress::done(const std::string& path) {
  std::lock_guard<std::mutex> lock(state_->mu);
  const int64_t n = ++state_->done;
  const auto now = std::chrono::steady_clock::now();
  if (n != 1 && n != total_ && std::chrono::duration<double>(now - state_->last).count() < interval_s_) return;
  state_->last = now;
  const double elapsed = std::chrono::duration<double>(now - state_->start).count();
  const double rate = elapsed > 0 ? n / elapsed : 0;
  nlohmann::json f = {{"done", n}, {"total", total_}, {"rate", rate}, {"eta_s", rate > 0 ? (total_ - n) / rate : 0.0}};
  if (!path.empty()) f["path"] = path;
  report_(EventKind::kItem, std::move(f));
}

}  // namespace trecvit

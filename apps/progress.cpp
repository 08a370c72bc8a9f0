#include "apps/progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <mutex>

namespace trecvit::cli {
namespace {

CancelToken g_stop;

// On a terminal, step and item lines redraw one line in place; `g_open` is that line's stream
// while it has no newline yet.
std::FILE* g_open = nullptr;

void close_line() {
  if (g_open) std::fputc('\n', g_open), std::fflush(g_open);
  g_open = nullptr;
}

extern "C" void on_stop_signal(int sig) {
  if (g_stop.requested()) _exit(128 + sig);  // the second signal: no more waiting
  g_stop.request();
}

std::string top_line(const nlohmann::json& top) {
  std::string line;
  for (auto& t : top) line += fmt::format("  {:>5.1f}% {}", 100 * t["prob"].get<double>(), t["label"].get<std::string>());
  return line;
}

// A progress line: redrawn in place on a terminal (closed once `last`), a plain line elsewhere.
void progress_line(std::FILE* out, const std::string& line, bool last) {
  if (!isatty(fileno(out))) {
    fmt::print(out, "{}\n", line);
    return;
  }
  if (g_open && g_open != out) close_line();
  // Cut to the terminal's width: a wrapped line would leave its first rows behind.
  winsize ws{};
  const size_t width = ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1 : line.size();
  fmt::print(out, "\r{}\x1b[K", line.substr(0, width));
  g_open = out;
  if (last) close_line();
}

void print_text(const Event& e, std::FILE* out) {
  const auto& f = e.fields;
  if (e.kind == EventKind::kProblem) {
    if (g_open) fmt::print(g_open, "\r\x1b[K"), std::fflush(g_open), g_open = nullptr;  // redrawn by the next one
  } else if (e.kind != EventKind::kStep && e.kind != EventKind::kItem) {
    close_line();  // the last progress line stays on screen above what follows
  }
  switch (e.kind) {
    case EventKind::kStage:
      fmt::print(out, "== {}\n", f["message"].get<std::string>());
      break;
    case EventKind::kStep:
      progress_line(out,
                    fmt::format("step {:>6}/{} epoch {:6.2f} loss {:.4f} acc {:5.1f}% lr {:.2e} {:6.1f} clips/s ETA {}",
                                f["step"].get<int64_t>(), f["steps"].get<int64_t>(), f["epoch"].get<double>(),
                                f["loss"].get<double>(), 100 * f["accuracy"].get<double>(), f["lr"].get<double>(),
                                f["clips_per_s"].get<double>(), hms(f["eta_s"].get<double>())),
                    f["step"] == f["steps"]);
      break;
    case EventKind::kEpoch:
      fmt::print(out, "epoch {} done: {} unreadable samples skipped and replaced so far\n", f["epoch"].get<int64_t>(),
                 f["skipped"].get<int64_t>());
      break;
    case EventKind::kEval: {
      // Video evaluations name the checkpoint and views; NEVIS prediction events carry mAP on multi-label tasks.
      const std::string on = f.contains("checkpoint") ? f["checkpoint"].get<std::string>() + " on " : "";
      const std::string views = f.contains("views") ? ", views " + f["views"].get<std::string>() : "";
      const std::string scores = f.contains("map") ? fmt::format("mAP {:.2f}%", 100 * f["map"].get<double>())
                                                   : fmt::format("top-1 {:.2f}%  top-5 {:.2f}%", 100 * f["top1"].get<double>(),
                                                                 100 * f["top5"].get<double>());
      const std::string lost = f.contains("skipped") ? fmt::format("  ({} unreadable, {} missing)", f["skipped"].get<int64_t>(),
                                                                   f.value("missing", int64_t(0)))
                                                     : "";
      fmt::print(out, "eval {}{} ({} {}{}): {}{}{}\n", on, f["split"].get<std::string>(), f["count"].get<int64_t>(),
                 f.contains("views") ? "videos" : "examples", views, scores, lost,
                 f.value("stopped", false) ? " STOPPED: partial" : "");
      break;
    }
    case EventKind::kItem: {
      // Items that take minutes (compare's runs) read better per minute or per hour.
      const double r = f["rate"].get<double>();
      const std::string rate = r >= 0.1 ? fmt::format("{:.1f}/s", r) : r * 60 >= 0.1 ? fmt::format("{:.1f}/min", r * 60)
                                                                                   : fmt::format("{:.2f}/h", r * 3600);
      progress_line(out,
                    fmt::format("{}: {}/{} ({}, ETA {})", e.job, f["done"].get<int64_t>(), f["total"].get<int64_t>(), rate,
                                hms(f["eta_s"].get<double>())),
                    f["done"] == f["total"]);
      break;
    }
    case EventKind::kProblem:
      std::fflush(out);
      fmt::print(stderr, "{}: {}\n", e.job, f["message"].get<std::string>());
      break;
    case EventKind::kFrame:
      fmt::print(out, "frame {:>2}:{}\n", f["index"].get<int64_t>(), top_line(f["topk"]));
      break;
    case EventKind::kStatus: {
      const auto& top = f["top"];
      fmt::print(out, "{}: frame {} {:.1f} fps latency p50/p95 {:.0f}/{:.0f} ms dropped {}{}{}\n", f["source"].get<std::string>(),
                 f["frames"].get<int64_t>(), f["fps"].get<double>(), f["latency_p50_ms"].get<double>(),
                 f["latency_p95_ms"].get<double>(), f["dropped"].get<int64_t>(),
                 top.is_null() ? std::string() : fmt::format("  {:.1f}% {}", 100 * top["prob"].get<double>(), top["label"].get<std::string>()),
                 f["state"] == "running" ? std::string() : " [" + f["state"].get<std::string>() + "]");
      break;
    }
  }
  std::fflush(out);  // progress reaches a pipe or log file as it happens
}

}  // namespace

void close_progress_line() { close_line(); }

std::string hms(double s) {
  const int64_t t = static_cast<int64_t>(s);
  return fmt::format("{}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60);
}

ProgressSink make_printer(LogFormat format, bool problems_only, std::FILE* text_out) {
  auto mu = std::make_shared<std::mutex>();
  return [format, problems_only, mu, text_out](const Event& e) {
    std::lock_guard<std::mutex> lock(*mu);
    if (problems_only) {
      if (e.kind == EventKind::kProblem) fmt::print(stderr, "{}: {}\n", e.job, e.fields["message"].get<std::string>());
    } else if (format == LogFormat::kJson) {
      fmt::print("{}\n", dump(e.to_json()));
      std::fflush(stdout);
    } else {
      print_text(e, text_out);
    }
  };
}

void print_result(LogFormat format, const std::string& job, const nlohmann::json& result) {
  if (format != LogFormat::kJson) return;
  nlohmann::json j = {{"event", "result"}, {"job", job}};
  for (auto it = result.begin(); it != result.end(); ++it) j[it.key()] = it.value();
  fmt::print("{}\n", dump(j));
  std::fflush(stdout);
}

const CancelToken& install_stop_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  return g_stop;
}

}  // namespace trecvit::cli

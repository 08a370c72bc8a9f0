// stream: live sources -> run_stream -> status lines, JSON lines, a summary.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>

#include <opencv2/core/utils/logger.hpp>

#include "apps/args.h"
#include "blocks/file_safety.h"
#include "apps/commands.h"
#include "apps/progress.h"
#include "apps/stream_window.h"
#include "jobs/stream_job.h"
#include "video_io/error.h"
#include "video_io/writer.h"

extern "C" {
#include <libavutil/log.h>
}

namespace trecvit::cli {
namespace {

void print_summary(const StreamResult& r, std::FILE* to) {
  fmt::print(to, "summary: {} batched steps in {:.1f} s, peak RSS {:.1f} MiB{}\n", r.steps, r.seconds,
             r.peak_rss_bytes / 1048576.0, r.stopped ? " (stopped)" : "");
  for (const auto& s : r.sources)
    fmt::print(to, "  {}: {} frames, {} dropped, {} reconnects, {} resets, {:.1f} fps, latency p50/p95/max {:.1f}/{:.1f}/{:.1f} ms [{}]{}\n",
               s.source, s.frames, s.dropped, s.reconnects, s.resets, s.fps, s.latency_p50_ms, s.latency_p95_ms,
               s.latency_max_ms, s.state, s.problem.empty() ? "" : ": " + s.problem);
  std::fflush(to);
}

}  // namespace

void add_stream_command(CLI::App& app, Global& g) {
  auto* cmd = app.add_subcommand("stream", "causal inference on cameras, network streams and files, many at once in one batched step");
  static StreamJob job;
  static std::string jsonl, summary_json, readout;
  static int64_t backoff_ms = job.backoff.count(), timeout_ms = job.io_timeout.count(), step_delay_ms = 0;
  cmd->add_option("--checkpoint", job.checkpoint, "model checkpoint")->required()->check(CLI::ExistingFile);
  cmd->add_option("sources", job.sources,
                  "camera index (0), V4L2 device (/dev/video0), URL (rtsp://, http://, udp://, tcp://, srt://, ...) or file")
      ->required();
  cmd->add_option("--labels", job.labels, "class names (default: the checkpoint's): one per line, a JSON list, {\"name\": index} (SSv2 labels.json), or a Kinetics CSV")
      ->check(CLI::ExistingFile);
  cmd->add_option("--readout", readout, "mean (running mean since the stream started: the offline clip logits), last (the newest frame), ema:A (exponential forgetting, newest frame weighted A); default: the model's own");
  cmd->add_option("--reset-every", job.reset_every, "restart each stream's state every N frames (0: never)")->check(at_least(0));
  cmd->add_option("--topk", job.topk, "classes reported per frame")->check(at_least(1));
  cmd->add_option("--threshold", job.threshold, "report only classes with at least this probability")->check(between(0, 1));
  cmd->add_flag("--logits", job.logits, "add the raw logits to each JSON line");
  cmd->add_option("--jsonl", jsonl, "one JSON object per processed frame to FILE, or - for stdout");
  cmd->add_option("--summary-json", summary_json, "the end-of-run summary as JSON to FILE");
  cmd->add_option("--status-interval", job.status_interval_s, "seconds between status lines")->check(between(0.05, 3600));
  auto* ending = cmd->add_option_group("Ending");
  ending->add_option("--max-frames", job.max_frames, "per source: stop after N processed frames (0: no limit)")->check(at_least(0));
  ending->add_option("--duration", job.duration, "stop after S seconds (0: when every source has ended)")->check(at_least(0));
  auto* files = cmd->add_option_group("Files");
  files->add_flag("--no-drop", job.no_drop, "process every frame (files only): exact offline equivalence");
  files->add_flag("--as-fast-as-possible", job.as_fast_as_possible, "decode files without pacing them at their native rate");
  files->add_flag("--loop", job.loop, "restart files at the end");
  auto* live = cmd->add_option_group("Live sources");
  live->add_option("--reconnects", job.reconnects, "reopen attempts after a source fails, before it counts as lost")->check(at_least(0));
  live->add_option("--backoff-ms", backoff_ms, "first wait before reopening; doubles per attempt (at most 5 s)")->check(at_least(1));
  live->add_option("--timeout-ms", timeout_ms, "longest wait for one open or read")->check(at_least(1));
  auto* out = cmd->add_option_group("Pictures");
  out->add_flag("--show", job.display, "a window per source with the top-k overlaid (needs a display)");
  out->add_option("--write-video", job.write_video, "annotated frames to this video (several sources: OUT.<i>.ext)");
  out->add_option("--display-size", job.display_short_side, "short side of shown and written frames")->check(between(16, 4320));
  cmd->add_option("--debug-step-delay-ms", step_delay_ms, "test hook: sleep this long after each model step")
      ->check(at_least(0))
      ->group("");
  cmd->callback([&g] {
    video::set_ffmpeg_log_level(AV_LOG_FATAL);  // the job reports source problems itself
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);  // OpenCV's camera warnings too
    job.readout = readout;
    job.backoff = std::chrono::milliseconds(backoff_ms);
    job.io_timeout = std::chrono::milliseconds(timeout_ms);
    job.step_delay = std::chrono::milliseconds(step_delay_ms);
    std::unique_ptr<StreamWindows> windows;
    if (job.display) windows = std::make_unique<StreamWindows>(job.sources);  // refuses without a display
    // Every output path is checked before anything runs, not after an hour of streaming.
    std::ofstream file, summary;
    if (!jsonl.empty() && jsonl != "-") {
      file.open(jsonl, std::ios::trunc);
      if (!file) throw std::runtime_error("--jsonl " + jsonl + ": cannot be created");
    }
    if (!summary_json.empty()) {
      summary.open(summary_json, std::ios::trunc);
      if (!summary) throw std::runtime_error("--summary-json " + summary_json + ": cannot be created");
    }
    if (!job.write_video.empty()) {
      if (!video::VideoWriter::supports(job.write_video))
        throw std::runtime_error("--write-video " + job.write_video + ": the extension must be " + video::kWriterExtensions);
      const auto dir = std::filesystem::path(job.write_video).parent_path();
      if (!dir.empty() && !is_folder(dir))
        throw std::runtime_error("--write-video " + job.write_video + ": the folder " + dir.string() + " does not exist");
    }
    const bool to_stdout = jsonl == "-";
    // With JSON lines on stdout, everything else goes to stderr (as text).
    auto printer = to_stdout ? make_printer(LogFormat::kText, false, stderr) : make_printer(g.log_format);
    auto mu = std::make_shared<std::mutex>();
    ProgressSink sink = [&, printer, mu](const Event& e) {
      if (e.kind == EventKind::kFrame) {
        if (!jsonl.empty()) {
          std::lock_guard<std::mutex> lock(*mu);
          const std::string line = dump(e.fields) + "\n";
          if (to_stdout) {
            std::fwrite(line.data(), 1, line.size(), stdout);
            std::fflush(stdout);
          } else {
            file << line << std::flush;
            if (!file) throw std::runtime_error("--jsonl " + jsonl + ": write failed (disk full?)");
          }
        }
        if (g.log_format == LogFormat::kJson && !to_stdout) printer(e);
        return;
      }
      printer(e);
    };
    StreamDisplay show;
    if (windows) show = [&](size_t i, const torch::Tensor& rgb) { windows->show(i, rgb); };
    const auto r = run_stream(job, sink, &install_stop_signals(), show);
    close_progress_line();
    if (!summary_json.empty()) {
      summary << dump(r.to_json(), 2) << "\n" << std::flush;
      if (!summary) throw std::runtime_error("--summary-json " + summary_json + ": cannot be written");
    }
    if (g.log_format == LogFormat::kText) print_summary(r, to_stdout ? stderr : stdout);
    print_result(g.log_format, "stream", r.to_json());
    if (!r.lost.empty()) {
      std::string names;
      for (const auto& s : r.sources)
        if (s.state == "lost") names += (names.empty() ? "" : "; ") + s.source + ": " + s.problem;
      throw std::runtime_error("lost source" + std::string(r.lost.size() > 1 ? "s" : "") + ": " + names);
    }
  });
}

}  // namespace trecvit::cli

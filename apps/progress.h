#pragma once
// The terminal side of the jobs: renders their events as progress lines (or JSON lines with
// --log-format json), and turns SIGINT/SIGTERM into a stop request.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/args.h"
#include "jobs/progress.h"

namespace trecvit::cli {

enum class LogFormat { kText, kJson };

// Text: progress on stdout, problems on stderr, flushed as they happen. On a terminal the step
// and item lines (count, rate, ETA) redraw one line in place; in a pipe or file each is a line. Json: one object per
// line on stdout. problems_only: just the problems, on stderr (for commands whose stdout is a
// JSON report). The sink is safe to call from several threads.
// text_out: where text progress goes (stderr when stdout carries data, e.g. `stream --jsonl -`).
ProgressSink make_printer(LogFormat format, bool problems_only = false, std::FILE* text_out = stdout);
// The job's result at the end: JSON as {"event": "result", "job": ..., ...} in the json log
// format; nothing in text (the command prints its own summary).
void print_result(LogFormat format, const std::string& job, const nlohmann::json& result);

// First SIGINT/SIGTERM: request a stop on the returned token (the job finishes its step,
// checkpoints and returns). A second one exits at once.
const CancelToken& install_stop_signals();

std::string hms(double seconds);

// Ends a progress line left open on a terminal (a stopped or failed job's last one) before the
// command prints its own lines.
void close_progress_line();

}  // namespace trecvit::cli

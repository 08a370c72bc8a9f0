#pragma once
// Subcommands of the `trecvit` binary. Each add_* registers flags and a callback that
// calls library functions; the callbacks hold no logic of their own beyond I/O.
#include <CLI/CLI.hpp>

#include "apps/progress.h"

namespace trecvit::cli {

// The runtime group, given once before or after the subcommand.
struct Global {
  int threads = 0;  // 0: all cores
  LogFormat log_format = LogFormat::kText;
  double dist_timeout_s = 300;  // data parallelism: a collective that takes longer fails
};

void add_model_commands(CLI::App& app, Global& g);  // info, init, import, export, predict, synth-clip
void add_bench_command(CLI::App& app, Global& g);
void add_video_commands(CLI::App& app, Global& g);  // probe, frames (builds with TRECVIT_WITH_VIDEO)
void add_job_commands(CLI::App& app, Global& g);    // data, train, eval, demo (builds with the jobs library)
void add_stream_command(CLI::App& app, Global& g);  // stream (with the jobs library)
void add_compare_command(CLI::App& app, Global& g); // compare (with the jobs library)
void add_nevis_commands(CLI::App& app, Global& g);  // nevis run/report, data nevis-build (after add_job_commands)

}  // namespace trecvit::cli

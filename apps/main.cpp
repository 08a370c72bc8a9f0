// trecvit: the toolkit's command line.
#include <torch/version.h>

#include <iostream>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/distributed.h"
#include "apps/progress.h"
#include "blocks/runtime.h"

#ifndef TRECVIT_VERSION
#define TRECVIT_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  trecvit::apply_thread_wait_policy(argv);
  CLI::App app{"trecvit: TRecViT video models in C++ (LibTorch)"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();  // every --help shows the defaults
  app.set_version_flag("--version", std::string("trecvit ") + TRECVIT_VERSION + " (LibTorch " TORCH_VERSION ")");
  trecvit::cli::Global g;
  trecvit::configure_runtime(trecvit::cli::default_threads());
  if (trecvit::reference_blas_in_use())
    std::cerr << "\n*** trecvit WARNING: LibTorch is using the reference BLAS (" << trecvit::runtime_info().blas_path
              << ").\n*** Matrix products will run ~14x slower. Install OpenBLAS:"
                 " sudo apt-get install libopenblas0-pthread\n\n";
  // Option callbacks run before any subcommand's, so the count is in force for all of them.
  app.add_option_function<int>(
         "--threads", [&g](int n) { trecvit::configure_runtime(g.threads = n); },
         "threads for ATen and OpenBLAS (0: all cores)")
      ->check(trecvit::cli::between(0, 1024))
      ->group("Runtime");
  app.add_option_function<std::string>(
         "--log-format",
         [&g](const std::string& f) {
           g.log_format = f == "json" ? trecvit::cli::LogFormat::kJson : trecvit::cli::LogFormat::kText;
         },
         "progress as text lines or JSON lines (one event per line)")
      ->check(trecvit::cli::one_of({"text", "json"}))
      ->default_str("text")
      ->group("Runtime");
  app.add_option("--dist-timeout", g.dist_timeout_s,
                 "data-parallel ranks (WORLD_SIZE > 1): seconds before a collective that does not complete fails, naming the lost rank")
      ->check(trecvit::cli::between(1, 86400))
      ->group("Runtime");
  app.fallthrough();  // runtime options may follow the subcommand
  trecvit::cli::add_model_commands(app, g);
  trecvit::cli::add_bench_command(app, g);
  trecvit::cli::add_launch_command(app, g);
#ifdef TRECVIT_WITH_VIDEO
  trecvit::cli::add_video_commands(app, g);
#endif
#ifdef TRECVIT_WITH_JOBS
  trecvit::cli::add_job_commands(app, g);
  trecvit::cli::add_stream_command(app, g);
  trecvit::cli::add_compare_command(app, g);
  trecvit::cli::add_nevis_commands(app, g);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    trecvit::cli::close_progress_line();
    std::cerr << "trecvit: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// trecvit: the toolkit's command line.
#include <torch/version.h>

#include <algorithm>
#include <iostream>
#include <thread>
#include <nlohmann/json.hpp>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/distributed.h"
#include "apps/progress.h"
#include "blocks/file_safety.h"
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
      // More threads than cores never helps, and each costs start-up time (1024 on 2 cores: 17 s).
      ->check(trecvit::cli::between(0, std::max(64u, 4 * std::thread::hardware_concurrency())))
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
    // --help, --version and a stop (130) as CLI11 does; a bad flag in the one error style.
    if (e.get_exit_code() == 0 || dynamic_cast<const CLI::RuntimeError*>(&e)) return app.exit(e);
    trecvit::cli::close_progress_line();
    std::cerr << "trecvit: error: " << e.what() << "\nRun with --help for more information.\n";
    return e.get_exit_code();
  } catch (const std::bad_alloc&) {
    trecvit::cli::close_progress_line();
    std::cerr << "trecvit: error: out of memory: the request needs more memory than this machine can give "
                 "(a smaller model, batch, clip or --workers fits)\n";
    return 1;
  } catch (const c10::Error& e) {
    trecvit::cli::close_progress_line();
    const std::string what = e.what_without_backtrace();
    if (what.find("can't allocate memory") != std::string::npos || what.find("DefaultCPUAllocator") != std::string::npos)
      std::cerr << "trecvit: error: out of memory: " << what.substr(what.find("you tried to allocate") == std::string::npos ? 0 : what.find("you tried to allocate"), 80)
                << " (a smaller model, batch, clip or --workers fits)\n";
    else
      std::cerr << "trecvit: error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  } catch (const nlohmann::json::exception& e) {
    // A record read without its own check: no file to name, but a sentence, not the library's tag.
    trecvit::cli::close_progress_line();
    std::cerr << "trecvit: error: a JSON file holds a value of the wrong type or lacks a field (" << trecvit::plain_json_error(e)
              << "); was a run folder or record edited or damaged?\n";
    return 1;
  } catch (const std::exception& e) {
    trecvit::cli::close_progress_line();
    std::cerr << "trecvit: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

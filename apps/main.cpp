// trecvit: the toolkit's command line.
#include <iostream>

#include "apps/commands.h"
#include "blocks/runtime.h"

int main(int argc, char** argv) {
  trecvit::apply_thread_wait_policy(argv);
  CLI::App app{"trecvit: TRecViT video models in C++ (LibTorch)"};
  app.require_subcommand(1);
  trecvit::cli::Global g;
  trecvit::configure_runtime(0);
  // Option callbacks run before any subcommand's, so the count is in force for all of them.
  app.add_option_function<int>(
         "--threads", [&g](int n) { trecvit::configure_runtime(g.threads = n); },
         "threads for ATen and OpenBLAS (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.fallthrough();  // --threads may follow the subcommand
  trecvit::cli::add_model_commands(app, g);
  trecvit::cli::add_bench_command(app, g);
#ifdef TRECVIT_WITH_VIDEO
  trecvit::cli::add_video_commands(app, g);
#endif
#ifdef TRECVIT_WITH_JOBS
  trecvit::cli::add_train_commands(app, g);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "trecvit: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// trecvit bench NAME: the benchmarks of bench/, so users can measure their own hardware.
#include <fmt/format.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "bench/harness.h"

namespace trecvit::cli {

void add_bench_command(CLI::App& app, Global& g) {
  auto* cmd = app.add_subcommand("bench", "run a benchmark (list: trecvit bench list)");
  static std::string name;
  static bool json = false, quick = false;
  static int repeats = 5;
  static std::vector<std::string> extra;
  cmd->add_option("name", name, "benchmark name, or 'list'")->required();
  cmd->add_flag("--json", json, "print the results as one JSON object");
  cmd->add_flag("--quick", quick, "tiny sizes, for a smoke run");
  cmd->add_option("--repeats", repeats, "repeats per measurement (the median is reported)")->check(at_least(1));
  cmd->add_option("--set", extra, "benchmark option key=value (e.g. config=base, size=224, frames=8)");
  cmd->callback([] {
    if (name == "list") {
      for (auto& [n, help] : bench::list_benchmarks()) fmt::print("{:<8} {}\n", n, help);
      return;
    }
    bench::Args args;
    args.quick = quick;
    args.repeats = repeats;
    args.extra = extra;
    if (int rc = bench::run_benchmark(name, args, json)) throw CLI::RuntimeError(rc);
  });
}

}  // namespace trecvit::cli

#pragma once
// A small benchmark harness: medians over repeats, the machine's own GEMM rate measured
// in the same run, and results as JSON so ratios come from one process on one machine.
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace trecvit::bench {

struct Args {
  bool quick = false;  // fewer repeats and sizes (used by the smoke test)
  int repeats = 5;
  std::vector<std::string> extra;  // benchmark-specific key=value options
  std::string get(const std::string& key, const std::string& fallback) const;
  // The option as a number; a value that is not one is an error naming KEY=VALUE.
  int64_t get_int(const std::string& key, const std::string& fallback) const;
  double get_double(const std::string& key, const std::string& fallback) const;
};

using BenchFn = std::function<nlohmann::json(const Args&)>;

struct Benchmark {
  std::string name, help;
  BenchFn fn;
};
// The table of benchmarks (bench/registry.cpp): explicit, so a static link keeps them all. A new
// benchmark is one file defining `nlohmann::json bench_NAME(const Args&)` plus its line there.
const std::vector<Benchmark>& all_benchmarks();

std::vector<std::pair<std::string, std::string>> list_benchmarks();
// Runs one benchmark; prints a table (or the JSON object) to stdout. Returns 0 on success.
int run_benchmark(const std::string& name, const Args& args, bool json);

// Median wall time in seconds of fn() over `repeats` runs after `warmup` runs.
double median_seconds(const std::function<void()>& fn, int repeats, int warmup = 1);

// Achieved fp32 FLOP/s of torch::mm at [M, K] x [K, N] (median).
double gemm_flops(int64_t M, int64_t K, int64_t N, int repeats);

// FLOP/s of a sequence of GEMM shapes run back to back (a model's own matrix shapes).
double gemm_flops_mix(const std::vector<std::array<int64_t, 3>>& shapes, int repeats);

void print_row(const std::string& label, const std::vector<std::pair<std::string, std::string>>& cols);

}  // namespace trecvit::bench

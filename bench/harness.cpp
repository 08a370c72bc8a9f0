#include "bench/harness.h"

#include "blocks/parse_number.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>

namespace trecvit::bench {

namespace {
bool g_quiet = false;  // JSON mode: stdout carries only the JSON object
}

std::string Args::get(const std::string& key, const std::string& fallback) const {
  for (auto& kv : extra)
    if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
  return fallback;
}

int64_t Args::get_int(const std::string& key, const std::string& fallback) const {
  const std::string v = get(key, fallback);
  if (auto n = parse_int(v)) return *n;
  throw std::invalid_argument("--set " + key + "=" + v + ": not an integer");
}

double Args::get_double(const std::string& key, const std::string& fallback) const {
  const std::string v = get(key, fallback);
  if (auto x = parse_double(v)) return *x;
  throw std::invalid_argument("--set " + key + "=" + v + ": not a number");
}

std::vector<std::pair<std::string, std::string>> list_benchmarks() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& b : all_benchmarks()) out.emplace_back(b.name, b.help);
  return out;
}

int run_benchmark(const std::string& name, const Args& args, bool json) {
  const auto& all = all_benchmarks();
  auto it = std::find_if(all.begin(), all.end(), [&](const Benchmark& b) { return b.name == name; });
  if (it == all.end()) {
    std::cerr << "trecvit bench: unknown benchmark '" << name << "'; known:";
    for (auto& b : all) std::cerr << " " << b.name;
    std::cerr << "\n";
    return 2;
  }
  g_quiet = json;
  if (!json) fmt::print("== bench {}: {}\n", name, it->help);
  auto result = it->fn(args);
  if (json) std::cout << result.dump(2) << "\n";
  return 0;
}

double median_seconds(const std::function<void()>& fn, int repeats, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double gemm_flops(int64_t M, int64_t K, int64_t N, int repeats) { return gemm_flops_mix({{M, K, N}}, repeats); }

double gemm_flops_mix(const std::vector<std::array<int64_t, 3>>& shapes, int repeats) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> a, b, c;
  double flops = 0;
  for (auto& s : shapes) {
    a.push_back(torch::randn({s[0], s[1]}));
    b.push_back(torch::randn({s[1], s[2]}));
    c.push_back(torch::empty({s[0], s[2]}));
    flops += 2.0 * s[0] * s[1] * s[2];
  }
  double sec = median_seconds([&] {
    for (size_t i = 0; i < shapes.size(); ++i) torch::mm_out(c[i], a[i], b[i]);
  }, repeats);
  return flops / sec;
}

void print_row(const std::string& label, const std::vector<std::pair<std::string, std::string>>& cols) {
  if (g_quiet) return;
  std::string line = fmt::format("{:<34}", label);
  for (auto& [k, v] : cols) line += fmt::format("  {}={}", k, v);
  std::cout << line << std::endl;
}

}  // namespace trecvit::bench

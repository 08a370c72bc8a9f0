#include "bench/op_profile.h"

#include <fmt/format.h>

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "bench/harness.h"

namespace trecvit::bench {

namespace prof = torch::autograd::profiler;

std::vector<OpTime> profile_ops(const std::function<void()>& fn, double* total_ms) {
  prof::thread_event_lists lists;
  const auto t0 = std::chrono::steady_clock::now();
  {
    prof::TLSLegacyProfilerGuard guard(
        torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU),
        [&](const prof::thread_event_lists& r) { lists = r; });
    fn();
  }
  *total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::map<std::string, OpTime> by_name;
  for (const auto& events : lists) {
    // Ranges nest on each thread: a pop closes the latest push, whose children's time is
    // taken off its own.
    struct Open {
      const prof::LegacyEvent* push;
      double child_us;
    };
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0});
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const Open open = stack.back();
        stack.pop_back();
        const double us = open.push->cpuElapsedUs(e);
        auto& t = by_name[open.push->name()];
        t.name = open.push->name();
        t.self_ms += (us - open.child_us) / 1000;
        t.calls += 1;
        if (!stack.empty()) stack.back().child_us += us;
      }
    }
  }
  std::vector<OpTime> out;
  for (auto& [name, t] : by_name) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.self_ms > b.self_ms; });
  return out;
}

nlohmann::json profile_table(const std::string& what, const std::function<void()>& fn, int64_t top) {
  double total_ms = 0;
  auto ops = profile_ops(fn, &total_ms);
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < ops.size() && static_cast<int64_t>(i) < top; ++i) {
    const auto& op = ops[i];
    print_row(fmt::format("  {} {}", what, op.name),
              {{"self", fmt::format("{:.1f} ms ({:.1f}%)", op.self_ms, 100 * op.self_ms / total_ms)},
               {"calls", std::to_string(op.calls)}});
    rows.push_back({{"op", op.name}, {"self_ms", op.self_ms}, {"calls", op.calls}});
  }
  return {{"total_ms", total_ms}, {"ops", rows}};
}

}  // namespace trecvit::bench

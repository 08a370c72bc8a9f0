#pragma once
// Where the time goes, by operator: LibTorch's own profiler around a function, reduced to
// self time per operator name (time inside an op minus the ops it called), largest first.
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace trecvit::bench {

struct OpTime {
  std::string name;
  double self_ms = 0;
  int64_t calls = 0;
};

// Runs fn once under the profiler; returns every operator's self time, largest first, and the
// wall time of the whole call in *total_ms.
std::vector<OpTime> profile_ops(const std::function<void()>& fn, double* total_ms);

// profile_ops' top N operators as benchmark rows labelled `what`, printed and returned as JSON.
nlohmann::json profile_table(const std::string& what, const std::function<void()>& fn, int64_t top);

}  // namespace trecvit::bench

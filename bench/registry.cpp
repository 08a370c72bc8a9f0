#include "bench/harness.h"

namespace trecvit::bench {

const std::vector<Benchmark>& all_benchmarks() {
  static const std::vector<Benchmark> table = {
      {"model", "forward / forward+backward throughput vs the machine's GEMM rate at the model's shapes", bench_model},
      {"stream", "streaming cost per frame at frame 1, 100, 1000 vs re-running the offline forward", bench_stream},
      {"scan", "fused RG-LRU scan vs the naive loop of tensor ops", bench_scan},
      {"alloc", "a training step with and without the retaining allocator", bench_alloc},
  };
  return table;
}

}  // namespace trecvit::bench

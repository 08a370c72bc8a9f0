#include "bench/harness.h"

namespace trecvit::bench {

nlohmann::json bench_model(const Args& args);
nlohmann::json bench_stream(const Args& args);
nlohmann::json bench_scan(const Args& args);
nlohmann::json bench_alloc(const Args& args);
nlohmann::json bench_decode(const Args& args);
nlohmann::json bench_peer(const Args& args);
nlohmann::json bench_loader(const Args& args);
nlohmann::json bench_nevis(const Args& args);
nlohmann::json bench_allreduce(const Args& args);

const std::vector<Benchmark>& all_benchmarks() {
  static const std::vector<Benchmark> table = {
      {"model", "forward / forward+backward throughput vs the machine's GEMM rate at the model's shapes (config=, size=, frames=4, batch=1, profile=N: the N operators with the most self time in one fwd+bwd)", bench_model},
      {"stream", "streaming: cost per frame as the history grows, N streams in one batched step, live end to end (parts=history,batched,live)", bench_stream},
      {"scan", "fused RG-LRU scan vs the naive loop of tensor ops", bench_scan},
      {"alloc", "a training step with and without the retaining allocator", bench_alloc},
#ifdef TRECVIT_WITH_VIDEO
      {"decode", "video decoding: sequential vs the ffmpeg CLI, random clips vs OpenCV and the decode bound", bench_decode},
#endif
#ifdef TRECVIT_WITH_DATASETS
      {"loader", "the video loader's clips/s vs the trainer's consumption (small config, 16x112x112, 2 workers)", bench_loader},
      {"nevis", "NEVIS learners x models on the Debian-built stream: per-event top-1, averages, training FLOPs (data=DIR, steps=400, learners=..., models=mlp,peer)", bench_nevis},
#endif
      {"allreduce", "Gloo allreduce between ranks over loopback: latency and bus bandwidth, 64 KB - 64 MB (ranks=2)", bench_allreduce},
      {"peer", "PEER vs a naive formulation and dense MLPs (speed, peak memory), plus PKM and MoEs", bench_peer},
  };
  return table;
}

}  // namespace trecvit::bench

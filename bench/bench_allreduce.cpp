// Gloo allreduce over loopback between ranks of this binary: latency and bandwidth for the
// bucket sizes the gradient reducer uses (64 KB - 64 MB), the inputs of the scaling model in
// docs/DISTRIBUTED.md. Rank 0 (this process) starts the others as `bench allreduce
// --set rank=R ...` children.
#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/common.h"
#include "bench/harness.h"
#include "train/distributed.h"

extern char** environ;

namespace trecvit::bench {
nlohmann::json bench_allreduce(const Args& args) {
  if (!dist::available()) throw std::runtime_error("bench allreduce: built without c10d/Gloo (install libgloo-dev)");
  const int64_t world = args.get_int("ranks", "2"), rank = args.get_int("rank", "0");
  const int port = rank == 0 ? free_port() : (int)args.get_int("port", "0");
  const int repeats = args.quick ? 3 : std::max(args.repeats, 5);
  std::vector<pid_t> children;
  if (rank == 0) {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) throw std::runtime_error("bench allreduce: cannot find this program");
    self[n] = 0;
    for (int64_t r = 1; r < world; ++r) {
      std::vector<std::string> a = {self, "--threads", "1", "bench", "allreduce", "--set", "rank=" + std::to_string(r), "--set",
                                    "ranks=" + std::to_string(world), "--set", "port=" + std::to_string(port)};
      if (args.quick) a.push_back("--quick");
      a.push_back("--repeats");  // every rank must run the same number of collectives
      a.push_back(std::to_string(args.repeats));
      std::vector<char*> argv;
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
      pid_t pid;
      if (posix_spawn(&pid, self, &fa, nullptr, argv.data(), environ) != 0) throw std::runtime_error("bench allreduce: spawn failed");
      posix_spawn_file_actions_destroy(&fa);
      children.push_back(pid);
    }
  }
  dist::Env env;
  env.rank = rank;
  env.world = world;
  env.master_port = port;
  auto group = dist::Group::join(env, std::chrono::seconds(60));
  nlohmann::json rows = nlohmann::json::array();
  std::vector<int64_t> sizes = {64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20};
  if (args.quick) sizes = {64 << 10, 1 << 20};
  for (const int64_t bytes : sizes) {
    auto t = torch::ones({bytes / 4});
    // Every rank runs the same sequence of collectives; rank 0's median is the figure.
    const double s = median_seconds([&] { group->allreduce_sum(t); }, repeats, 2);
    const double algo = bytes / s, bus = algo * 2.0 * (world - 1) / world;  // NCCL's "bus bandwidth" convention
    if (rank == 0)
      print_row(fmt::format("allreduce {} ranks {:>6} KB", world, bytes >> 10),
                {{"time", fmt::format("{:.3f} ms", s * 1e3)}, {"bus bandwidth", fmt::format("{:.2f} GB/s", bus / 1e9)}});
    rows.push_back({{"bytes", bytes}, {"seconds", s}, {"algo_bytes_per_s", algo}, {"bus_bytes_per_s", bus}});
  }
  group->barrier();
  for (auto pid : children) waitpid(pid, nullptr, 0);
  return {{"benchmark", "allreduce"}, {"ranks", world}, {"transport", "gloo tcp over 127.0.0.1"}, {"results", rows}};
}

}  // namespace trecvit::bench

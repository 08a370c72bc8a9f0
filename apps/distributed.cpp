#include "apps/distributed.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace trecvit::cli {

std::shared_ptr<dist::Group> join_group(const Global& g, const std::string& command, bool supported) {
  const auto env = dist::env_from();
  if (env.world == 1) return nullptr;
  if (!supported)
    throw dist::DistError("WORLD_SIZE=" + std::to_string(env.world) + ": `trecvit " + command +
                          "` does not run data-parallel; run it as one process (data-parallel: train, eval, compare, nevis run)");
  return dist::Group::join(env, std::chrono::milliseconds(static_cast<int64_t>(g.dist_timeout_s * 1000)));
}

ProgressSink rank_printer(const Global& g, const std::shared_ptr<dist::Group>& group, bool problems_only) {
  return make_printer(g.log_format, problems_only || (group && group->rank() != 0));
}

int default_threads() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const char* local = std::getenv("LOCAL_WORLD_SIZE");
  const int ranks = local ? std::atoi(local) : 1;
  return ranks > 1 ? std::max(1, cores / ranks) : cores;
}

}  // namespace trecvit::cli

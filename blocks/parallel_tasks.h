#pragma once
// Dynamic scheduling over ATen's intra-op threads: every thread pulls task indices from a
// shared counter until none are left. at::parallel_for alone splits a range statically, so one
// preempted thread (other processes, or BLAS threads spinning on a small machine) holds up the
// whole region; here the others simply take its share.
#include <ATen/Parallel.h>

#include <atomic>

namespace trecvit {

// f(task) for task in [0, n); f must be safe to call concurrently for different tasks.
// per_thread() runs once per participating thread before its first task (scratch buffers).
template <typename Init, typename F>
void parallel_tasks(int64_t n, Init per_thread, F f) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(n, at::get_num_threads());
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    auto scratch = per_thread();
    for (int64_t t = next.fetch_add(1); t < n; t = next.fetch_add(1)) f(t, scratch);
  });
}

}  // namespace trecvit

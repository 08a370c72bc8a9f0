#pragma once
// A cache of CPU tensor buffers for loops that allocate the same shapes on every pass, such as
// a streaming step. While a TensorPool::Scope is open on a thread, every CPU tensor buffer that
// thread allocates is taken from the pool, and goes back to it (not to the system) when its
// last tensor lets go. After the first pass the loop is served from the cache: no call into the
// system allocator, no fresh pages to fault in. A tensor may outlive its pool; its buffer is then
// freed normally.
//
// Only tensor buffers are pooled (raw_allocate on the CPU allocator included): LibTorch still
// creates a small header (TensorImpl) per op. Buffers allocated by worker threads of an intra-op
// parallel region bypass the pool, since the scope is per thread.
#include <cstdint>
#include <memory>

namespace trecvit {

namespace detail {
struct PoolCore;
}

class TensorPool {
 public:
  // A buffer returned while the cache already holds max_cached_bytes is freed instead. Buffers
  // are reused by exact size, so a loop whose shapes vary (a batch server advancing changing
  // subsets of its streams) caches a working set per shape, up to this cap; trim() empties it.
  explicit TensorPool(int64_t max_cached_bytes = int64_t(1) << 30);
  ~TensorPool();
  TensorPool(const TensorPool&) = delete;
  TensorPool& operator=(const TensorPool&) = delete;

  // Routes this thread's CPU tensor allocations into `pool` (null: no pool) until destroyed;
  // keeps the pool's cache alive meanwhile.
  class Scope {
   public:
    explicit Scope(TensorPool* pool);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    detail::PoolCore* previous_;
    std::shared_ptr<detail::PoolCore> keep_;
  };

  struct Stats {
    int64_t hits = 0, misses = 0;         // allocations served from the cache / from the system
    int64_t cached_bytes = 0, in_use_bytes = 0;
  };
  Stats stats() const;
  void trim();  // frees every cached buffer (buffers in use are untouched)

 private:
  std::shared_ptr<detail::PoolCore> core_;
};

// CPU tensor buffers obtained from the system allocator (pool misses included, pool hits not),
// over all threads, since the counter was first read or a pool first made: the hook tests use
// to show that a loop allocates nothing. Reading it installs the counting wrapper around
// LibTorch's CPU allocator, so read it once before the loop being measured.
int64_t cpu_tensor_allocations();

}  // namespace trecvit

#include "blocks/tensor_pool.h"

#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace trecvit {
namespace detail {

// One cached or lent buffer. A lent block holds its pool's core alive; a cached one does not
// (the core holds it), so there is no cycle.
struct PoolBlock {
  c10::DataPtr system;  // the buffer, owned through the wrapped allocator's deleter
  size_t bytes = 0;
  std::shared_ptr<PoolCore> core;
  PoolBlock* next = nullptr;
};

struct PoolCore : std::enable_shared_from_this<PoolCore> {
  explicit PoolCore(int64_t max_cached) : max_cached(max_cached) {}
  std::mutex mu;
  std::unordered_map<size_t, PoolBlock*> free_lists;  // exact byte size -> intrusive list
  int64_t max_cached, cached = 0, in_use = 0, hits = 0, misses = 0;
  bool closed = false;
};

}  // namespace detail

namespace {

using detail::PoolBlock;
using detail::PoolCore;

thread_local PoolCore* tls_pool = nullptr;
std::atomic<int64_t> system_allocations{0};

void give_back(void* ctx) {
  auto* b = static_cast<PoolBlock*>(ctx);
  // The last lent block may hold the last reference to the core: release it after unlocking.
  std::shared_ptr<PoolCore> core = std::move(b->core);
  bool keep = false;
  {
    std::lock_guard<std::mutex> lock(core->mu);
    core->in_use -= int64_t(b->bytes);
    if (!core->closed && core->cached + int64_t(b->bytes) <= core->max_cached) {
      auto& head = core->free_lists[b->bytes];
      b->next = head;
      head = b;
      core->cached += int64_t(b->bytes);
      keep = true;
    }
  }
  if (!keep) delete b;
}

// Wraps the CPU allocator LibTorch had: counts what reaches it and serves pool scopes.
class RoutingAllocator final : public c10::Allocator {
 public:
  explicit RoutingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) const override {
    PoolCore* pool = tls_pool;
    if (pool == nullptr || n == 0) {
      if (n > 0) system_allocations.fetch_add(1, std::memory_order_relaxed);
      return inner_->allocate(n);
    }
    PoolBlock* b = nullptr;
    {
      std::lock_guard<std::mutex> lock(pool->mu);
      auto it = pool->free_lists.find(n);
      if (it != pool->free_lists.end() && it->second != nullptr) {
        b = it->second;
        it->second = b->next;
        pool->cached -= int64_t(n);
        ++pool->hits;
      } else {
        ++pool->misses;
      }
      pool->in_use += int64_t(n);
    }
    if (b == nullptr) {
      system_allocations.fetch_add(1, std::memory_order_relaxed);
      b = new PoolBlock{inner_->allocate(n), n, nullptr, nullptr};
    }
    b->next = nullptr;
    b->core = pool->shared_from_this();
    return {b->system.get(), b, &give_back, c10::Device(c10::DeviceType::CPU)};
  }

  // raw_allocate/raw_deallocate keep working outside pool scopes (they go to the inner allocator).
  c10::DeleterFnPtr raw_deleter() const override { return inner_->raw_deleter(); }

 private:
  c10::Allocator* inner_;
};

void install_routing_allocator() {
  // Leaked on purpose: tensors freed during static destruction still call through it.
  static RoutingAllocator* installed = [] {
    auto* a = new RoutingAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(a, /*priority=*/255);
    return a;
  }();
  (void)installed;
}

}  // namespace

TensorPool::TensorPool(int64_t max_cached_bytes) : core_(std::make_shared<PoolCore>(max_cached_bytes)) {
  install_routing_allocator();
}

TensorPool::~TensorPool() {
  std::vector<PoolBlock*> drop;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->closed = true;
    for (auto& [bytes, head] : core_->free_lists)
      for (PoolBlock* b = head; b != nullptr; b = b->next) drop.push_back(b);
    core_->free_lists.clear();
    core_->cached = 0;
  }
  for (PoolBlock* b : drop) delete b;
}

void TensorPool::trim() {
  std::vector<PoolBlock*> drop;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    for (auto& [bytes, head] : core_->free_lists) {
      for (PoolBlock* b = head; b != nullptr; b = b->next) drop.push_back(b);
      head = nullptr;
    }
    core_->cached = 0;
  }
  for (PoolBlock* b : drop) delete b;
}

TensorPool::Stats TensorPool::stats() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return {core_->hits, core_->misses, core_->cached, core_->in_use};
}

TensorPool::Scope::Scope(TensorPool* pool) : previous_(tls_pool) {
  tls_pool = pool != nullptr ? pool->core_.get() : nullptr;
}

TensorPool::Scope::~Scope() { tls_pool = previous_; }

int64_t cpu_tensor_allocations() {
  install_routing_allocator();
  return system_allocations.load(std::memory_order_relaxed);
}

}  // namespace trecvit

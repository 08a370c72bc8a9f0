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
c10::DeleterFnPtr inner_raw_deleter = nullptr;

// Every pooled buffer by its address. A pooled DataPtr's context is its data pointer, as
// Allocator::raw_allocate requires, so the deleter finds its block here.
std::mutex registry_mu;
std::unordered_map<void*, PoolBlock*>& registry() {
  static auto* r = new std::unordered_map<void*, PoolBlock*>();  // leaked: outlives every tensor
  return *r;
}

void destroy(PoolBlock* b) {
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    registry().erase(b->system.get());
  }
  delete b;
}

// Returns a pooled buffer to its pool (or frees it); any other pointer goes to the wrapped
// allocator's raw deleter (raw_deallocate of a buffer raw_allocate made outside a scope).
void give_back(void* data) {
  PoolBlock* b = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    auto it = registry().find(data);
    if (it != registry().end()) b = it->second;
  }
  if (b == nullptr) {
    if (inner_raw_deleter != nullptr) inner_raw_deleter(data);
    return;
  }
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
  if (!keep) destroy(b);
}

// Wraps the CPU allocator LibTorch had: counts what reaches it and serves pool scopes.
class RoutingAllocator final : public c10::Allocator {
 public:
  explicit RoutingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) const override {
    PoolCore* pool = tls_pool;
    if (pool == nullptr || n == 0) {
      auto d = inner_->allocate(n);
      if (n > 0) system_allocations.fetch_add(1, std::memory_order_relaxed);
      return d;
    }
    PoolBlock* b = nullptr;
    {
      std::lock_guard<std::mutex> lock(pool->mu);
      auto it = pool->free_lists.find(n);
      if (it != pool->free_lists.end() && it->second != nullptr) {
        b = it->second;
        it->second = b->next;
        pool->cached -= int64_t(n);
        pool->in_use += int64_t(n);
        ++pool->hits;
      }
    }
    if (b == nullptr) {  // a miss is counted only once the system allocation has succeeded
      b = new PoolBlock{inner_->allocate(n), n, nullptr, nullptr};
      system_allocations.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard<std::mutex> lock(registry_mu);
        registry()[b->system.get()] = b;
      }
      std::lock_guard<std::mutex> lock(pool->mu);
      pool->in_use += int64_t(n);
      ++pool->misses;
    }
    b->next = nullptr;
    b->core = pool->shared_from_this();
    return {b->system.get(), b->system.get(), &give_back, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &give_back; }

 private:
  c10::Allocator* inner_;
};

void install_routing_allocator() {
  // Leaked on purpose: tensors freed during static destruction still call through it.
  static RoutingAllocator* installed = [] {
    c10::Allocator* inner = c10::GetCPUAllocator();
    inner_raw_deleter = inner->raw_deleter();
    auto* a = new RoutingAllocator(inner);
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
  for (PoolBlock* b : drop) destroy(b);
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
  for (PoolBlock* b : drop) destroy(b);
}

TensorPool::Stats TensorPool::stats() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return {core_->hits, core_->misses, core_->cached, core_->in_use};
}

TensorPool::Scope::Scope(TensorPool* pool) : previous_(tls_pool) {
  if (pool != nullptr) keep_ = pool->core_;
  tls_pool = keep_.get();
}

TensorPool::Scope::~Scope() { tls_pool = previous_; }

int64_t cpu_tensor_allocations() {
  install_routing_allocator();
  return system_allocations.load(std::memory_order_relaxed);
}

}  // namespace trecvit

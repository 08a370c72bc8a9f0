#pragma once
// Cooperative cancellation: the caller owns the token and requests a stop (apps/ does it from
// its SIGINT/SIGTERM handler: a lock-free atomic is safe to touch there); long-running library
// calls poll it at safe points (after an optimizer step, between items) and return early.
#include <atomic>

namespace trecvit {

class CancelToken {
 public:
  void request() noexcept { requests_.fetch_add(1, std::memory_order_relaxed); }
  bool requested() const noexcept { return requests_.load(std::memory_order_relaxed) > 0; }
  int requests() const noexcept { return requests_.load(std::memory_order_relaxed); }
  void reset() noexcept { requests_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<int> requests_{0};
};

inline bool cancelled(const CancelToken* token) { return token && token->requested(); }

}  // namespace trecvit

#pragma once
// Data-parallel training on PyTorch's own c10d engine: a TCPStore rendezvous the torchrun way
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), Gloo collectives, rank 0's weights
// broadcast at the start, and gradients averaged by bucketed allreduce launched from the
// backward pass (a bucket goes as soon as its last gradient is accumulated), so communication
// overlaps the rest of the backward. Built without c10d/Gloo (TRECVIT_WITH_DISTRIBUTED off),
// join() says so.
#include <torch/torch.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace trecvit::dist {

// A collective that failed: a rank died, hung past the timeout, or cannot be reached.
struct DistError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Env {
  int64_t rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
};
// torchrun's variables from `vars` (the process environment when empty). WORLD_SIZE unset or 1:
// a single process. Throws DistError naming the variable that is missing or malformed.
Env env_from(const std::map<std::string, std::string>& vars = {});
bool available();  // built with c10d and Gloo

class Group {
 public:
  virtual ~Group() = default;
  // Joins the group (rank 0 hosts the store). Every later collective fails after `timeout`
  // instead of hanging, naming the ranks that did not answer.
  static std::shared_ptr<Group> join(const Env& env, std::chrono::milliseconds timeout);
  virtual int64_t rank() const = 0;
  virtual int64_t world() const = 0;
  virtual void broadcast(std::vector<torch::Tensor> tensors) = 0;  // rank 0's values, in place
  virtual void allreduce_sum(torch::Tensor t) = 0;                  // in place, blocking
  // Asynchronous sum: wait(handle) blocks until `t` holds it.
  virtual int64_t allreduce_sum_async(torch::Tensor t) = 0;
  virtual void wait(int64_t handle) = 0;
  virtual void barrier() = 0;
};

// The StepSync of the trainer over a group: averaged gradients in buckets of about
// `bucket_bytes`, in the same order on every rank.
class GradientReducer : public StepSync {
 public:
  GradientReducer(std::shared_ptr<Group> group, std::vector<torch::Tensor> params, int64_t bucket_bytes = 4 << 20);
  ~GradientReducer() override;
  GradientReducer(const GradientReducer&) = delete;  // the hooks hold `this`
  GradientReducer& operator=(const GradientReducer&) = delete;
  void before_backward(bool last_micro_batch) override;
  void after_backward() override;
  void sum(std::vector<double>& values) override;
  int64_t world() const override { return group_->world(); }
  bool writer() const override { return group_->rank() == 0; }
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;
    size_t ready = 0;
    int64_t handle = -1;
    torch::Tensor flat;
  };
  void ready(size_t param);
  void launch(Bucket& b);
  std::shared_ptr<Group> group_;
  std::vector<torch::Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // kept alive: they hold the hooks
  size_t next_launch_ = 0;
  bool syncing_ = false;
};

// Rank 0's parameters and buffers, everywhere (a fresh run's initial weights).
void broadcast_module(Group& group, torch::nn::Module& module);

// How many ranks hold another `text` than rank 0 (0: every rank agrees).
int64_t disagreeing_ranks(Group& group, const std::string& text);
double from_rank0(Group& group, double value);
bool any_rank(Group& group, bool flag);
// Every rank's rows [begin, begin + mine.size(0)) of a [total, C] tensor, on every rank: the
// ranks' contiguous shards put together (exactly: each element has one contributor).
torch::Tensor gather_rows(Group& group, const torch::Tensor& mine, int64_t begin, int64_t total);
// Rank `rank`'s contiguous share [begin, end) of `n` items.
inline std::pair<int64_t, int64_t> shard(int64_t n, int64_t rank, int64_t world) {
  return {n * rank / world, n * (rank + 1) / world};
}

}  // namespace trecvit::dist

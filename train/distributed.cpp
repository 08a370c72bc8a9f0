#include "train/distributed.h"
#include "blocks/parse_number.h"

#include <cstdlib>
#include <thread>

#include <torch/csrc/autograd/utils/lambda_post_hook.h>

#ifdef TRECVIT_WITH_DISTRIBUTED
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace trecvit::dist {
namespace {

int64_t parse_var(const std::map<std::string, std::string>& vars, const char* name, bool required, int64_t fallback,
                  int64_t lo, int64_t hi) {
  std::string text;
  if (!vars.empty()) {
    auto it = vars.find(name);
    if (it != vars.end()) text = it->second;
  } else if (const char* v = std::getenv(name)) {
    text = v;
  }
  if (text.empty()) {
    if (required) throw DistError(std::string(name) + " is not set (torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)");
    return fallback;
  }
  const auto parsed = parse_int(text);
  const int64_t v = parsed.value_or(lo);
  if (!parsed || v < lo || v > hi)
    throw DistError(std::string(name) + "=" + text + ": expected an integer in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  return v;
}

}  // namespace

Env env_from(const std::map<std::string, std::string>& vars) {
  Env e;
  e.world = parse_var(vars, "WORLD_SIZE", false, 1, 1, 1 << 20);
  if (e.world == 1) return e;
  e.rank = parse_var(vars, "RANK", true, 0, 0, e.world - 1);
  e.local_rank = parse_var(vars, "LOCAL_RANK", false, e.rank, 0, e.world - 1);
  e.local_world = parse_var(vars, "LOCAL_WORLD_SIZE", false, e.world, 1, e.world);
  e.master_port = parse_var(vars, "MASTER_PORT", true, 0, 1, 65535);
  const char* addr = nullptr;
  if (!vars.empty()) {
    auto it = vars.find("MASTER_ADDR");
    if (it != vars.end()) addr = it->second.c_str();
  } else {
    addr = std::getenv("MASTER_ADDR");
  }
  if (!addr || !*addr) throw DistError("MASTER_ADDR is not set (the host of rank 0, e.g. 127.0.0.1)");
  e.master_addr = addr;
  return e;
}

#ifdef TRECVIT_WITH_DISTRIBUTED

bool available() { return true; }

namespace {

class GlooGroup : public Group {
 public:
  GlooGroup(const Env& env, std::chrono::milliseconds timeout) : env_(env), timeout_(timeout) {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(env.master_port);
    o.isServer = env.rank == 0;
    o.numWorkers = static_cast<size_t>(env.world);
    o.waitWorkers = true;
    o.timeout = timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(device(env));
      opts->threads = 1;
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, static_cast<int>(env.rank), static_cast<int>(env.world), opts);
    } catch (const std::exception& e) {
      throw DistError("rank " + std::to_string(env.rank) + " could not join the group of " + std::to_string(env.world) +
                      " at " + env.master_addr + ":" + std::to_string(env.master_port) + " within " +
                      std::to_string(timeout.count() / 1000) + " s: " + first_line(e.what()));
    }
  }
  int64_t rank() const override { return env_.rank; }
  int64_t world() const override { return env_.world; }
  void broadcast(std::vector<torch::Tensor> tensors) override {
    // One collective per dtype over a flat copy (c10d's tensor list means one tensor per device).
    std::map<c10::ScalarType, std::vector<torch::Tensor>> by_type;
    for (auto& t : tensors) by_type[t.scalar_type()].push_back(t);
    for (auto& [type, ts] : by_type) {
      std::vector<torch::Tensor> flat_parts;
      for (auto& t : ts) flat_parts.push_back(t.reshape(-1));
      std::vector<torch::Tensor> flat = {torch::cat(flat_parts)};
      run("broadcast", [&] { return pg_->broadcast(flat); });
      int64_t at = 0;
      for (auto& t : ts) {
        t.copy_(flat[0].narrow(0, at, t.numel()).view_as(t));
        at += t.numel();
      }
    }
  }
  void allreduce_sum(torch::Tensor t) override {
    std::vector<torch::Tensor> v = {t};
    run("allreduce", [&] { return pg_->allreduce(v); });
  }
  int64_t allreduce_sum_async(torch::Tensor t) override {
    std::vector<torch::Tensor> v = {t};
    pending_[next_handle_] = pg_->allreduce(v);
    return next_handle_++;
  }
  void wait(int64_t handle) override {
    auto it = pending_.find(handle);
    if (it == pending_.end()) throw DistError("rank " + std::to_string(env_.rank) + ": no pending collective #" + std::to_string(handle));
    auto work = it->second;
    pending_.erase(it);
    run("allreduce", [&] { return work; });
  }
  void barrier() override {
    run("barrier", [&] { return pg_->barrier(); });
  }

 private:
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }
  // The interface the other ranks reach this one on: GLOO_SOCKET_IFNAME as in PyTorch, loopback
  // for a single-host group on 127.0.0.1, else the address this host's name resolves to.
  static std::shared_ptr<::gloo::transport::Device> device(const Env& env) {
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
    if (env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0)
      return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }

  template <class F>
  void run(const char* what, F start) {
    const int64_t n = ++calls_;
    try {
      auto work = start();
      work->wait(timeout_);
    } catch (const std::exception& e) {
      throw DistError("rank " + std::to_string(env_.rank) + ": " + what + " #" + std::to_string(n) + " failed: " +
                      lost(n) + " (" + first_line(e.what()) + ")");
    }
  }

  // A roll call through the store after a failed collective: the ranks that do not answer
  // within 10 s are the lost ones (the others fail soon after their neighbours, and answer).
  // Rank 0 hosts the store, so it waits for the ranks that answered to finish their roll call.
  std::string lost(int64_t call) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    const std::string prefix = "trecvit/roll/" + std::to_string(call) + "/";
    std::vector<int64_t> missing, present;
    try {
      store_->setTimeout(std::chrono::seconds(10));
      store_->set(prefix + std::to_string(env_.rank), std::vector<uint8_t>{1});
      do {
        missing.clear();
        present.clear();
        for (int64_t r = 0; r < env_.world; ++r)
          (store_->check({prefix + std::to_string(r)}) ? present : missing).push_back(r);
        if (missing.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      } while (std::chrono::steady_clock::now() < deadline);
      store_->set(prefix + "done/" + std::to_string(env_.rank), std::vector<uint8_t>{1});
      if (env_.rank == 0)
        for (auto r : present)
          while (!store_->check({prefix + "done/" + std::to_string(r)}) && std::chrono::steady_clock::now() < deadline + std::chrono::seconds(10))
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } catch (const std::exception&) {
      return "lost rank 0 (it hosts the rendezvous store at " + env_.master_addr + ":" + std::to_string(env_.master_port) + ")";
    }
    if (missing.empty()) return "every rank answered the roll call afterwards (a timeout or a network fault)";
    std::string list;
    for (auto r : missing) list += (list.empty() ? "" : ", ") + std::to_string(r);
    return "lost rank " + list + " (no answer: it died or hangs)";
  }

  Env env_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg_;
  std::map<int64_t, c10::intrusive_ptr<c10d::Work>> pending_;
  int64_t next_handle_ = 0;
  int64_t calls_ = 0;
};

}  // namespace

std::shared_ptr<Group> Group::join(const Env& env, std::chrono::milliseconds timeout) {
  return std::make_shared<GlooGroup>(env, timeout);
}

#else

bool available() { return false; }

std::shared_ptr<Group> Group::join(const Env& env, std::chrono::milliseconds) {
  throw DistError("WORLD_SIZE=" + std::to_string(env.world) +
                  ": this trecvit was built without distributed training (install libgloo-dev and rebuild, "
                  "or configure without -DTRECVIT_WITH_DISTRIBUTED=OFF)");
}

#endif

GradientReducer::GradientReducer(std::shared_ptr<Group> group, std::vector<torch::Tensor> params, int64_t bucket_bytes)
    : group_(std::move(group)) {
  for (auto& p : params)
    if (p.requires_grad()) params_.push_back(p);
  // Buckets in reverse registration order: roughly the order the backward produces gradients.
  bucket_of_.resize(params_.size());
  int64_t bytes = bucket_bytes;
  for (size_t k = params_.size(); k-- > 0;) {
    if (bytes >= bucket_bytes) buckets_.emplace_back(), bytes = 0;
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += params_[k].numel() * params_[k].element_size();
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          ready(k);
          return outputs;
        }));
    accumulators_.push_back(std::move(acc));
  }
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::before_backward(bool last_micro_batch) {
  syncing_ = last_micro_batch;
  if (!syncing_) return;
  for (auto& b : buckets_) b.ready = 0, b.handle = -1;
  next_launch_ = 0;
}

void GradientReducer::ready(size_t param) {
  if (!syncing_) return;  // an earlier micro-batch: gradients accumulate locally
  auto& b = buckets_[bucket_of_[param]];
  ++b.ready;
  // In bucket order on every rank, so that the ranks' collectives pair up.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].params.size())
    launch(buckets_[next_launch_++]);
}

void GradientReducer::launch(Bucket& b) {
  std::vector<torch::Tensor> grads;
  std::vector<float> had;  // summed too: a gradient no rank has stays undefined, as alone
  for (auto k : b.params) {
    auto& p = params_[k];
    grads.push_back(p.grad().defined() ? p.grad().reshape(-1) : torch::zeros({p.numel()}, p.options()));
    had.push_back(p.grad().defined() ? 1.f : 0.f);
  }
  b.flat = torch::cat(grads).div_(static_cast<double>(group_->world()));
  b.flat = torch::cat({b.flat, torch::tensor(had, b.flat.options())});
  b.handle = group_->allreduce_sum_async(b.flat);
}

void GradientReducer::after_backward() {
  if (!syncing_) return;
  while (next_launch_ < buckets_.size()) launch(buckets_[next_launch_++]);  // parameters without a gradient this step
  torch::NoGradGuard ng;
  for (auto& b : buckets_) {
    group_->wait(b.handle);
    int64_t at = 0;
    const float* had = b.flat.data_ptr<float>() + (b.flat.numel() - static_cast<int64_t>(b.params.size()));
    for (size_t i = 0; i < b.params.size(); ++i) {
      auto& p = params_[b.params[i]];
      if (had[i] == 0) {
        at += p.numel();
        continue;
      }
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.mutable_grad().copy_(b.flat.narrow(0, at, p.numel()).view_as(p));
      at += p.numel();
    }
    b.flat = torch::Tensor();
  }
  syncing_ = false;
}

void GradientReducer::sum(std::vector<double>& values) {
  auto t = torch::tensor(values, torch::kDouble);
  group_->allreduce_sum(t);
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
}

void broadcast_module(Group& group, torch::nn::Module& module) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> all;
  for (auto& p : module.parameters()) all.push_back(p.detach());
  for (auto& b : module.buffers()) all.push_back(b);
  group.broadcast(all);
}

}  // namespace trecvit::dist

namespace trecvit::dist {

int64_t disagreeing_ranks(Group& group, const std::string& text) {
  const auto h = static_cast<int64_t>(std::hash<std::string>{}(text) & 0x3fffffffffffffffULL);
  auto theirs = torch::tensor({h}, torch::kLong);
  group.broadcast({theirs});
  auto differs = torch::tensor({theirs.item<int64_t>() != h ? int64_t(1) : int64_t(0)}, torch::kLong);
  group.allreduce_sum(differs);
  return differs.item<int64_t>();
}

double from_rank0(Group& group, double value) {
  auto t = torch::tensor({value}, torch::kDouble);
  group.broadcast({t});
  return t.item<double>();
}

bool any_rank(Group& group, bool flag) {
  auto t = torch::tensor({flag ? int64_t(1) : int64_t(0)}, torch::kLong);
  group.allreduce_sum(t);
  return t.item<int64_t>() > 0;
}

torch::Tensor gather_rows(Group& group, const torch::Tensor& mine, int64_t begin, int64_t total) {
  auto all = torch::zeros({total, mine.size(1)}, mine.options());
  all.narrow(0, begin, mine.size(0)).copy_(mine);
  group.allreduce_sum(all);  // every row has one non-zero contributor: the sum is exact
  return all;
}

}  // namespace trecvit::dist

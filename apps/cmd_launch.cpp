// `trecvit launch`: torchrun's job without Python. Starts --nproc-per-node local ranks of this
// binary with torchrun's variables, prefixes each line of their output with its rank, forwards
// SIGINT/SIGTERM, and when one rank fails stops the others and exits with its status.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/distributed.h"

namespace trecvit::cli {
namespace {

volatile sig_atomic_t g_signal = 0, g_signals = 0;
extern "C" void on_launch_signal(int sig) {
  g_signal = sig;
  ++g_signals;
}

struct Rank {
  int64_t rank = 0;
  pid_t pid = -1;
  int out = -1;  // read end of its stdout+stderr
  std::string partial;
  bool running = true;
  int status = 0;
};

void emit(Rank& r, bool flush_all) {
  size_t nl;
  while ((nl = r.partial.find('\n')) != std::string::npos) {
    fmt::print("[rank {}] {}\n", r.rank, r.partial.substr(0, nl));
    r.partial.erase(0, nl + 1);
  }
  if (flush_all && !r.partial.empty()) fmt::print("[rank {}] {}\n", r.rank, r.partial), r.partial.clear();
  std::fflush(stdout);
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                  strsignal(WTERMSIG(status)) + ")";
  return "ended";
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

struct LaunchOptions {
  int64_t nproc = 1, nnodes = 1, node_rank = 0, master_port = 29500;
  std::string master_addr = "127.0.0.1";
  double grace_s = 10;
  std::vector<std::string> command;
};

int launch(const LaunchOptions& o) {
  if (o.node_rank >= o.nnodes) throw CLI::ValidationError("--node-rank", "must be < --nnodes (" + std::to_string(o.nnodes) + ")");
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) throw std::runtime_error("launch: cannot find this program (/proc/self/exe)");
  self[n] = 0;
  struct sigaction sa {};
  sa.sa_handler = on_launch_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  const int64_t world = o.nproc * o.nnodes;
  std::vector<Rank> ranks(static_cast<size_t>(o.nproc));
  // Each rank's argv and environment are built before fork: the child only dups and execs.
  std::vector<std::string> args = {self};
  args.insert(args.end(), o.command.begin(), o.command.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto stop_started = [&](const std::string& why) {
    for (auto& r : ranks)
      if (r.pid > 0) kill(r.pid, SIGKILL), waitpid(r.pid, nullptr, 0);
    throw std::runtime_error("launch: " + why + ": " + std::strerror(errno));
  };
  for (int64_t i = 0; i < o.nproc; ++i) {
    auto& r = ranks[static_cast<size_t>(i)];
    r.rank = o.node_rank * o.nproc + i;
    // The variables torchrun sets for each worker.
    const std::pair<const char*, std::string> vars[] = {
        {"RANK", std::to_string(r.rank)},          {"LOCAL_RANK", std::to_string(i)},
        {"WORLD_SIZE", std::to_string(world)},     {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
        {"GROUP_RANK", std::to_string(o.node_rank)}, {"ROLE_RANK", std::to_string(r.rank)},
        {"ROLE_WORLD_SIZE", std::to_string(world)}, {"MASTER_ADDR", o.master_addr},
        {"MASTER_PORT", std::to_string(o.master_port)}};
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      bool replaced = false;
      for (const auto& [k, v] : vars) replaced |= std::strncmp(*e, k, std::strlen(k)) == 0 && (*e)[std::strlen(k)] == '=';
      if (!replaced) env.emplace_back(*e);
    }
    for (const auto& [k, v] : vars) env.push_back(std::string(k) + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) stop_started("pipe");
    r.pid = fork();
    if (r.pid < 0) stop_started("fork");
    if (r.pid == 0) {
      // Its own process group: a Ctrl-C on the terminal reaches the launcher alone, which
      // forwards it once (a rank that got it twice would exit without its checkpoint).
      setpgid(0, 0);
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      execve(self, argv.data(), envp.data());
      _exit(127);
    }
    setpgid(r.pid, r.pid);
    close(fds[1]);
    r.out = fds[0];
  }
  int failed = -1;  // index of the first rank that failed
  std::chrono::steady_clock::time_point stop_at{};
  bool killed = false;
  int forwarded = 0;
  for (;;) {
    if (g_signals > forwarded) {  // forward: a first signal lets the ranks checkpoint; a second kills
      forwarded = g_signals;
      for (auto& r : ranks)
        if (r.running) kill(r.pid, forwarded >= 2 ? SIGKILL : g_signal);
    }
    std::vector<pollfd> fds;
    for (auto& r : ranks)
      if (r.out >= 0) fds.push_back({r.out, POLLIN, 0});
    poll(fds.empty() ? nullptr : fds.data(), fds.size(), 100);  // also the pause when no output is left
    for (auto& r : ranks) {
      if (r.out < 0) continue;
      pollfd p{r.out, POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) continue;
      char buf[8192];
      const ssize_t got = read(r.out, buf, sizeof(buf));
      if (got > 0) {
        r.partial.append(buf, static_cast<size_t>(got));
        emit(r, false);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        emit(r, true);
        close(r.out);
        r.out = -1;
      }
    }
    bool any_running = false;
    for (size_t i = 0; i < ranks.size(); ++i) {
      auto& r = ranks[i];
      if (r.running && waitpid(r.pid, &r.status, WNOHANG) == r.pid) {
        r.running = false;
        if ((!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) && failed < 0) {
          failed = static_cast<int>(i);
          fmt::print(stderr, "launch: rank {} (pid {}) {}; stopping the other ranks\n", r.rank, r.pid, describe(r.status));
          for (auto& other : ranks)
            if (other.running) kill(other.pid, SIGTERM);
          stop_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.grace_s * 1000));
        }
      }
      any_running |= r.running;
    }
    if (!any_running) {
      bool open = false;
      for (auto& r : ranks) open |= r.out >= 0;
      if (!open) break;
    }
    if (failed >= 0 && !killed && std::chrono::steady_clock::now() > stop_at) {
      for (auto& r : ranks)
        if (r.running) kill(r.pid, SIGKILL);
      killed = true;
    }
  }
  if (failed >= 0) return exit_code(ranks[static_cast<size_t>(failed)].status);
  return 0;
}

}  // namespace

void add_launch_command(CLI::App& app, Global&) {
  auto* cmd = app.add_subcommand("launch", "start data-parallel ranks of trecvit the way torchrun does: trecvit launch --nproc-per-node 2 -- train ...");
  static LaunchOptions o;
  cmd->add_option("--nproc-per-node", o.nproc, "ranks on this machine")->check(between(1, 1024));
  cmd->add_option("--nnodes", o.nnodes, "machines")->check(between(1, 65536));
  cmd->add_option("--node-rank", o.node_rank, "this machine's index in [0, nnodes)")->check(at_least(0));
  cmd->add_option("--master-addr", o.master_addr, "host of rank 0 (its TCPStore)");
  cmd->add_option("--master-port", o.master_port, "port of rank 0's TCPStore")->check(between(1, 65535));
  cmd->add_option("--grace", o.grace_s, "seconds the other ranks get to stop after one fails, before SIGKILL")->check(at_least(0));
  cmd->add_option("command", o.command, "the trecvit command each rank runs (after --)")->required();
  cmd->callback([] {
    const int rc = launch(o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace trecvit::cli

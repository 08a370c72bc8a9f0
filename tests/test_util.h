#pragma once
// Shared helpers for the test suites: deterministic data and finite differences.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include "models/config.h"

namespace trecvit::test {

inline TRecViTConfig tiny_config() { return load_config(std::string(TRECVIT_CONFIG_DIR) + "/tiny.json"); }

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Central finite differences of a scalar function of `param` at `count` entries spread over
// it, compared with the analytic gradient. Works in the tensor's dtype (use double).
inline void expect_grad_matches(const std::function<torch::Tensor()>& loss_fn, torch::Tensor param,
                                const torch::Tensor& analytic, int count, double tol, const std::string& what) {
  torch::NoGradGuard ng;
  auto flat = param.view(-1);
  auto grad = analytic.reshape(-1);
  const int64_t n = flat.numel();
  const double eps = 1e-6;
  for (int k = 0; k < count; ++k) {
    const int64_t i = (k * 7919 + 13) % n;
    const double orig = flat[i].item<double>();
    flat[i] = orig + eps;
    const double up = loss_fn().item<double>();
    flat[i] = orig - eps;
    const double down = loss_fn().item<double>();
    flat[i] = orig;
    const double numeric = (up - down) / (2 * eps);
    const double got = grad[i].item<double>();
    EXPECT_NEAR(got, numeric, tol * std::max(1.0, std::abs(numeric))) << what << " entry " << i;
  }
}

// Runs a shell command, returning exit status and combined output.
inline int run_command(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A TCP port on 127.0.0.1 that was free a moment ago (the OS's choice for port 0).
inline int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

// A fresh temporary directory for one test.
inline std::string temp_dir() {
  char tmpl[] = "/tmp/trecvit_test_XXXXXX";
  const char* d = mkdtemp(tmpl);
  if (!d) throw std::runtime_error("mkdtemp failed");
  return d;
}

// `trecvit data generate-ssf --out ROOT FLAGS` in a fresh temporary folder, once per test
// process for each FLAGS; returns ROOT.
inline const std::string& generated_ssf(const std::string& bin, const std::string& flags) {
  static std::map<std::string, std::string> made;
  auto it = made.find(flags);
  if (it != made.end()) return it->second;
  const std::string root = temp_dir() + "/ssf";
  std::string out;
  if (run_command(bin + " data generate-ssf --out " + root + " " + flags, &out) != 0) throw std::runtime_error(out);
  return made[flags] = root;
}

}  // namespace trecvit::test

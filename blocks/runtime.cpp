#include "blocks/runtime.h"

#include <dlfcn.h>
#include <unistd.h>
#include <torch/torch.h>

#include <fstream>
#include <thread>

namespace trecvit {
namespace {

// The shared objects mapped into this process that look like a BLAS.
std::string mapped_blas_path() {
  std::ifstream maps("/proc/self/maps");
  std::string line, found;
  while (std::getline(maps, line)) {
    auto pos = line.find('/');
    if (pos == std::string::npos) continue;
    std::string path = line.substr(pos);
    if (path.find("openblas") != std::string::npos || path.find("libmkl") != std::string::npos)
      return path;  // an optimised BLAS wins over the libblas.so.3 alternative
    if (path.find("libblas.so") != std::string::npos) found = path;
  }
  return found;
}

using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();

}  // namespace

void apply_thread_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // on failure, carry on with the default policy
}

bool reference_blas_in_use() {
  std::string p = mapped_blas_path();
  return p.find("openblas") == std::string::npos && p.find("mkl") == std::string::npos;
}

void configure_runtime(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  if (auto fn = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    fn(threads);
}

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.threads = at::get_num_threads();
  info.blas_path = mapped_blas_path();
  if (info.blas_path.find("openblas") != std::string::npos) {
    info.blas = "openblas";
    if (auto fn = reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")))
      info.blas_threads = fn();
  } else if (info.blas_path.find("mkl") != std::string::npos) {
    info.blas = "mkl";
  } else {
    info.blas = "reference";
  }
  using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);
  if (auto mallctl = reinterpret_cast<MallctlFn>(dlsym(RTLD_DEFAULT, "mallctl"))) {
    bool retain = false;
    size_t len = sizeof(retain);
    ssize_t dirty = 0;
    size_t dlen = sizeof(dirty);
    mallctl("opt.retain", &retain, &len, nullptr, 0);
    mallctl("opt.dirty_decay_ms", &dirty, &dlen, nullptr, 0);
    info.allocator = (retain && dirty < 0) ? "jemalloc (retaining)" : "jemalloc";
  } else {
    info.allocator = "glibc malloc";
  }
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  info.omp_wait_policy = wait ? wait : "";
  info.torch_version = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                       "." + std::to_string(TORCH_VERSION_PATCH);
  info.cuda = torch::cuda::is_available();
  return info;
}

}  // namespace trecvit

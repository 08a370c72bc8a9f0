#pragma once
// Process-wide runtime settings: thread counts, which BLAS LibTorch resolved to,
// and which allocator the binary runs on. Printed by `trecvit info`.
#include <string>

namespace trecvit {

struct RuntimeInfo {
  int threads = 0;             // ATen intra-op threads
  int blas_threads = -1;       // OpenBLAS pool size, -1 when not OpenBLAS
  std::string blas;            // "openblas", "reference", "mkl", or the library path
  std::string blas_path;       // resolved shared object backing libblas.so.3
  std::string allocator;       // "jemalloc (retain)", "jemalloc", "glibc"
  std::string omp_wait_policy;  // as set in the environment ("" = libgomp default)
  std::string torch_version;
  bool cuda = false;
};

// OpenMP threads that spin after each parallel region steal the cores OpenBLAS's threads need
// (and a loaded machine's): a TRecViT-S forward ran 15x slower that way on 2 busy cores. libgomp
// reads its wait policy once, when it loads, so a binary calls this first thing in main(): unless
// the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT), it sets OMP_WAIT_POLICY=PASSIVE
// and re-executes itself. Returns only when no re-exec happened.
void apply_thread_wait_policy(char** argv);

// Applies `threads` (<= 0: all cores) to ATen and to OpenBLAS's own pool.
void configure_runtime(int threads);

RuntimeInfo runtime_info();

// True when the process is backed by the slow reference BLAS (no OpenBLAS/MKL).
bool reference_blas_in_use();

}  // namespace trecvit

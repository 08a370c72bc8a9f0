#include "blocks/simd_kernels.h"

namespace trecvit::detail {

const std::vector<FloatKernels>& float_kernels() {
  static const std::vector<FloatKernels> kernels = [] {
    std::vector<FloatKernels> k;
#ifdef TRECVIT_HAVE_SIMD_KERNELS
    if (__builtin_cpu_supports("avx512f")) k.push_back(kAvx512Kernels);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) k.push_back(kAvx2Kernels);
#endif
    return k;
  }();
  return kernels;
}

}  // namespace trecvit::detail

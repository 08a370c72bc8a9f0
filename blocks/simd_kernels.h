#pragma once
// The vector builds of the hand-written float loops (blocks/simd_avx2.cpp, simd_avx512.cpp),
// each compiled for its instruction set and callable only on a CPU that has it.
#include <vector>

#include "blocks/adamw_math.h"
#include "blocks/attention_math.h"
#include "blocks/rglru_math.h"

namespace trecvit::detail {

struct FloatKernels {
  const char* name;
  void (*scan_forward)(const ScanDims& d, const float* v, const float* g, const float* sp, const float* h0,
                       const bool* reset, float* h, int64_t b0, int64_t b1);
  void (*scan_backward)(const ScanDims& d, const float* v, const float* g, const float* sp, const float* h0,
                        const bool* reset, const float* h, const float* dh, float* dv, float* dg, float* dsp_rows,
                        float* dh0, float* carry, int64_t b0, int64_t b1);
  void (*gelu_forward)(const float* x, float* y, int64_t n);
  void (*gelu_backward)(const float* x, const float* g, float* dx, int64_t n);
  void (*attention_forward)(const AttentionDims& d, const float* q, const float* k, const float* v, float* o,
                            float* p, float* scratch);
  void (*attention_backward)(const AttentionDims& d, const float* q, const float* k, const float* v, const float* p,
                             const float* dout, float* dq, float* dk, float* dv, float* scratch);
  void (*adamw)(const AdamWScalars& c, float* p, const float* g, float* m, float* v, int64_t n);
};
extern const FloatKernels kAvx2Kernels;
extern const FloatKernels kAvx512Kernels;

// The builds this CPU can run, widest first; empty where none (the portable loops run then).
const std::vector<FloatKernels>& float_kernels();

}  // namespace trecvit::detail

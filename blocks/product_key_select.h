#pragma once
// The selection kernels behind product_keys.h: exact top-k over N = n^2 product keys without
// autograd. q: [M, h * d_k] contiguous; keys: [h, 2, n, d_k / 2] contiguous. Returns
// (scores [M, h, k] descending, ids [M, h, k] int64), ties to the smaller index.
// fp32 on CPUs with AVX2 + FMA takes a fused score-and-select kernel (chunk_tokens unused:
// its memory is a few KiB per thread), in 16-lane registers where the CPU has AVX-512;
// everything else scores chunk_tokens tokens per head with a BLAS GEMM, then selects.
#include <torch/torch.h>

#include <utility>
#include <vector>

namespace trecvit::detail {

// kAuto: the widest this CPU runs (AVX-512, AVX2, generic). Tests name each one, as every
// path must return the same scores and ids.
enum class SelectPath { kAuto, kAvx512, kAvx2, kGeneric };
const std::vector<SelectPath>& select_paths();  // what this CPU runs, widest first

std::pair<torch::Tensor, torch::Tensor> product_key_select(const torch::Tensor& q, const torch::Tensor& keys,
                                                           int64_t k, int64_t kh, int64_t chunk_tokens,
                                                           SelectPath path = SelectPath::kAuto);

}  // namespace trecvit::detail

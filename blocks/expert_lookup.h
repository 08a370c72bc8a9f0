#pragma once
// The expert stage of the product-key mixers, fused: every token reads only the table rows it
// retrieved, and nothing of size [tokens, slots, D] is ever materialised.
//
//   single-neuron experts (PEER):  y[m] = sum_s g[m,s] * act(up[e] . x[m]) * down[e],  e = ids[m,s]
//   weighted row sum (PKM values): y[m] = sum_s g[m,s] * table[e]        (an embedding-bag sum)
//
// Both directions walk the slots grouped by expert row (a counting sort per chunk of tokens):
// every touched row is read once per chunk and its gradient summed by one thread, no atomics.
// The table gradients are dense [N, D] (zero outside the touched rows), or with sparse_grad a
// sparse COO tensor holding only the touched rows, for SparseRowAdam.
#include <torch/torch.h>

namespace trecvit {

enum class ExpertActivation { kGelu, kRelu };  // kGelu: the tanh form, as everywhere in the model

// x: [M, D]; ids: [M, S] int64 in [0, N); gates: [M, S]; up, down: [N, D]. Returns [M, D].
torch::Tensor single_neuron_experts(const torch::Tensor& x, const torch::Tensor& ids, const torch::Tensor& gates,
                                   const torch::Tensor& up, const torch::Tensor& down, ExpertActivation act,
                                   bool sparse_grad);

// ids: [M, S]; gates: [M, S]; table: [N, D]. Returns [M, D].
torch::Tensor weighted_row_sum(const torch::Tensor& ids, const torch::Tensor& gates, const torch::Tensor& table,
                               bool sparse_grad);

// Asks the kernel to back a large table with transparent huge pages (Linux, before its first
// touch): rows are read at random from gigabytes, and with 4 KiB pages nearly every row read
// is also a TLB miss. A no-op elsewhere or for small tensors.
void advise_huge_pages(const torch::Tensor& table);

// GELU (tanh approximation) and its derivative, matching torch::gelu(x, "tanh").
template <typename T>
inline T gelu_tanh_scalar(T z) {
  const T c = T(0.7978845608028654), a = T(0.044715);
  return T(0.5) * z * (T(1) + std::tanh(c * (z + a * z * z * z)));
}
template <typename T>
inline T gelu_tanh_grad_scalar(T z) {
  const T c = T(0.7978845608028654), a = T(0.044715);
  const T t = std::tanh(c * (z + a * z * z * z));
  return T(0.5) * (T(1) + t) + T(0.5) * z * (T(1) - t * t) * c * (T(1) + T(3) * a * z * z);
}

}  // namespace trecvit

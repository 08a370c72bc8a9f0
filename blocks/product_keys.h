#pragma once
// Product-key retrieval (Lample et al. 2019; PEER, He 2024): N = n^2 keys, each the concatenation
// of a sub-key from C (n keys of width d_k/2, scored by the query's first half) and one from C'
// (scored by the second half). The top-k of q1.c_i + q2.c'_j over all N comes from the top-k'
// (k' >= k) of each half: k'^2 candidates, then the final top-k; expert id = i * n + j.
//
// Ties are broken deterministically, by the smaller index at both levels, so the result equals a
// brute-force sort over all N by (score descending, id ascending): if (i, j) is in that top-k,
// no k' sub-keys can beat i (each would make a better (i', j)), so i survives its half's cut.
#include <torch/torch.h>

#include <string>
#include <utility>

namespace trecvit {

// Exact top-k over N = n^2 product keys, no autograd. q: [M, h, d_k]; sub_keys: [h, 2, n, d_k/2].
// Returns (scores [M, h, k] sorted descending, ids [M, h, k] int64). The sub-key scores are
// computed for chunk_tokens tokens and one head at a time ([2, chunk, n] at most in memory).
std::pair<torch::Tensor, torch::Tensor> product_key_topk(const torch::Tensor& q, const torch::Tensor& sub_keys,
                                                         int64_t k, int64_t half_k, int64_t chunk_tokens);

// The same selection with scores differentiable w.r.t. q ([M, h * d_k]) and sub_keys; the
// backward touches only the selected sub-keys (O(M h k d_k), not the O(M h n d_k) of the scoring).
std::pair<torch::Tensor, torch::Tensor> product_key_scores(const torch::Tensor& q, const torch::Tensor& sub_keys,
                                                           int64_t k, int64_t half_k, int64_t chunk_tokens);

// The retrieval fields, declared once here for the router and for every mixer that owns one
// (PEER, PKM): heads h, top-k per head, top-k' kept per sub-key half (0: topk), query width
// d_k per head (even), query norm: batch (batch statistics) | layer (causal-safe) | none, and
// tokens per sub-key scoring chunk (0: about 1 MiB of sub-key scores per head and chunk).
#define TRECVIT_PRODUCT_KEY_ARGS(HEADS, TOPK, KEY_DIM) \
  TORCH_ARG(int64_t, heads) = HEADS;                  \
  TORCH_ARG(int64_t, topk) = TOPK;                    \
  TORCH_ARG(int64_t, half_topk) = 0;                  \
  TORCH_ARG(int64_t, key_dim) = KEY_DIM;              \
  TORCH_ARG(std::string, query_norm) = "batch";       \
  TORCH_ARG(int64_t, chunk_tokens) = 0

struct ProductKeyRouterOptions {
  ProductKeyRouterOptions(int64_t dim, int64_t num_keys) : dim_(dim), num_keys_(num_keys) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, num_keys);  // N = n^2
  TRECVIT_PRODUCT_KEY_ARGS(8, 16, 128);
  TORCH_ARG(bool, query_bias) = false;
};

// The router options of a mixer whose Options carry TRECVIT_PRODUCT_KEY_ARGS.
template <class O>
ProductKeyRouterOptions router_options(const O& o, int64_t dim, int64_t num_keys) {
  return ProductKeyRouterOptions(dim, num_keys)
      .heads(o.heads())
      .topk(o.topk())
      .half_topk(o.half_topk())
      .key_dim(o.key_dim())
      .query_norm(o.query_norm())
      .chunk_tokens(o.chunk_tokens());
}

struct Routing {
  torch::Tensor ids;    // [M, h, k] int64
  torch::Tensor gates;  // [M, h, k] softmax over each head's k scores (computed in fp32 or fp64)
};

// Query projection, query norm, product keys and the softmax over the retrieved scores.
class ProductKeyRouterImpl : public torch::nn::Cloneable<ProductKeyRouterImpl> {
 public:
  explicit ProductKeyRouterImpl(const ProductKeyRouterOptions& options);
  void reset() override;
  // x: [M, D].
  Routing forward(const torch::Tensor& x);
  // The normalised query [M, h * d_k].
  torch::Tensor query(const torch::Tensor& x);

  int64_t n() const { return n_; }
  int64_t half_topk() const { return options.half_topk() > 0 ? options.half_topk() : options.topk(); }
  int64_t chunk_tokens() const;
  int64_t num_params() const;
  // Per token: query projection + sub-key scores (matrix products) and the top-k comparisons.
  int64_t flops_gemm() const;
  int64_t flops_topk() const;

  ProductKeyRouterOptions options;
  torch::nn::Linear query_proj{nullptr};
  torch::nn::BatchNorm1d batch_norm{nullptr};
  torch::Tensor ln_weight, ln_bias;  // query_norm == "layer": per-head LayerNorm, affine [h * d_k]
  torch::Tensor sub_keys;            // [h, 2, n, d_k / 2]

 private:
  int64_t n_ = 0;
};
TORCH_MODULE(ProductKeyRouter);

}  // namespace trecvit

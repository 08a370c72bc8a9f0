#pragma once
// Gradient checks for the sparse mixers: finite differences in double against autograd, with a
// NON-contiguous incoming gradient (LibTorch 1.13 once got GELU wrong exactly there).
#include <utility>
#include <vector>

#include "tests/test_util.h"

namespace trecvit::test {

// fwd() returns [M, D]; the loss is sum(fwd() * G) with G a transposed (non-contiguous) view.
// Sparse gradients (sparse_grad tables) are compared densified.
inline void check_gradients(const std::function<torch::Tensor()>& fwd,
                            const std::vector<std::pair<std::string, torch::Tensor>>& params, int count,
                            const std::string& what, double tol = 1e-5) {
  auto y = fwd();
  ASSERT_EQ(y.dim(), 2);
  auto G = torch::randn({y.size(1), y.size(0)}, y.options()).t();
  ASSERT_FALSE(G.is_contiguous());
  std::vector<torch::Tensor> tensors;
  for (auto& p : params) tensors.push_back(p.second);
  auto grads = torch::autograd::grad({y}, tensors, {G}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  auto loss = [&] { return (fwd() * G).sum(); };
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_TRUE(grads[i].defined()) << what << ": no gradient for " << params[i].first;
    auto g = grads[i].is_sparse() ? grads[i].to_dense() : grads[i];
    expect_grad_matches(loss, params[i].second, g, count, tol, what + " " + params[i].first);
  }
}

}  // namespace trecvit::test

#pragma once
// Token-choice mixture of expert MLPs, shared by MoE and sigma-MoE:
//   y[m] = sum_j gates[m, j] * act(x[m] W1[e]) W2[e],   e = ids[m, j]
// Tokens are grouped by expert (a stable sort of the slots), each expert runs two dense matrix
// products on exactly its tokens (dropless: no capacity limit, no padding), and the weighted
// outputs are summed back per token. Autograd sees only gathers, GEMMs and one index_add.
#include <torch/torch.h>

#include "blocks/expert_lookup.h"

namespace trecvit {

// x: [M, D]; ids, gates: [M, K]; w1: [E, D, G]; w2: [E, G, D]. Returns [M, D].
torch::Tensor expert_mlps(const torch::Tensor& x, const torch::Tensor& ids, const torch::Tensor& gates,
                          const torch::Tensor& w1, const torch::Tensor& w2, ExpertActivation act);

}  // namespace trecvit

#pragma once
// The released TRecViT .npz layout (trecvit_B_k400.npz): Flax parameter paths joined
// with '/', Dense kernels [in, out], the tokenizer conv [kt, kh, kw, in, out],
// attention q/k/v kernels [D, heads, head_dim] and out kernel [heads, head_dim, D].
#include <optional>
#include <string>
#include <vector>

#include "models/npz.h"
#include "models/trecvit.h"

namespace trecvit {

struct FlaxParam {
  std::string key;                  // e.g. "encoder/residualblock_00/recurrent_block/rg_lru/a_param"
  torch::Tensor param;              // the model's tensor (shares storage)
  std::vector<int64_t> flax_shape;  // the shape in the released layout
  bool transpose = false;           // Dense-like: flax [in, out] == our weight.t()
};

// Every parameter of the model with its released key, in a stable order.
std::vector<FlaxParam> flax_params(TRecViTImpl& model);

// Infers the architecture from the array shapes (width, depth, heads, MLP and LRU widths,
// conv width, patch, image size, classes). Non-square position grids need a config.
TRecViTConfig infer_config(const NamedArrays& arrays, const std::string& source);

// Loads the arrays into a model built from `config` (or the inferred one). Missing, extra
// or mis-shaped keys throw NpyError naming the key.
TRecViT import_npz(const std::string& path, std::optional<TRecViTConfig> config = std::nullopt);
void load_flax_arrays(TRecViTImpl& model, const NamedArrays& arrays, const std::string& source);
NamedArrays export_flax_arrays(TRecViTImpl& model);
void export_npz(TRecViTImpl& model, const std::string& path);

}  // namespace trecvit

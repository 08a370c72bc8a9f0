#pragma once
// NumPy .npy / .npz arrays <-> tensors. np.savez layout: a zip of "<key>.npy" members.
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace trecvit {

struct NpyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using NamedArrays = std::vector<std::pair<std::string, torch::Tensor>>;

// Parses one .npy buffer (little-endian bool/uint8/int32/int64/float16/float32/float64,
// C or Fortran order). `what` names the source in errors.
torch::Tensor parse_npy(const std::string& bytes, const std::string& what);
std::string serialize_npy(const torch::Tensor& t);

torch::Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const torch::Tensor& t);

// Keys keep the archive's order; ".npy" is stripped.
NamedArrays read_npz(const std::string& path);
// Written to a temporary file and renamed, so a failure never leaves a partial archive.
void write_npz(const std::string& path, const NamedArrays& arrays);

}  // namespace trecvit

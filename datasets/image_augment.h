#pragma once
// Still-image augmentation as dm_nevis applies it (training/augmentations.py): a random
// resized crop (a box of random area and aspect inside the image) then a random horizontal
// flip for training; a centre crop (the central square) for evaluation. Both resize to
// size x size with area-averaging when shrinking, bilinear when enlarging.
#include <torch/torch.h>

#include <cstdint>

namespace trecvit::data {

struct CropOptions {
  double min_area = 0.8, max_area = 1.0;       // fraction of the image's area
  double min_aspect = 3.0 / 4.0, max_aspect = 4.0 / 3.0;
  bool flip = true;
};

// img [H, W, 3] uint8 -> dst [size, size, 3] uint8 (contiguous, written in place). `seed`
// fixes the box and the flip, so a sample's augmentation does not depend on threads.
void random_resized_crop(const torch::Tensor& img, torch::Tensor& dst, const CropOptions& options, uint64_t seed);
void center_crop(const torch::Tensor& img, torch::Tensor& dst);

}  // namespace trecvit::data

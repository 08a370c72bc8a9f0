#pragma once
// A real mini NEVIS stream built from image data Debian packages ship (nothing downloaded),
// written in dm_nevis's on-disk format:
//   uci_digits     1998  the 1,797 UCI 8x8 optical digits (python3-sklearn's digits.csv.gz)
//   opencv_digits  2004  the 5,000 MNIST-derived 20x20 digits of OpenCV's samples (opencv-doc's
//                        digits.png), standing in for NEVIS's MNIST
//   fashion_mnist  2019  Fashion-MNIST (dataset-fashion-mnist), as in NEVIS
// Splits follow dm_nevis: a dataset with an official test set has its train cut 70/15/15 in
// order into train/dev/dev-test (TFDS slicing) and keeps its test; one without is shuffled with
// a fixed seed and cut 56/12/12/20 (dm_nevis's own handlers). train_and_dev = train + dev.
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace trecvit::data {

struct NevisBuildSource {
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  std::string opencv_digits_png = "/usr/share/doc/opencv-doc/examples/data/digits.png";
  std::string uci_digits_csv = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";
};

struct NevisBuildOptions {
  std::string out_dir;
  NevisBuildSource source;
  std::vector<std::string> datasets;  // empty: all three
  int shards = 10;                    // per split, round-robin, as dm_nevis writes them
  uint64_t seed = 0;                  // the shuffle of the sets without an official test
};

struct NevisBuildResult {
  std::string dataset;
  bool skipped = false;  // already complete (status "ready")
  std::map<std::string, int64_t> examples;  // per split
};

const std::vector<std::string>& nevis_build_datasets();

// Builds each dataset into out_dir/<name>; a dataset whose status is already "ready" is kept.
// The status file is written last, so an interrupted build is redone. Throws DatasetError
// naming a missing source file (and the Debian package that ships it).
std::vector<NevisBuildResult> build_nevis_debian(const NevisBuildOptions& options,
                                                 const std::function<void(const std::string&)>& on_dataset = {});

}  // namespace trecvit::data

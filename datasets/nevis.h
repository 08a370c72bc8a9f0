#pragma once
// NEVIS'22 datasets in dm_nevis's on-disk format:
//   ROOT/<dataset>/status                       "ready" once a dataset is complete
//   ROOT/<dataset>/<split>/data-XXXXX-of-YYYYY  uncompressed TFRecord shards of tf.train.Example
//   splits: train, dev, dev-test (hyphen on disk), test, train_and_dev
// Each Example holds `png_encoded_image` (one PNG: 1, 3 or 4 channels, 8 or 16 bit, any size),
// `label` (int64) and, for multi-label datasets, `multi_label` (the positive classes). dm_nevis's
// `metadata` file is a Python pickle and is not read: the class count comes from an override,
// from the sidecar `ROOT/<dataset>/trecvit.json` this toolkit writes, or from the labels.
// Dataset names with a '/' (TFDS names such as voc/2007) live in folders with '_' instead.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "datasets/tfrecord.h"

namespace trecvit::data {

// Labels at or above this are damage, not classes (NEVIS's largest task, ImageNet, has 1,000).
constexpr int64_t kMaxNevisClasses = 100000;

// The splits in dm_nevis's order (names as on disk).
const std::vector<std::string>& nevis_splits();

struct NevisSplit {
  bool present = false;              // the split folder exists
  std::vector<torch::Tensor> images;  // [H, W, 3] uint8 RGB (grey replicated, alpha dropped, 16 bit -> 8)
  std::vector<int64_t> labels;        // -1 where a multi-label record has no label
  std::vector<std::vector<int64_t>> multi_labels;  // empty unless the dataset is multi-label
  int64_t corrupt = 0;                // records reported and skipped
  int64_t size() const { return int64_t(images.size()); }
};

struct NevisDataset {
  std::string name, dir;
  bool ready = false;                 // status says "ready"
  int64_t num_classes = 0;
  bool multi_label = false;
  std::vector<std::string> class_names;  // from the sidecar, else empty
  std::string classes_from;              // "override", "sidecar" or "labels"
  std::map<std::string, NevisSplit> splits;
  const NevisSplit& split(const std::string& name) const;  // an empty split when absent
};

struct NevisLoadOptions {
  std::vector<std::string> splits;  // empty: all five
  int64_t num_classes = 0;          // > 0 overrides the sidecar and the labels
  int64_t max_side = 0;             // > 0: images larger than this are shrunk (aspect kept) as they load
  bool decode = true;               // false: check the records only (no images kept)
  int threads = 0;                  // PNG decoding (0: LibTorch's intra-op threads)
};

using NevisProblemSink = std::function<void(const TFRecordProblem&)>;

std::string nevis_dataset_dir(const std::string& root, const std::string& dataset);
// Whether ROOT/<dataset>/status is a regular file saying "ready" (never opens a FIFO).
bool nevis_dataset_ready(const std::string& root, const std::string& dataset);
// The dataset folders under root (with a `status` file or a split folder), sorted.
std::vector<std::string> nevis_dataset_names(const std::string& root);
// The shard files of a split folder (data-XXXXX-of-YYYYY), sorted; other files are ignored.
std::vector<std::string> nevis_shards(const std::string& split_dir);

// Loads a dataset. Every damaged record (CRC mismatch, truncation, malformed Example, missing or
// undecodable PNG, label outside [0, classes)) goes to on_problem with its file and byte offset,
// is counted in its split and skipped. Throws DatasetError when the dataset folder is missing
// or the sidecar is malformed.
NevisDataset load_nevis_dataset(const std::string& root, const std::string& dataset, const NevisLoadOptions& options,
                                const NevisProblemSink& on_problem = {});

// Decodes a PNG (or any image OpenCV reads) to [H, W, 3] uint8 RGB. Throws DatasetError.
torch::Tensor decode_image_rgb(std::string_view bytes);

// The sidecar: {"num_classes": n, "multi_label": bool, "class_names": [...]}.
void write_nevis_sidecar(const std::string& dataset_dir, int64_t num_classes, bool multi_label,
                         const std::vector<std::string>& class_names);

}  // namespace trecvit::data

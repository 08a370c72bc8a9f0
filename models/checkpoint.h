#pragma once
// The toolkit's own checkpoint: one file holding the config (JSON) and every tensor, so a
// checkpoint alone is enough to run. Written to a temporary file and renamed into place.
#include <stdexcept>
#include <string>

#include "models/trecvit.h"

namespace trecvit {

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int64_t kCheckpointFormat = 1;

void save_checkpoint(TRecViTImpl& model, const std::string& path);

// Building blocks for checkpoints that carry more than the model (the trainer's). Keys that start
// with "train" are ignored by load_checkpoint, so a training checkpoint also runs as a model.
void write_model(torch::serialize::OutputArchive& archive, TRecViTImpl& model);
// Saves to a temporary file beside `path`, syncs it and renames it into place: a crash or a full
// disk never leaves a half-written checkpoint under `path`.
void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path);
// Opens `path` as a trecvit checkpoint and returns its archive and embedded config.
torch::serialize::InputArchive open_checkpoint(const std::string& path, TRecViTConfig* config);
// Builds the model from the embedded config and loads every tensor. Missing, extra or
// mis-shaped tensors, a corrupt file, or another format throw CheckpointError naming it.
TRecViT load_checkpoint(const std::string& path);
TRecViTConfig read_checkpoint_config(const std::string& path);
// Loads every tensor of a checkpoint written for the same config into an existing model.
void load_weights(TRecViTImpl& model, const std::string& path);

}  // namespace trecvit

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
// Builds the model from the embedded config and loads every tensor. Missing, extra or
// mis-shaped tensors, a corrupt file, or another format throw CheckpointError naming it.
TRecViT load_checkpoint(const std::string& path);
TRecViTConfig read_checkpoint_config(const std::string& path);

}  // namespace trecvit

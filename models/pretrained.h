#pragma once
// Starting training from weights: a trecvit checkpoint or a released TRecViT .npz (its
// architecture inferred from the arrays, as `trecvit import` does), and a model for another
// class count that keeps every weight but the class head.
#include <string>

#include "models/trecvit.h"

namespace trecvit {

// Throws CheckpointError naming the file when it is neither a trecvit checkpoint nor a
// released-layout .npz.
TRecViT load_pretrained(const std::string& path);

// `from`'s backbone (every tensor but cls_head, copied) under a fresh cls_head for `classes`
// classes, initialised from the current RNG. Class names are dropped (the classes are new).
TRecViT with_new_head(TRecViTImpl& from, int64_t classes);

// The first architecture field in which two configs differ, ignoring what does not shape the
// backbone's weights (name, num_classes, readout, num_frames); "" when none.
std::string backbone_difference(const TRecViTConfig& a, const TRecViTConfig& b);

}  // namespace trecvit

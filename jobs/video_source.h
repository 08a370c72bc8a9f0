#pragma once
// The dataset loader as the trainer's BatchSource (video builds only).
#include "datasets/loader.h"
#include "train/batch_source.h"

namespace trecvit {

class LoaderBatchSource : public BatchSource {
 public:
  explicit LoaderBatchSource(data::VideoLoader& loader) : loader_(loader) {}
  Batch next() override {
    auto b = loader_.next();
    return {b.frames, b.labels};
  }
  nlohmann::json position() const override { return loader_.position(); }
  void restore(const nlohmann::json& p) override { loader_.restore(p); }
  int64_t batches_per_epoch() const override { return loader_.batches_per_epoch(); }
  int64_t skipped() const override { return loader_.skipped(); }

 private:
  data::VideoLoader& loader_;
};

}  // namespace trecvit

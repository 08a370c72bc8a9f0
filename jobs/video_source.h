#pragma once
// The dataset loader as the trainer's BatchSource (video builds only).
#include <fstream>
#include <string>

#include "datasets/loader.h"
#include "train/batch_source.h"

namespace trecvit {

class LoaderBatchSource : public BatchSource {
 public:
  // With a sample log, each batch's sample ids are appended to it as one line (for checking
  // that runs saw the same data in the same order).
  explicit LoaderBatchSource(data::VideoLoader& loader, const std::string& sample_log = "") : loader_(loader) {
    if (!sample_log.empty()) log_.open(sample_log, std::ios::app);
  }
  Batch next() override {
    auto b = loader_.next();
    if (log_.is_open()) {
      for (size_t i = 0; i < b.ids.size(); ++i) log_ << (i ? " " : "") << b.ids[i];
      log_ << "\n" << std::flush;
    }
    return {b.frames, b.labels};
  }
  nlohmann::json position() const override { return loader_.position(); }
  void restore(const nlohmann::json& p) override { loader_.restore(p); }
  int64_t batches_per_epoch() const override { return loader_.batches_per_epoch(); }
  int64_t skipped() const override { return loader_.skipped(); }

 private:
  data::VideoLoader& loader_;
  std::ofstream log_;
};

}  // namespace trecvit

#pragma once
// The dataset loader as the trainer's BatchSource (video builds only).
#include <fstream>
#include <string>
#include <vector>

#include "blocks/file_safety.h"
#include "datasets/loader.h"
#include "train/batch_source.h"

namespace trecvit {

class LoaderBatchSource : public BatchSource {
 public:
  // With a sample log, each batch's sample ids are appended to it as one line (for checking
  // that runs saw the same data in the same order).
  explicit LoaderBatchSource(data::VideoLoader& loader, const std::string& sample_log = "")
      : loader_(loader), log_path_(sample_log) {
    if (!sample_log.empty()) log_.open(sample_log, std::ios::app);
  }
  Batch next() override {
    auto b = loader_.next();
    if (log_.is_open()) {
      for (size_t i = 0; i < b.ids.size(); ++i) log_ << (i ? " " : "") << b.ids[i];
      log_ << "\n" << std::flush;
    }
    return {b.frames, b.labels, {}};
  }
  nlohmann::json position() const override { return loader_.position(); }
  void restore(const nlohmann::json& p) override {
    loader_.restore(p);
    if (log_path_.empty()) return;
    // A resumed run repeats the batches after its checkpoint: keep the log to the batches before it.
    const int64_t keep = p.at("epoch").get<int64_t>() * loader_.batches_per_epoch() + p.at("batch").get<int64_t>();
    std::vector<std::string> lines;
    if (const auto why = unreadable_if_present(log_path_); !why.empty()) throw std::runtime_error(log_path_ + ": " + why);
    {
      std::ifstream in(log_path_);
      std::string line;
      while (static_cast<int64_t>(lines.size()) < keep && std::getline(in, line)) lines.push_back(line);
    }
    log_.close();
    log_.open(log_path_, std::ios::trunc);
    for (const auto& l : lines) log_ << l << "\n";
    log_.flush();
  }
  int64_t batches_per_epoch() const override { return loader_.batches_per_epoch(); }
  int64_t skipped() const override { return loader_.skipped(); }

 private:
  data::VideoLoader& loader_;
  std::string log_path_;
  std::ofstream log_;
};

}  // namespace trecvit

#pragma once
// Classification evaluation: multi-view averaging, top-1/top-5, per-class accuracy and the
// confusion matrix, with a JSON report.
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/trecvit.h"

namespace trecvit {

struct EvalSample {
  torch::Tensor views;  // [V, T, H, W, 3] uint8: the temporal x spatial views of one video
  int64_t label = -1;
  std::string id;
};

// Yields samples until exhausted. Samples that cannot be read are skipped and counted.
class EvalSource {
 public:
  virtual ~EvalSource() = default;
  virtual bool next(EvalSample& sample) = 0;
  virtual int64_t skipped() const { return 0; }
};

class ClassificationMetrics {
 public:
  explicit ClassificationMetrics(int64_t num_classes);
  // logits [B, C] (already averaged over views), labels [B].
  void add(const torch::Tensor& logits, const torch::Tensor& labels);
  int64_t count() const { return count_; }
  double top1() const;
  double top5() const;
  std::vector<double> per_class_accuracy() const;  // NaN-free: classes never seen report -1
  const torch::Tensor& confusion() const { return confusion_; }  // [true, predicted] counts
  nlohmann::json to_json(const std::vector<std::string>& class_names = {}) const;
  // Every count as one int64 tensor [count, top1, top5, confusion...]: summed across ranks, a
  // sharded evaluation's exact totals (set_counts takes the sum back).
  torch::Tensor counts() const;
  void set_counts(const torch::Tensor& counts);

 private:
  int64_t num_classes_, count_ = 0, top1_ = 0, top5_ = 0;
  torch::Tensor confusion_;
};

// Runs every sample's views through the model (eval mode, no grad), averages the logits over
// views, and accumulates the metrics.
ClassificationMetrics evaluate(TRecViTImpl& model, EvalSource& source);
// The same pass read out twice: the returned metrics use the model's own readout; `last_frame`
// (num_classes metrics) collects the last-frame readout of the same features.
ClassificationMetrics evaluate(TRecViTImpl& model, EvalSource& source, ClassificationMetrics* last_frame);

}  // namespace trecvit

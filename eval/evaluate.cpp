#include "eval/evaluate.h"

namespace trecvit {

ClassificationMetrics::ClassificationMetrics(int64_t num_classes)
    : num_classes_(num_classes), confusion_(torch::zeros({num_classes, num_classes}, torch::kLong)) {}

void ClassificationMetrics::add(const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) == num_classes_, "metrics: logits must be [B, ", num_classes_, "]");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), "metrics: labels must be [B]");
  auto l = labels.to(torch::kLong).cpu();
  TORCH_CHECK(l.min().item<int64_t>() >= 0 && l.max().item<int64_t>() < num_classes_, "metrics: label out of range");
  const int64_t k = std::min<int64_t>(5, num_classes_);
  auto topk = std::get<1>(logits.detach().cpu().topk(k, 1));
  auto pred = topk.select(1, 0);
  top1_ += (pred == l).sum().item<int64_t>();
  top5_ += (topk == l.unsqueeze(1)).any(1).sum().item<int64_t>();
  count_ += l.size(0);
  confusion_.view(-1).index_add_(0, l * num_classes_ + pred, torch::ones_like(l));
}

torch::Tensor ClassificationMetrics::counts() const {
  return torch::cat({torch::tensor({count_, top1_, top5_}, torch::kLong), confusion_.reshape(-1)});
}

void ClassificationMetrics::set_counts(const torch::Tensor& c) {
  TORCH_CHECK(c.numel() == 3 + num_classes_ * num_classes_, "metrics: counts of another class count");
  auto t = c.to(torch::kLong).contiguous();
  count_ = t[0].item<int64_t>();
  top1_ = t[1].item<int64_t>();
  top5_ = t[2].item<int64_t>();
  confusion_ = t.narrow(0, 3, num_classes_ * num_classes_).reshape({num_classes_, num_classes_}).clone();
}

double ClassificationMetrics::top1() const { return count_ ? double(top1_) / count_ : 0.0; }
double ClassificationMetrics::top5() const { return count_ ? double(top5_) / count_ : 0.0; }

std::vector<double> ClassificationMetrics::per_class_accuracy() const {
  std::vector<double> out(num_classes_, -1.0);
  auto rows = confusion_.sum(1);
  for (int64_t c = 0; c < num_classes_; ++c) {
    const int64_t n = rows[c].item<int64_t>();
    if (n > 0) out[c] = double(confusion_[c][c].item<int64_t>()) / n;
  }
  return out;
}

nlohmann::json ClassificationMetrics::to_json(const std::vector<std::string>& names) const {
  nlohmann::json j = {{"count", count_}, {"top1", top1()}, {"top5", top5()}};
  auto per = per_class_accuracy();
  nlohmann::json pc = nlohmann::json::array();
  for (int64_t c = 0; c < num_classes_; ++c) {
    nlohmann::json e = {{"class", c}, {"accuracy", per[c] < 0 ? nlohmann::json(nullptr) : nlohmann::json(per[c])}};
    if (c < static_cast<int64_t>(names.size())) e["name"] = names[c];
    pc.push_back(e);
  }
  j["per_class"] = pc;
  nlohmann::json cm = nlohmann::json::array();
  for (int64_t r = 0; r < num_classes_; ++r) {
    auto row = confusion_[r].contiguous();
    cm.push_back(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + num_classes_));
  }
  j["confusion"] = cm;
  return j;
}

ClassificationMetrics evaluate(TRecViTImpl& model, EvalSource& source, ClassificationMetrics* last_frame) {
  ClassificationMetrics metrics(model.config().num_classes);
  model.eval();
  torch::NoGradGuard ng;
  const bool last_is_own = model.config().readout == "last";
  EvalSample s;
  while (source.next(s)) {
    auto z = model.frame_features(s.views);  // [V, T, rep]
    auto mean = model.head(z.mean(1)).mean(0, /*keepdim=*/true);
    auto last = model.head(z.select(1, z.size(1) - 1)).mean(0, /*keepdim=*/true);
    auto label = torch::tensor({s.label}, torch::kLong);
    metrics.add(last_is_own ? last : mean, label);
    if (last_frame) last_frame->add(last, label);
  }
  return metrics;
}

ClassificationMetrics evaluate(TRecViTImpl& model, EvalSource& source) { return evaluate(model, source, nullptr); }

}  // namespace trecvit

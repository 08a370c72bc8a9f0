#pragma once
// `trecvit report RUN`: one self-contained HTML page (inline SVG, no script) for a training run:
// training loss and accuracy with the validation rows, the learning-rate schedule, and, when
// RUN/eval.json holds an evaluation (the demo writes one; `eval --report RUN/eval.json` too),
// its confusion matrix with class names, per-class accuracy and the sparse mixers' routing
// health per layer.
#include <string>

namespace trecvit {

// Throws std::runtime_error naming the folder when it holds no metrics.jsonl.
std::string run_report_html(const std::string& run_dir);

}  // namespace trecvit

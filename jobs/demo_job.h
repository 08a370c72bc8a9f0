#pragma once
// `trecvit demo`, the main job end to end on the embedded default data: generate
// Something-Something-Fashion if missing, train a TRecViT with a PEER middle layer (or continue
// an earlier run), evaluate on the validation split, and stream one validation video through
// the causal path, reporting the top-3 after every frame.
#include <nlohmann/json.hpp>
#include <string>

#include "jobs/progress.h"

namespace trecvit {

struct DemoJob {
  std::string data_root = "trecvit-data/ssf", out_dir = "trecvit-runs/demo";
  std::string model_config;  // "": demo-peer.json found by find_config
  int64_t steps = -1;
  int threads = 0;
  bool shuffle_frames = false;
};

struct DemoResult {
  bool stopped = false;   // cancelled during generation or training (run the demo again to continue)
  int64_t train_steps = 0;
  double train_seconds = 0;
  double top1 = 0;
  nlohmann::json report;  // the evaluation report (also written to out_dir/eval.json and demo.json)
  nlohmann::json to_json() const;
};

DemoResult run_demo(const DemoJob& job, const ProgressSink& progress = {}, const CancelToken* cancel = nullptr);

}  // namespace trecvit

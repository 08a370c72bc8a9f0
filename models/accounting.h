#pragma once
// Parameter, FLOP and state accounting for `trecvit info` and the benchmarks.
#include <map>
#include <string>

#include "models/trecvit.h"

namespace trecvit {

struct ModelAccount {
  int64_t params_total = 0;
  int64_t params_backbone = 0;  // all but the class head
  std::map<std::string, int64_t> params_by_component;
  // FLOPs (2 per multiply-add) to process one frame, matrix products and attention;
  // elementwise work is not counted. The class head is counted per frame, as streaming runs it.
  int64_t flops_per_frame = 0;
  std::map<std::string, int64_t> flops_by_component;
  int64_t state_bytes_per_stream = 0;
  std::map<std::string, MixerCost> mixers;  // per layer "layer<i>": the channel mixer's cost
};

ModelAccount account(TRecViTImpl& model);

}  // namespace trecvit

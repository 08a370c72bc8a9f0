#pragma once
// What `trecvit compare` compares: a spec names the data, a base model and training recipe, and
// the arms (each a name plus a JSON merge patch of the base model config, optionally with one
// field solved for so that a cost equals another arm's). Everything is resolved and checked
// before any training starts.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "jobs/run_record.h"
#include "models/config.h"

namespace trecvit {

// An arm's costs, from the model's own accounting (the numbers `trecvit info` prints).
struct ArmCost {
  int64_t params_total = 0;
  int64_t params_active_per_token = 0;  // dense parameters plus what each sparse mixer touches per token
  int64_t flops_per_clip = 0;           // num_frames x flops_per_frame
  int64_t flops_router_per_clip = 0;    // of which the sparse mixers' routing
  int64_t flops_experts_per_clip = 0;   // and their experts (the dense MLPs count here too)
  nlohmann::json to_json() const;
};
ArmCost arm_cost(const TRecViTConfig& config, int64_t frames = 0);  // frames: clip length (0: num_frames)

// "Hold `what` (params_total, params_active_per_token or flops_per_clip) equal to arm `arm`'s by
// choosing the integer at `field` (a dotted path into the model config) within [min, max]".
struct ArmMatch {
  std::string what, arm, field;
  int64_t min = 1, max = 65536;  // each probe builds the model: keep the range sensible
  bool square = false;  // only perfect squares (product-key expert counts)
};

struct Arm {
  std::string name, note;
  nlohmann::json patch = nlohmann::json::object();  // merge patch of the base model config
  std::vector<ArmMatch> match;
  std::string swept;       // "field=value" when the arm comes from a sweep
  TRecViTConfig config;    // resolved
  nlohmann::json config_json;
  ArmCost cost;
  std::string matching;    // what was held equal, computed: "params_total = 1.000x mlp (...)"
};

// The spec's "recipe": the steps, and the train job's data options (only batch_size, frames,
// stride, sampler, eval_sampler, flip and workers; defaults: 16 clips, segment sampling).
struct CompareRecipe {
  int64_t steps = 1000;
  DataRecipe data = [] {
    DataRecipe d;
    d.batch_size = 16;
    d.sampler = d.eval_sampler = "segments";
    return d;
  }();
};

struct CompareSpec {
  std::string name, path;
  std::string data_root, format = "ssv2", train_split = "train", eval_split = "validation";
  std::string generate;  // "ssf": generate the embedded data when missing
  nlohmann::json quick = nlohmann::json::object();  // {"steps", "batch_size", "train_clips", "validation_clips"}
  std::string model_config, train_config;           // resolved paths
  nlohmann::json base_model;                        // the model config's JSON, read once
  CompareRecipe recipe;
  int64_t seeds = 3;
  std::string reference;  // the arm the others are compared with (default: the first)
  std::vector<Arm> arms;
};

// Parses and resolves `path`; relative model/train/data paths are taken from the spec's folder,
// shipped config names through find_config. Throws ConfigError naming the spec and the field:
// unknown fields, unknown arms in matches, arms that do not differ, bad sweeps.
CompareSpec load_compare_spec(const std::string& path);
// "[ARM:]FIELD=v1,v2,..." adds one arm per value (a copy of ARM with FIELD set); FIELD is a dotted
// path into the model config, e.g. peer:layer_channel_mixers.1.topk=4,8,16. Without ARM: the
// first arm whose model config has FIELD.
void add_sweep(CompareSpec& spec, const std::string& sweep);
// Resolves every arm (patch, matches, costs) and checks that no two are the same.
void resolve_arms(CompareSpec& spec);

}  // namespace trecvit

#pragma once
// What shapes a training run besides the model and the optimizer: the data, the loader and the
// augmentation (the "data" section of a train config), and RUN/run.json, the one record of a
// run with every option resolved to its final value. A run started from a run.json is the same
// run again; a resumed run keeps its record.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "blocks/option_fields.h"
#include "train/trainer.h"

namespace trecvit {

struct DataRecipe {
  std::string root;                  // dataset root (a csv format: the list file)
  std::string format = "ssv2";
  std::string split = "train", validation_split = "validation";
  int64_t batch_size = 8;            // clips per batch
  int64_t frames = 0;                // frames per clip (0: the model's num_frames)
  int64_t stride = 1;                // frame interval
  std::string sampler = "random";    // training: random | segments
  std::string eval_sampler = "center";  // validation during training: center | segments
  // Horizontal flips: "none" (SSv2's default: direction is the label), "plain" (direction-free
  // data such as Kinetics), "mirror" (flip and relabel with data::mirror_label_map).
  std::string flip = "none";
  double color_jitter = 0;           // brightness/contrast/saturation strength
  bool shuffle_frames = false;       // ablation: frame-shuffled clips
  int64_t workers = 2;               // loader threads (a resource: a resume may change it)
};

std::vector<FieldInfo> data_recipe_fields();  // for the generated docs
nlohmann::json data_recipe_to_json(const DataRecipe& d);
// The fields of `j` over `base`. Throws ConfigError "SOURCE: field 'PREFIX F': why" on unknown
// fields and bad values.
DataRecipe data_recipe_from_json(const nlohmann::json& j, const std::string& source, DataRecipe base = {},
                                 const std::string& prefix = "data.");

struct RunRecord {
  nlohmann::json model;   // the model config, every field (config_to_json)
  TrainOptions train;     // out_dir is not recorded: the record lives in it
  DataRecipe data;
  nlohmann::json init;    // {"source", "reset_head", "freeze"}; null: fresh weights
  std::string version;    // the toolkit that made the run
  int64_t threads = 0;    // intra-op threads of the first start
  int64_t world_size = 1;
  nlohmann::json to_json() const;
};
// Throws ConfigError naming the file and the field.
RunRecord read_run_record(const std::string& path);
RunRecord run_record_from_json(const nlohmann::json& j, const std::string& source);

// The train config file: its training options and its "data" section (both may be empty).
struct TrainConfigFile {
  nlohmann::json train = nlohmann::json::object(), data = nlohmann::json::object();
};
TrainConfigFile read_train_config_file(const std::string& path);

}  // namespace trecvit

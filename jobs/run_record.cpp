#include "jobs/run_record.h"


#include "jobs/json_io.h"
#include "models/config.h"

namespace trecvit {
namespace {

const FieldTable<DataRecipe>& data_table() {
  using D = DataRecipe;
  static const FieldTable<D> table({
      TRECVIT_MEMBER_FIELD(D, root, "dataset root (csv: the list file)"),
      TRECVIT_MEMBER_FIELD(D, format, "dataset format (see `trecvit train --help`)"),
      TRECVIT_MEMBER_FIELD(D, split, "training split"),
      TRECVIT_MEMBER_FIELD(D, validation_split, "split that eval_every validates on"),
      TRECVIT_MEMBER_FIELD(D, batch_size, "clips per batch", Check::in(1, 1 << 20)),
      TRECVIT_MEMBER_FIELD(D, frames, "frames per clip (0: the model's num_frames)", Check::in(0, 100000)),
      TRECVIT_MEMBER_FIELD(D, stride, "frame interval", Check::in(1, 100000)),
      TRECVIT_MEMBER_FIELD(D, sampler, "training frame sampler", Check::one_of({"random", "segments"})),
      TRECVIT_MEMBER_FIELD(D, eval_sampler, "validation frame sampler", Check::one_of({"center", "segments"})),
      TRECVIT_MEMBER_FIELD(D, flip, "horizontal flips: none (SSv2), plain, mirror (swap left/right classes)",
                           Check::one_of({"none", "plain", "mirror"})),
      TRECVIT_MEMBER_FIELD(D, color_jitter, "brightness/contrast/saturation jitter strength", Check::in(0, 1)),
      TRECVIT_MEMBER_FIELD(D, shuffle_frames, "ablation: train on frame-shuffled clips"),
      TRECVIT_MEMBER_FIELD(D, workers, "loader threads (a resume may change it)", Check::in(1, 256)),
  });
  return table;
}

}  // namespace

std::vector<FieldInfo> data_recipe_fields() { return data_table().infos(); }

nlohmann::json data_recipe_to_json(const DataRecipe& d) { return data_table().write(d); }

DataRecipe data_recipe_from_json(const nlohmann::json& j, const std::string& source, DataRecipe base,
                                 const std::string& prefix) {
  DataRecipe d = std::move(base);
  try {
    data_table().read(d, j, "the data options");
  } catch (const FieldError& e) {
    throw ConfigError(source + ": field '" + prefix + e.field + "': " + e.reason);
  }
  return d;
}

nlohmann::json RunRecord::to_json() const {
  nlohmann::json t = train_options_to_json(train);
  return {{"trecvit_version", version}, {"threads", threads}, {"world_size", world_size}, {"model", model},
          {"train", t}, {"data", data_recipe_to_json(data)}, {"init", init}};
}

RunRecord run_record_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source + ": must be a JSON object");
  for (auto key : {"model", "train", "data"})
    if (!j.contains(key) || !j[key].is_object())
      throw ConfigError(source + ": no '" + key + "' object (not a run record: RUN/run.json has model, train and data)");
  RunRecord r;
  r.model = j["model"];
  config_from_json(r.model, source + " (model)");  // a record is checked like the files it came from
  r.train = train_options_from_json(j["train"], source + " (train)");
  r.data = data_recipe_from_json(j["data"], source);
  r.init = j.value("init", nlohmann::json());
  if (!r.init.is_null() && !(r.init.is_object() && (r.init.value("source", nlohmann::json()).is_string() ||
                                                    r.init.value("source", nlohmann::json()).is_null())))
    throw ConfigError(source + ": field 'init' must be null or {\"source\", \"reset_head\", \"freeze\"}");
  r.version = j.value("trecvit_version", std::string());
  r.threads = j.value("threads", int64_t(0));
  r.world_size = j.value("world_size", int64_t(1));
  return r;
}

RunRecord read_run_record(const std::string& path) {
  return run_record_from_json(read_json_object(path, "run record"), "run record " + path);
}

TrainConfigFile read_train_config_file(const std::string& path) {
  TrainConfigFile f;
  if (path.empty()) return f;
  f.train = read_json_object(path, "train config");
  if (f.train.contains("data")) {
    f.data = f.train["data"];
    f.train.erase("data");
    data_recipe_from_json(f.data, "train config " + path);
  }
  train_options_from_json(f.train, "train config " + path);  // named errors before anything runs
  return f;
}

}  // namespace trecvit

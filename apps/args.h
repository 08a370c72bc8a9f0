#pragma once
// Argument groups shared by the commands, defined once, and validators whose errors read like
// "--batch-size: must be >= 1, got 0".
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace trecvit::cli {

// JSON text that never throws: file names need not be UTF-8 (bad bytes become U+FFFD).
std::string dump(const nlohmann::json& j, int indent = -1);

CLI::Validator at_least(double lo);
CLI::Validator between(double lo, double hi);
CLI::Validator steps_or_default();  // a step count, or -1 for the config's
// One of `choices`; the error lists them.
CLI::Validator one_of(std::vector<std::string> choices);

// The data group: --data --format [--split] [--frames --stride --sampler], bound to a job's
// own fields (their current values are the defaults shown); a null pointer leaves a flag out.
struct DataArgs {
  std::string* root;
  std::string* format;
  std::string* split = nullptr;
  int64_t* frames = nullptr;
  int64_t* stride = nullptr;
  std::string* sampler = nullptr;
  std::vector<std::string> samplers = {};  // the --sampler choices
  const char* root_flag = "--data";
  bool root_required = true;
};
void add_data_args(CLI::App* cmd, const DataArgs& args);

}  // namespace trecvit::cli

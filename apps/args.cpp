#include "apps/args.h"

#include <fmt/format.h>

#ifdef TRECVIT_WITH_JOBS
#include "datasets/formats.h"
#include "blocks/parse_number.h"
#endif

namespace trecvit::cli {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// CLI11 prints "--flag: <message>".
CLI::Validator numeric(std::function<std::string(double)> check, std::string description) {
  return CLI::Validator(
      [check](std::string& input) -> std::string {
        const auto v = parse_double(input);
        if (!v) return "must be a number, got '" + input + "'";
        return check(*v);
      },
      std::move(description));
}

std::string num(double v) { return fmt::format("{}", v); }

}  // namespace

std::string dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

CLI::Validator at_least(double lo) {
  return numeric([lo](double v) { return v >= lo ? std::string() : "must be >= " + num(lo) + ", got " + num(v); },
                 ">= " + num(lo));
}

CLI::Validator steps_or_default() {
  return numeric([](double v) { return v == -1 || v >= 1 ? std::string() : "must be >= 1 (or -1: the config's), got " + num(v); },
                 ">= 1 or -1");
}

CLI::Validator between(double lo, double hi) {
  return numeric(
      [lo, hi](double v) {
        return v >= lo && v <= hi ? std::string() : "must be in [" + num(lo) + ", " + num(hi) + "], got " + num(v);
      },
      "in [" + num(lo) + ", " + num(hi) + "]");
}

CLI::Validator one_of(std::vector<std::string> choices) {
  const std::string list = join(choices);
  return CLI::Validator(
      [choices, list](std::string& input) -> std::string {
        for (auto& c : choices)
          if (c == input) return {};
        return "unknown value '" + input + "' (known: " + list + ")";
      },
      list);
}

#ifdef TRECVIT_WITH_JOBS
void add_data_args(CLI::App* cmd, const DataArgs& a) {
  std::string format_help = "dataset format:";
  for (auto& f : data::dataset_formats()) format_help += "\n  " + f.name + ": " + f.help;
  cmd->add_option(a.root_flag, *a.root, "dataset root (csv: the list file)")->required(a.root_required)->check(CLI::ExistingPath)->group("Data");
  cmd->add_option("--format", *a.format, format_help)->check(one_of(data::dataset_format_names()))->group("Data");
  if (a.split) cmd->add_option("--split", *a.split, "split to use")->group("Data");
  if (a.frames)
    cmd->add_option("--frames", *a.frames, "frames per clip (0: the model's num_frames)")->check(at_least(0))->group("Data");
  if (a.stride) cmd->add_option("--stride", *a.stride, "frame interval")->check(at_least(1))->group("Data");
  if (a.sampler)
    cmd->add_option("--sampler", *a.sampler, "frame sampler: " + join(a.samplers))->check(one_of(a.samplers))->group("Data");
}
#endif

}  // namespace trecvit::cli

// nevis run / report and data nevis-build: flags -> the NEVIS jobs -> printed results.
#include <fmt/format.h>

#include <fstream>

#include "blocks/file_safety.h"
#include "apps/args.h"
#include "apps/commands.h"
#include "apps/distributed.h"
#include "apps/progress.h"
#include "datasets/nevis_build.h"
#include "jobs/nevis_job.h"
#include "train/trainer.h"
#include "jobs/nevis_report.h"
#include "models/config_locator.h"
#include "blocks/parse_number.h"

namespace trecvit::cli {
namespace {

std::string pct(const nlohmann::json& v) { return v.is_number() ? fmt::format("{:.2f}%", 100 * v.get<double>()) : "n/a"; }

void add_run(CLI::App* nevis, Global& g) {
  auto* cmd = nevis->add_subcommand("run", "run a learner over a NEVIS stream (resumable per event)");
  static NevisJob job;
  static std::string lr_range = "1e-4,1e-2";
  static const std::string kDefaultData = "trecvit-data/nevis";
  job.data_root.clear();
  job.model_config = "nevis/tiny.json";
  cmd->add_option("--stream", job.stream, "full | short | tiny | debug | debian | FILE.json ({\"name\", \"events\": [{\"dataset\", \"year\"}]})");
  cmd->add_option("--data", job.data_root, "NEVIS data root (default: " + kDefaultData + ", the Debian-built stream, built if missing)");
  cmd->add_option("--learner", job.learner, "independent | finetune-prev | finetune-knn")->check(one_of(nevis_learners()));
  cmd->add_option("--config", job.model_config, "model config (a T = 1 run of it; path or name)")->capture_default_str();
  cmd->add_option("--train-config", job.train_config, "training options JSON (default: the config's .train.json beside it)");
  cmd->add_option("--out", job.out_dir, "run folder: run.json, events.jsonl, summary.json, models/")->required();
  cmd->add_option("--steps", job.steps, "cap on the training steps per task (-1: the train config's)")->check(steps_or_default());
  cmd->add_option("--batch-size", job.batch_size, "images per batch")->check(at_least(1))->capture_default_str();
  cmd->add_option("--trials", job.trials, "hyper-parameter trials per task (1: the train config's lr and smoothing)")
      ->check(at_least(1))->capture_default_str();
  cmd->add_option("--lr-range", lr_range, "log-uniform learning-rate interval of the search, MIN,MAX (AdamW)")->capture_default_str();
  cmd->add_option("--max-label-smoothing", job.max_label_smoothing, "label smoothing searched uniformly in [0, this]")
      ->check(between(0, 0.99))->capture_default_str();
  cmd->add_flag("--retrain", job.retrain, "retrain the chosen hyper-parameters on train_and_dev");
  cmd->add_flag("--final", job.final, "every year (default: before --stop-year), predictions on test instead of dev-test");
  cmd->add_option("--stop-year", job.stop_year, "development stream: events before this year")->capture_default_str();
  cmd->add_flag("--resume", job.resume, "continue RUN: finished events are kept, a cut one is redone");
  cmd->add_option("--num-classes", job.num_classes, "class count of every dataset (default: sidecar, else labels)")->check(at_least(1));
  cmd->add_option("--knn-k", job.knn_k, "finetune-knn: neighbours")->check(at_least(1))->capture_default_str();
  cmd->add_option("--min-crop-area", job.crop.min_area, "random resized crop: smallest area fraction")->check(between(0.01, 1))->capture_default_str();
  cmd->add_flag("!--no-flip", job.crop.flip, "no random horizontal flips in training");
  cmd->add_option("--seed", job.seed, "seed of every initialisation, data order and search")->capture_default_str();
  cmd->callback([&g] {
    const auto comma = lr_range.find(',');
    const auto lo = comma == std::string::npos ? std::nullopt : parse_double(lr_range.substr(0, comma));
    const auto hi = comma == std::string::npos ? std::nullopt : parse_double(lr_range.substr(comma + 1));
    if (lo && hi) {
      job.lr_min = *lo;
      job.lr_max = *hi;
    } else {
      throw CLI::ValidationError("--lr-range", "expected MIN,MAX (e.g. 1e-4,1e-2), got '" + lr_range + "'");
    }
    job.build_debian_data = job.data_root.empty();
    if (job.data_root.empty()) job.data_root = kDefaultData;
    if (job.build_debian_data && job.stream != "debian")
      throw CLI::ValidationError("--data", "needed for the '" + job.stream + "' stream (only 'debian' has embedded data)");
    job.model_config = find_config(job.model_config);
    if (job.train_config.empty()) job.train_config = train_config_beside(job.model_config);
    job.group = join_group(g, "nevis run");
    const auto r = run_nevis(job, rank_printer(g, job.group), &install_stop_signals());
    close_progress_line();
    if (job.group && job.group->rank() != 0) {  // rank 0 speaks for the group
      if (r.stopped) throw CLI::RuntimeError(130);
      return;
    }
    if (g.log_format == LogFormat::kText) {
      for (auto& d : r.summary["datasets"])
        fmt::print("{:>3} {:<24} {}  {} {}  ({} examples, {:.3g} training FLOPs so far)\n", d["index"].get<int64_t>() + 1,
                   d["dataset"].get<std::string>(), d["year"].get<int64_t>(), d.contains("map") ? "mAP" : "top-1",
                   pct(d.contains("map") ? d["map"] : d["top1"]), d["examples"].get<int64_t>(),
                   d["train_flops_cumulative"].get<double>());
      fmt::print("average accuracy {} (weighted {}), average mAP {}, {:.3g} training FLOPs; {} events run, {} kept{}\n",
                 pct(r.summary["average_accuracy"]), pct(r.summary["weighted_average_accuracy"]),
                 pct(r.summary["average_map"]), r.summary["train_flops_total"].get<double>(), r.events_done,
                 r.events_resumed, r.stopped ? " (stopped: continue with --resume)" : "");
      if (!r.missing.empty()) {
        std::string list;
        for (auto& m : r.missing) list += (list.empty() ? "" : ", ") + m;
        fmt::print("skipped (not found or not ready under {}): {}\n", job.data_root, list);
      }
    }
    print_result(g.log_format, "nevis run", r.to_json());
    if (r.stopped) throw CLI::RuntimeError(130);
  });
}

void add_report(CLI::App* nevis, Global& g) {
  auto* cmd = nevis->add_subcommand("report", "HTML + SVG of accuracy per event and against training FLOPs, one line per run");
  static std::vector<std::string> runs;
  static std::string out;
  cmd->add_option("runs", runs, "run folders")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--out", out, "HTML file (default: FIRST_RUN/report.html)");
  cmd->callback([&g] {
    const std::string path = out.empty() ? runs.front() + "/report.html" : out;
    const std::string html = nevis_report_html(runs);
    if (const auto why = write_file_atomically(path, html); !why.empty()) throw CLI::ValidationError("--out", path + ": " + why);
    if (g.log_format == LogFormat::kText) fmt::print("wrote {}\n", path);
    print_result(g.log_format, "nevis report", {{"html", path}, {"runs", runs}});
  });
}

void add_build(CLI::App& app, Global& g) {
  auto* data = app.get_subcommand("data");
  auto* cmd = data->add_subcommand("nevis-build", "write the Debian-built NEVIS mini-stream (UCI digits, OpenCV digits, Fashion-MNIST) in NEVIS's format");
  static data::NevisBuildOptions o;
  cmd->add_option("--out", o.out_dir, "data root")->required();
  cmd->add_option("--datasets", o.datasets, "subset of: uci_digits opencv_digits fashion_mnist")->delimiter(',');
  cmd->add_option("--shards", o.shards, "shards per split")->check(at_least(1))->capture_default_str();
  cmd->add_option("--seed", o.seed, "shuffle of the sets without an official test split")->capture_default_str();
  cmd->callback([&g] {
    const auto results = data::build_nevis_debian(o, [&g](const std::string& name) {
      if (g.log_format == LogFormat::kText) fmt::print("building {} ...\n", name);
    });
    nlohmann::json j = nlohmann::json::array();
    for (auto& r : results) {
      if (g.log_format == LogFormat::kText) {
        if (r.skipped) {
          fmt::print("{}: already complete, kept\n", r.dataset);
        } else {
          std::string parts;
          for (auto& [split, n] : r.examples) parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", split, n);
          fmt::print("{}: {}\n", r.dataset, parts);
        }
      }
      j.push_back({{"dataset", r.dataset}, {"skipped", r.skipped}, {"examples", r.examples}});
    }
    print_result(g.log_format, "data nevis-build", {{"out", o.out_dir}, {"datasets", j}});
  });
}

}  // namespace

void add_nevis_commands(CLI::App& app, Global& g) {
  auto* nevis = app.add_subcommand("nevis", "the NEVIS'22 stream of image tasks: run a learner, report runs");
  nevis->require_subcommand(1);
  add_run(nevis, g);
  add_report(nevis, g);
  add_build(app, g);
}

}  // namespace trecvit::cli

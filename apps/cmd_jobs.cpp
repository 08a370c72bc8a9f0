// data inspect / prepare / generate-ssf, train, eval, demo: flags -> a job -> printed result.
#include <fmt/format.h>

#include "blocks/file_safety.h"
#include "apps/args.h"
#include "apps/commands.h"
#include "apps/distributed.h"
#include "apps/progress.h"
#include "jobs/jobs.h"
#include "jobs/run_report.h"

#include <fstream>
#include "video_io/error.h"

extern "C" {
#include <libavutil/log.h>
}

namespace trecvit::cli {
namespace {

void print_stats(const char* what, const nlohmann::json& s, bool last) {
  fmt::print("{} {}/{}/{}{}", what, s["min"].get<int64_t>(), s["median"].get<int64_t>(), s["max"].get<int64_t>(),
             last ? "\n" : "; ");
}

void print_inspect(const nlohmann::json& report) {
  for (auto it = report["splits"].begin(); it != report["splits"].end(); ++it) {
    const auto& s = it.value();
    if (s.contains("error")) {
      fmt::print("{}: {}\n", it.key(), s["error"].get<std::string>());
      continue;
    }
    fmt::print("{}: {} videos, {} classes, {} missing, {} unreadable\n", it.key(), s["videos"].get<int64_t>(),
               s["classes"].get<int64_t>(), s["missing"].get<int64_t>(), s["unreadable"].size());
    if (!s["frames"].is_null()) {
      fmt::print("  ");
      print_stats("frames min/median/max", s["frames"], false);
      print_stats("width", s["width"], false);
      print_stats("height", s["height"], true);
    }
    for (auto& u : s["unreadable"])
      fmt::print("  unreadable {}: {}\n", u["path"].get<std::string>(), u["error"].get<std::string>());
  }
}

void print_nevis_inspect(const nlohmann::json& report) {
  for (auto& [name, splits] : report["datasets"].items()) {
    fmt::print("{} (classes from {}):\n", name, report["classes_from"][name].get<std::string>());
    for (auto& [split, s] : splits.items())
      fmt::print("  {:<14} {:>8} examples, {} classes{}, {} corrupt\n", split, s["examples"].get<int64_t>(),
                 s["num_classes"].get<int64_t>(), s["multi_label"].get<bool>() ? " (multi-label)" : "",
                 s["corrupt"].get<int64_t>());
  }
  for (auto& n : report["not_ready"]) fmt::print("not ready (no status 'ready'): {}\n", n.get<std::string>());
  for (auto& p : report["problems"])
    fmt::print("problem: {} at byte {}: {}\n", p["file"].get<std::string>(), p["offset"].get<int64_t>(),
               p["reason"].get<std::string>());
  if (report["problems_total"].get<size_t>() > report["problems"].size())
    fmt::print("... {} problems in all\n", report["problems_total"].get<int64_t>());
}

void add_data_commands(CLI::App& app, Global& g) {
  auto* data = app.add_subcommand("data", "dataset tools: inspect, prepare, generate-ssf");
  data->require_subcommand(1);
  {
    auto* cmd = data->add_subcommand("inspect", "counts per split and class, missing/unreadable files, frame and size statistics");
    static InspectJob job;
    static bool json = false;
    add_data_args(cmd, {&job.root, &job.format, nullptr, nullptr, nullptr, nullptr, {}, "--root"});
    cmd->add_option("--split", job.splits, "splits to inspect (default: the format's usual ones)");
    cmd->add_option("--workers", job.workers, "parallel probes")->check(between(1, 256));
    cmd->add_option("--num-classes", job.num_classes, "nevis: the class count of every dataset (default: the sidecar's, else the labels')")
        ->check(at_least(1));
    cmd->add_flag("--json", json, "print one JSON object");
    static bool allow_problems = false;
    cmd->add_flag("--allow-problems", allow_problems, "exit 0 even when problems were found (default: exit 1)");
    cmd->callback([&g] {
      const auto r = run_data_inspect(job, make_printer(g.log_format, json), &install_stop_signals());
      close_progress_line();
      if (json) fmt::print("{}\n", dump(r.report, 2));
      else if (g.log_format == LogFormat::kText && job.format == "nevis") print_nevis_inspect(r.report);
      else if (g.log_format == LogFormat::kText) print_inspect(r.report);
      print_result(g.log_format, "data inspect", r.to_json());
      if (const int64_t n = r.problems(); n > 0 && !allow_problems)
        throw std::runtime_error(job.root + ": " + std::to_string(n) + " problem" + (n == 1 ? "" : "s") +
                                 " found (listed above; --allow-problems exits 0 anyway)");
    });
  }
  {
    auto* cmd = data->add_subcommand("prepare", "re-encode a dataset at a smaller short side, keeping layout and annotations (resumable)");
    static PrepareJob job;
    cmd->add_option("--root", job.root, "dataset root")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--out", job.out, "output root")->required();
    cmd->add_option("--short-side", job.short_side, "short side in pixels")->check(at_least(2));
    cmd->add_option("--workers", job.workers, "parallel encoders")->check(between(1, 256));
    cmd->callback([&g] {
      const auto r = run_data_prepare(job, make_printer(g.log_format), &install_stop_signals());
      close_progress_line();
      if (g.log_format == LogFormat::kText) {
        fmt::print("prepare: {} videos re-encoded at short side {}, {} kept from an earlier run, {} failed{}\n",
                   r.written, job.short_side, r.kept, r.failed.size(), r.stopped ? " (stopped: run again to continue)" : "");
        for (auto& f : r.failed) fmt::print("  failed: {}\n", f["error"].get<std::string>());  // names the file
      }
      print_result(g.log_format, "data prepare", r.to_json());
    });
  }
  {
    auto* cmd = data->add_subcommand("generate-ssf", "write the embedded default dataset (Something-Something-Fashion)");
    static data::SSFOptions o;
    cmd->add_option("--out", o.out_dir, "output directory")->required();
    cmd->add_option("--train", o.train_clips, "training clips")->check(at_least(1));
    cmd->add_option("--validation", o.validation_clips, "validation clips")->check(at_least(0));
    cmd->add_option("--frames", o.frames, "frames per video (12 fps)")->check(between(2, 1000));
    cmd->add_option("--size", o.size, "frame size in pixels")->check(between(16, 1024));
    cmd->add_option("--seed", o.seed, "generator seed");
    cmd->callback([&g] {
      o.threads = g.threads;
      const auto r = run_data_generate(o, make_printer(g.log_format), &install_stop_signals());
      close_progress_line();
      if (g.log_format == LogFormat::kText)
        fmt::print("{} {} ({} videos written, {} kept from an earlier run) in {:.1f} s\n",
                   r.report.stopped ? "stopped writing" : "wrote", o.out_dir, r.report.written, r.report.reused,
                   r.report.seconds);
      print_result(g.log_format, "data generate", r.to_json());
    });
  }
}

// Flags given on the command line become settings ("--batch-size 16" is data.batch_size = 16),
// so a flag left out never replaces what the train config or the run's record says.
void add_train_command(CLI::App& app, Global& g) {
  auto* cmd = app.add_subcommand("train", "train a TRecViT classifier (the recipe is recorded in RUN/run.json)");
  static TrainJob job;
  static DataRecipe shown;  // the flags' storage; its defaults are the ones --help shows
  static TrainOptions train_defaults;
  static std::vector<std::string> sets;
  static std::string resume;
  cmd->add_option("--config", job.model_config, "model config JSON (with --init: optional, the init's architecture)")->check(CLI::ExistingFile);
  cmd->add_option("--train-config", job.train_config, "training options JSON (steps, lr, ...; its \"data\" section: batch size, sampler, ...)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--recipe", job.recipe, "start a new run with the model, training, data and init of this RUN/run.json")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", sets, "override one field: model.FIELD=V, train.FIELD=V or data.FIELD=V (e.g. model.depth=4 train.lr=1e-3); see `trecvit info --options`");
  cmd->add_option("--init", job.init, "start from these weights: a trecvit checkpoint or a released .npz")->check(CLI::ExistingFile);
  cmd->add_flag("--reset-head", job.reset_head, "with --init: a fresh class head for the dataset's classes");
  cmd->add_option("--freeze", job.freeze, "none | backbone (train the class head only)")->check(one_of({"none", "backbone"}))
      ->capture_default_str();
  add_data_args(cmd, {&shown.root, &shown.format, nullptr, &shown.frames, &shown.stride, &shown.sampler, {"random", "segments"},
                      "--data", false});
  cmd->add_option("--out", job.out_dir, "run directory (run.json, checkpoints, metrics.jsonl)");
  cmd->add_option("--resume", resume, "continue RUN (default: --out) from its run.json and last checkpoint; other flags must agree with its record")
      ->expected(0, 1);
  cmd->add_option("--steps", train_defaults.steps, "optimizer steps")->check(at_least(1));
  cmd->add_option("--batch-size", shown.batch_size, "clips per batch")->check(at_least(1));
  cmd->add_option("--workers", shown.workers, "loader threads")->check(between(1, 256));
  cmd->add_option("--seed", train_defaults.seed, "seed for initialisation, data order and augmentation");
  cmd->add_flag("--shuffle-frames", shown.shuffle_frames, "ablation: train on frame-shuffled clips");
  cmd->add_option("--flip", shown.flip, "horizontal flips: none (SSv2 default) | plain | mirror (swap left/right, clockwise/counterclockwise classes)")
      ->check(one_of({"none", "plain", "mirror"}));
  cmd->add_option("--color-jitter", shown.color_jitter, "brightness/contrast/saturation jitter strength")->check(between(0, 1));
  cmd->callback([cmd, &g] {
    if (cmd->count("--resume")) {
      if (!resume.empty() && !job.out_dir.empty() && resume != job.out_dir)
        throw CLI::ValidationError("--resume", resume + " and --out " + job.out_dir + " name different runs");
      if (!resume.empty()) job.out_dir = resume;
      job.resume = true;
    }
    if (job.out_dir.empty()) throw CLI::ValidationError("--out", "a run directory is needed");
    struct Flag {
      const char* flag;
      const char* key;
      std::function<nlohmann::json()> value;
    };
    const Flag flags[] = {
        {"--data", "data.root", [] { return nlohmann::json(shown.root); }},
        {"--format", "data.format", [] { return nlohmann::json(shown.format); }},
        {"--frames", "data.frames", [] { return nlohmann::json(shown.frames); }},
        {"--stride", "data.stride", [] { return nlohmann::json(shown.stride); }},
        {"--sampler", "data.sampler", [] { return nlohmann::json(shown.sampler); }},
        {"--batch-size", "data.batch_size", [] { return nlohmann::json(shown.batch_size); }},
        {"--workers", "data.workers", [] { return nlohmann::json(shown.workers); }},
        {"--shuffle-frames", "data.shuffle_frames", [] { return nlohmann::json(shown.shuffle_frames); }},
        {"--flip", "data.flip", [] { return nlohmann::json(shown.flip); }},
        {"--color-jitter", "data.color_jitter", [] { return nlohmann::json(shown.color_jitter); }},
        {"--steps", "train.steps", [] { return nlohmann::json(train_defaults.steps); }},
        {"--seed", "train.seed", [] { return nlohmann::json(train_defaults.seed); }},
    };
    for (const auto& f : flags)
      if (cmd->count(f.flag)) job.set(f.key, f.value(), std::string(f.flag) + " " + f.value().dump());
    for (const auto& s : sets) job.settings.push_back(parse_setting(s, "--set " + s));
    job.group = join_group(g, "train");
    const auto r = run_train(job, rank_printer(g, job.group), &install_stop_signals());
    close_progress_line();
    if (job.group && job.group->rank() != 0) return;  // rank 0 speaks for the group
    if (g.log_format == LogFormat::kText) {
      fmt::print("trained to step {} ({} steps in this run, {:.1f} s); {} samples skipped\n", r.steps, r.steps_this_run,
                 r.seconds, r.skipped);
      if (r.stopped) fmt::print("stopped by signal; continue with: trecvit train --resume {}\n", job.out_dir);
    }
    print_result(g.log_format, "train", r.to_json());
  });
}

}  // namespace

void add_job_commands(CLI::App& app, Global& g) {
  // The jobs report every failed decode or encode with its file; FFmpeg's own lines (one per
  // encoder opened, per damaged packet) would bury the progress output.
  video::set_ffmpeg_log_level(AV_LOG_FATAL);
  add_data_commands(app, g);
  add_train_command(app, g);
  {
    auto* cmd = app.add_subcommand("eval", "evaluate a checkpoint: top-1, top-5, per-class accuracy, confusion matrix");
    static EvalJob job;
    static bool json = false;
    cmd->add_option("--checkpoint", job.checkpoint, "checkpoint")->required()->check(CLI::ExistingFile);
    add_data_args(cmd, {&job.data_root, &job.format, &job.split, &job.frames, &job.stride, &job.sampler, {"center", "segments"}});
    cmd->add_option("--views", job.views, "temporal x spatial views, e.g. 2x3");
    cmd->add_option("--workers", job.workers, "videos decoded in parallel")->check(between(1, 256))->capture_default_str();
    cmd->add_option("--report", job.report, "write the JSON report here");
    cmd->add_flag("--json", json, "print the JSON report");
    cmd->add_flag("--shuffle-frames", job.shuffle_frames, "ablation: evaluate on frame-shuffled clips");
    cmd->add_flag("--routing", job.routing, "add the sparse mixers' routing health per layer to the report");
    cmd->callback([&g] {
      // --json keeps stdout for the report alone.
      job.group = join_group(g, "eval");
      const auto r = run_eval(job, rank_printer(g, job.group, json), &install_stop_signals());
      close_progress_line();
      if (job.group && job.group->rank() != 0) return;
      if (json) fmt::print("{}\n", dump(r.report));
      else print_result(g.log_format, "eval", r.to_json());
      if (r.stopped) {
        fmt::print(stderr, "eval: stopped after {} videos: the metrics are partial\n", r.count);
        throw CLI::RuntimeError(130);
      }
    });
  }
  {
    auto* cmd = app.add_subcommand("report", "HTML + SVG of a training run: loss, accuracy and lr curves, confusion matrix, routing health");
    static std::string run, out;
    cmd->add_option("run", run, "training run folder (metrics.jsonl; eval.json when present)")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--out", out, "HTML file (default: RUN/report.html)");
    cmd->callback([&g] {
      const std::string path = out.empty() ? run + "/report.html" : out;
      const std::string html = run_report_html(run);
      if (const auto why = write_file_atomically(path, html); !why.empty()) throw CLI::ValidationError("--out", path + ": " + why);
      if (g.log_format == LogFormat::kText) fmt::print("wrote {}\n", path);
      print_result(g.log_format, "report", {{"html", path}, {"run", run}});
    });
  }
  {
    auto* cmd = app.add_subcommand("demo", "the main job: generate the default data, train a TRecViT with PEER, evaluate, stream a video");
    static DemoJob job;
    cmd->add_option("--data", job.data_root, "where the embedded default dataset lives (generated if missing)");
    cmd->add_option("--out", job.out_dir, "run directory");
    cmd->add_option("--config", job.model_config, "model config (default: demo-peer.json from the config directory)");
    cmd->add_option("--steps", job.steps, "training steps (-1: the config's)")->check(steps_or_default());
    cmd->add_flag("--shuffle-frames", job.shuffle_frames, "ablation: train and evaluate on frame-shuffled clips");
    cmd->callback([&g] {
      job.threads = g.threads;
      join_group(g, "demo", false);
      const auto r = run_demo(job, make_printer(g.log_format), &install_stop_signals());
      close_progress_line();
      if (g.log_format == LogFormat::kText) {
        if (r.stopped)
          fmt::print("== stopped; run the demo again to continue\n");
        else
          fmt::print("== demo done: validation top-1 {:.2f}% (report: {}/eval.json)\n", 100 * r.top1, job.out_dir);
      }
      print_result(g.log_format, "demo", r.to_json());
    });
  }
}

}  // namespace trecvit::cli

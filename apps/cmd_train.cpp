// data inspect / prepare / generate-ssf, train, eval, demo.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "apps/commands.h"
#include "train/jobs.h"
#include "video_io/error.h"

extern "C" {
#include <libavutil/log.h>
}

namespace trecvit::cli {
namespace fs = std::filesystem;

void add_train_commands(CLI::App& app, Global& g) {
  // The jobs report every failed decode or encode with its file; FFmpeg's own lines (one per
  // encoder opened, per damaged packet) would bury the progress output.
  video::set_ffmpeg_log_level(AV_LOG_FATAL);
  {
    auto* data = app.add_subcommand("data", "dataset tools: inspect, prepare, generate-ssf");
    data->require_subcommand(1);
    {
      auto* cmd = data->add_subcommand("inspect", "counts per split and class, missing/unreadable files, frame and size statistics");
      static std::string format = "ssv2", root;
      static std::vector<std::string> splits;
      static bool json = false;
      static int workers = 2;
      cmd->add_option("--format", format, "ssv2 | kinetics | folder | csv")->check(CLI::IsMember({"ssv2", "kinetics", "folder", "csv"}));
      cmd->add_option("--root", root, "dataset root (csv: the list file)")->required();
      cmd->add_option("--split", splits, "splits to inspect (default: the format's usual ones)");
      cmd->add_option("--workers", workers, "parallel probes")->check(CLI::PositiveNumber);
      cmd->add_flag("--json", json, "print one JSON object");
      cmd->callback([] { run_data_inspect(format, root, splits, workers, json); });
    }
    {
      auto* cmd = data->add_subcommand("prepare", "re-encode a dataset at a smaller short side, keeping layout and annotations (resumable)");
      static PrepareOptions o;
      cmd->add_option("--root", o.root, "dataset root")->required()->check(CLI::ExistingDirectory);
      cmd->add_option("--out", o.out, "output root")->required();
      cmd->add_option("--short-side", o.short_side, "short side in pixels")->check(CLI::PositiveNumber);
      cmd->add_option("--workers", o.workers, "parallel encoders")->check(CLI::PositiveNumber);
      cmd->callback([] { run_data_prepare(o); });
    }
    {
      auto* cmd = data->add_subcommand("generate-ssf", "write the embedded default dataset (Something-Something-Fashion)");
      static data::SSFOptions o;
      cmd->add_option("--out", o.out_dir, "output directory")->required();
      cmd->add_option("--train", o.train_clips, "training clips")->check(CLI::PositiveNumber);
      cmd->add_option("--validation", o.validation_clips, "validation clips")->check(CLI::NonNegativeNumber);
      cmd->add_option("--frames", o.frames, "frames per video (12 fps)")->check(CLI::Range(2, 1000));
      cmd->add_option("--size", o.size, "frame size in pixels")->check(CLI::Range(16, 1024));
      cmd->add_option("--seed", o.seed, "generator seed");
      cmd->callback([&g] {
        o.threads = g.threads;
        auto r = data::generate_ssf(o);
        fmt::print("wrote {} ({} videos written, {} kept from an earlier run) in {:.1f} s\n", o.out_dir, r.written,
                   r.reused, r.seconds);
      });
    }
  }
  {
    auto* cmd = app.add_subcommand("train", "train a TRecViT classifier");
    static TrainJob job;
    static bool resume = false;
    cmd->add_option("--config", job.model_config, "model config JSON")->required()->check(CLI::ExistingFile);
    cmd->add_option("--train-config", job.train_config, "training options JSON (steps, lr, ...)")->check(CLI::ExistingFile);
    cmd->add_option("--data", job.data_root, "dataset root")->required()->check(CLI::ExistingPath);
    cmd->add_option("--format", job.format, "ssv2 | kinetics | folder | csv")->check(CLI::IsMember({"ssv2", "kinetics", "folder", "csv"}));
    cmd->add_option("--out", job.out_dir, "run directory (checkpoints, metrics.jsonl, config.json)")->required();
    cmd->add_flag("--resume", resume, "continue from RUN_DIR/checkpoint.pt");
    cmd->add_option("--steps", job.steps, "optimizer steps (overrides the train config)");
    cmd->add_option("--batch-size", job.batch_size, "clips per batch")->check(CLI::PositiveNumber);
    cmd->add_option("--frames", job.frames, "frames per clip (default: the model's num_frames)");
    cmd->add_option("--stride", job.stride, "frame interval")->check(CLI::PositiveNumber);
    cmd->add_option("--sampler", job.sampler, "random | segments")->check(CLI::IsMember({"random", "segments"}));
    cmd->add_option("--workers", job.workers, "loader threads")->check(CLI::PositiveNumber);
    cmd->add_option("--seed", job.seed, "seed for initialisation, data order and augmentation");
    cmd->add_flag("--shuffle-frames", job.shuffle_frames, "ablation: train on frame-shuffled clips");
    cmd->add_option("--flip", job.flip, "horizontal flips: none (SSv2 default) | plain | mirror (swap left/right, clockwise/counterclockwise classes)")
        ->check(CLI::IsMember({"none", "plain", "mirror"}));
    cmd->add_option("--color-jitter", job.color_jitter, "brightness/contrast/saturation jitter strength")->check(CLI::Range(0.0, 1.0));
    cmd->callback([] {
      job.resume = resume;
      run_train(job);
    });
  }
  {
    auto* cmd = app.add_subcommand("eval", "evaluate a checkpoint: top-1, top-5, per-class accuracy, confusion matrix");
    static EvalJob job;
    cmd->add_option("--checkpoint", job.checkpoint, "checkpoint")->required()->check(CLI::ExistingFile);
    cmd->add_option("--data", job.data_root, "dataset root")->required()->check(CLI::ExistingPath);
    cmd->add_option("--format", job.format, "ssv2 | kinetics | folder | csv")->check(CLI::IsMember({"ssv2", "kinetics", "folder", "csv"}));
    cmd->add_option("--split", job.split, "split to evaluate");
    cmd->add_option("--views", job.views, "temporal x spatial views, e.g. 2x3");
    cmd->add_option("--frames", job.frames, "frames per clip (default: the model's num_frames)");
    cmd->add_option("--stride", job.stride, "frame interval")->check(CLI::PositiveNumber);
    cmd->add_option("--sampler", job.sampler, "center | segments")->check(CLI::IsMember({"center", "segments"}));
    cmd->add_option("--report", job.report, "write the JSON report here");
    cmd->add_flag("--json", job.json, "print the JSON report");
    cmd->add_flag("--shuffle-frames", job.shuffle_frames, "ablation: evaluate on frame-shuffled clips");
    cmd->callback([] { run_eval(job); });
  }
  {
    auto* cmd = app.add_subcommand("demo", "the main job: generate the default data, train a TRecViT with PEER, evaluate, stream a video");
    static DemoJob job;
    cmd->add_option("--data", job.data_root, "where the embedded default dataset lives (generated if missing)");
    cmd->add_option("--out", job.out_dir, "run directory");
    cmd->add_option("--config", job.model_config, "model config (default: configs/demo-peer.json)");
    cmd->add_option("--steps", job.steps, "training steps");
    cmd->add_flag("--shuffle-frames", job.shuffle_frames, "ablation: train and evaluate on frame-shuffled clips");
    cmd->callback([&g] {
      job.threads = g.threads;
      run_demo(job);
    });
  }
}

}  // namespace trecvit::cli

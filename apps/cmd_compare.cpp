// compare: a spec -> run_compare -> the arms' costs, progress, and where the report is.
#include <fmt/format.h>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/distributed.h"
#include "apps/progress.h"
#include "jobs/compare_job.h"
#include "video_io/error.h"

extern "C" {
#include <libavutil/log.h>
}

namespace trecvit::cli {

void add_compare_command(CLI::App& app, Global& g) {
  auto* cmd = app.add_subcommand("compare", "train and evaluate the arms of a comparison spec (e.g. PEER vs MLP) and write one report");
  static CompareJob job;
  static bool dry_run = false;
  cmd->add_option("--spec", job.spec, "comparison spec (JSON), e.g. configs/compare/ssf.json")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", job.out_dir, "output folder: runs/<arm>/seed<s>/ and report.{json,md,html}")->required();
  cmd->add_option("--seeds", job.seeds, "seeds per arm (0: the spec's; --quick: 1)")->check(at_least(0));
  cmd->add_flag("--quick", job.quick, "tiny generated data and few steps, for a first look and for tests");
  cmd->add_flag("--resume", job.resume, "continue an earlier call: finished runs are kept, a killed one continues");
  cmd->add_option("--sweep", job.sweeps, "[ARM:]FIELD=v1,v2,...: one arm per value, e.g. peer:layer_channel_mixers.1.topk=4,8,16 (no ARM: the first arm with FIELD)");
  cmd->add_flag("--dry-run", dry_run, "resolve the arms and print what each holds equal, then stop");
  cmd->callback([&g] {
    video::set_ffmpeg_log_level(AV_LOG_FATAL);
    if (dry_run) {
      const auto spec = prepare_compare(job);
      for (const auto& a : spec.arms)
        fmt::print("{}: {} params, {} active per token, {} FLOPs per clip ({} router){}\n", a.name, a.cost.params_total,
                   a.cost.params_active_per_token, a.cost.flops_per_clip, a.cost.flops_router_per_clip,
                   a.matching.empty() ? "" : "\n  held equal: " + a.matching);
      return;
    }
    job.group = join_group(g, "compare");
    const bool lead = !job.group || job.group->rank() == 0;
    const auto r = run_compare(job, rank_printer(g, job.group), &install_stop_signals());
    close_progress_line();
    if (!lead) return;  // rank 0 speaks for the group
    if (g.log_format == LogFormat::kText) {
      auto pct = [](const nlohmann::json& v) { return v.is_number() ? fmt::format("{:.2f}", 100 * v.get<double>()) : "n/a"; };
      for (const auto& a : r.report["arms"])
        fmt::print("{:<24} top-1 {}{}%  last-frame {}%  {} params  {} FLOPs/clip ({} seed{})\n", a["name"].get<std::string>(),
                   pct(a["top1_mean"]), a["top1_std"].is_number() ? " ± " + pct(a["top1_std"]) : "", pct(a["last_top1_mean"]),
                   a["params_total"].get<int64_t>(), a["flops_per_clip"].get<int64_t>(), a["seeds_done"].get<int64_t>(),
                   a["seeds_done"].get<int64_t>() == 1 ? "" : "s");
      fmt::print("{} runs trained, {} kept from an earlier call{}; report: {}/report.html\n", r.runs_done, r.runs_skipped,
                 r.stopped ? " (stopped: run again with --resume to finish)" : "", job.out_dir);
    }
    print_result(g.log_format, "compare", r.to_json());
  });
}

}  // namespace trecvit::cli

#include "jobs/data_jobs.h"
#include "blocks/file_safety.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "datasets/annotations.h"
#include "datasets/formats.h"
#include "video_io/video_reader.h"
#include "video_io/writer.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

// Runs fn(i) for i in [0, n) on `workers` threads until done or cancelled.
template <typename Fn>
void parallel_items(int64_t n, int workers, const CancelToken* cancel, Fn fn) {
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int w = 0; w < std::max(1, workers); ++w)
    pool.emplace_back([&] {
      for (int64_t i; !cancelled(cancel) && (i = next++) < n;) fn(i);
    });
  for (auto& t : pool) t.join();
}

nlohmann::json stats(std::vector<int64_t> v) {
  if (v.empty()) return nullptr;
  std::sort(v.begin(), v.end());
  return {{"min", v.front()}, {"median", v[v.size() / 2]}, {"max", v.back()}};
}


}  // namespace

namespace {
int64_t count_problems(const nlohmann::json& j) {
  int64_t n = 0;
  if (j.is_object()) {
    for (auto& [key, v] : j.items()) {
      if (key == "error") ++n;
      else if ((key == "missing" || key == "corrupt") && v.is_number_integer()) n += v.get<int64_t>();
      else if ((key == "unreadable" || key == "problems") && v.is_array()) n += static_cast<int64_t>(v.size());
      else n += count_problems(v);
    }
  } else if (j.is_array()) {
    for (auto& v : j) n += count_problems(v);
  }
  return n;
}
}  // namespace

int64_t InspectResult::problems() const {
  if (report.contains("problems_total"))  // nevis: damaged records counted as they were read
    return report["problems_total"].get<int64_t>() + static_cast<int64_t>(report.value("not_ready", nlohmann::json::array()).size()) +
           (report.value("datasets", nlohmann::json()).empty() ? 1 : 0);
  return count_problems(report) + (report.value("splits", nlohmann::json()).empty() ? 1 : 0);
}

nlohmann::json PrepareResult::to_json() const {
  return {{"written", written}, {"kept", kept}, {"failed", failed}, {"stopped", stopped}};
}

nlohmann::json GenerateResult::to_json() const {
  return {{"out", out_dir}, {"written", report.written}, {"kept", report.reused}, {"seconds", report.seconds},
          {"stopped", report.stopped}};
}

InspectResult run_data_inspect(const InspectJob& job, const ProgressSink& progress, const CancelToken* cancel) {
  if (job.format == "nevis") return run_nevis_inspect(job, progress, cancel);
  const Reporter report_to(progress, "data inspect");
  const std::string& format = job.format;
  const std::string& root = job.root;
  auto splits = job.splits.empty() ? data::dataset_format(format).default_splits(root) : job.splits;
  nlohmann::json report = {{"format", format}, {"root", root}, {"splits", nlohmann::json::object()}};
  for (auto& name : splits) {
    data::DatasetSplit split;
    try {
      split = data::load_dataset(format, root, name);
    } catch (const data::DatasetError& e) {
      report["splits"][name.empty() ? "all" : name] = {{"error", e.what()}};
      continue;
    }
    std::vector<int64_t> frames(split.items.size(), -1), widths(split.items.size()), heights(split.items.size());
    std::vector<std::string> errors(split.items.size());
    report_to.stage("probing " + std::to_string(split.items.size()) + " videos of " + (name.empty() ? "all" : name));
    ItemProgress probed(report_to, static_cast<int64_t>(split.items.size()));
    parallel_items(static_cast<int64_t>(split.items.size()), job.workers, cancel, [&](int64_t i) {
      try {
        video::VideoReader r(split.items[i].path);
        frames[i] = r.size();
        widths[i] = r.info().width;
        heights[i] = r.info().height;
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      probed.done(split.items[i].path);
    });
    if (cancelled(cancel)) break;
    std::map<int64_t, int64_t> per_class;
    std::map<std::string, int64_t> sizes;
    std::vector<int64_t> ok_frames, ok_w, ok_h;
    nlohmann::json unreadable = nlohmann::json::array();
    for (size_t i = 0; i < split.items.size(); ++i) {
      ++per_class[split.items[i].label];
      if (!errors[i].empty()) {
        unreadable.push_back({{"path", split.items[i].path}, {"error", errors[i]}});
        continue;
      }
      ok_frames.push_back(frames[i]);
      ok_w.push_back(widths[i]);
      ok_h.push_back(heights[i]);
      ++sizes[std::to_string(widths[i]) + "x" + std::to_string(heights[i])];
    }
    nlohmann::json classes = nlohmann::json::array();
    for (auto& [label, n] : per_class)
      classes.push_back({{"label", label},
                         {"name", label >= 0 && label < int64_t(split.class_names.size()) ? split.class_names[label] : ""},
                         {"videos", n}});
    report["splits"][name.empty() ? "all" : name] = {
        {"videos", split.items.size()},   {"classes", split.class_names.size()}, {"per_class", classes},
        {"missing", split.missing.size()}, {"missing_files", split.missing},   {"unreadable", unreadable},
        {"frames", stats(ok_frames)},     {"width", stats(ok_w)},               {"height", stats(ok_h)},
        {"sizes", sizes}};
  }
  if (cancelled(cancel)) report["stopped"] = true;
  return {report};
}

PrepareResult run_data_prepare(const PrepareJob& o, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "data prepare");
  static const std::set<std::string> video_ext = {".webm", ".mp4", ".mkv", ".avi", ".mov", ".m4v"};
  const fs::path root(o.root), out(o.out);
  if (!is_folder(root)) throw data::DatasetError(o.root + ": not a directory");
  {  // writing into the tree being read would re-encode its own output
    const auto r = fs::weakly_canonical(root), w = fs::weakly_canonical(out);
    const auto inside = [](const fs::path& a, const fs::path& b) {  // a is b or below it
      auto ai = a.begin(), bi = b.begin();
      for (; bi != b.end() && ai != a.end(); ++ai, ++bi)
        if (*ai != *bi) return false;
      return bi == b.end() || (std::next(bi) == b.end() && bi->empty());
    };
    if (inside(w, r) || inside(r, w))
      throw data::DatasetError("--out " + o.out + ": must be outside --root " + o.root + " (and not contain it)");
  }
  std::vector<fs::path> videos;
  for (auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), root);
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    fs::create_directories((out / rel).parent_path());
    if (video_ext.count(ext)) {
      videos.push_back(rel);
    } else if (!path_exists(out / rel)) {  // annotations and anything else, unchanged; whole or not at all
      const fs::path tmp = out / (rel.string() + ".tmp");
      fs::copy_file(e.path(), tmp, fs::copy_options::overwrite_existing);
      fs::rename(tmp, out / rel);
    }
  }
  std::atomic<int64_t> written{0}, kept{0};
  std::mutex mu;
  nlohmann::json failed = nlohmann::json::array();
  report.stage("re-encoding " + std::to_string(videos.size()) + " videos at short side " + std::to_string(o.short_side));
  ItemProgress encoded(report, static_cast<int64_t>(videos.size()));
  parallel_items(static_cast<int64_t>(videos.size()), o.workers, cancel, [&](int64_t i) {
    const fs::path src = root / videos[i], dst = out / videos[i];
    const fs::path tmp = dst.parent_path() / (dst.stem().string() + ".tmp" + dst.extension().string());
    try {
      if (path_exists(dst)) {
        ++kept;  // resumable: done in an earlier run
        encoded.done(dst.string());
        return;
      }
      video::VideoReader r(src.string());
      auto frames = r.all(video::FrameSize::short_side_crop(static_cast<int>(o.short_side), 0, 0));
      // 4:2:0 encoders want even sides: drop a last odd row or column rather than rescale.
      frames = frames.narrow(1, 0, frames.size(1) & ~int64_t{1}).narrow(2, 0, frames.size(2) & ~int64_t{1});
      {
        video::WriterOptions wo;
        wo.preset = video::WriterOptions::Preset::kQuality;
        video::VideoWriter w(tmp.string(), r.info().fps > 0 ? r.info().fps : 30.0, static_cast<int>(frames.size(2)),
                             static_cast<int>(frames.size(1)), wo);
        for (int64_t t = 0; t < frames.size(0); ++t) w.write(frames[t]);
        w.close();
      }
      fs::rename(tmp, dst);
      ++written;
    } catch (const std::exception& e) {
      std::error_code ec;
      fs::remove(tmp, ec);
      report(EventKind::kProblem, {{"message", std::string("failed: ") + e.what()}, {"path", src.string()}, {"reason", e.what()}});
      std::lock_guard<std::mutex> lock(mu);
      failed.push_back({{"path", src.string()}, {"error", e.what()}});
    }
    encoded.done(dst.string());
  });
  PrepareResult r;
  r.written = written;
  r.kept = kept;
  r.failed = failed;
  r.stopped = cancelled(cancel);
  return r;
}

GenerateResult run_data_generate(data::SSFOptions options, const ProgressSink& progress, const CancelToken* cancel) {
  const Reporter report(progress, "data generate");
  report.stage("generating Something-Something-Fashion in " + options.out_dir + " (" +
               std::to_string(options.train_clips) + " train / " + std::to_string(options.validation_clips) +
               " validation clips)");
  ItemProgress clips(report, options.train_clips + options.validation_clips);
  options.on_clip = [&] {
    clips.done();
    return !cancelled(cancel);
  };
  return {options.out_dir, data::generate_ssf(options)};
}

}  // namespace trecvit

// NEVIS on real data: each learner x model over the Debian-built stream (UCI digits, OpenCV's
// digits, Fashion-MNIST), with per-event top-1, the stream averages, training FLOPs and wall
// time. The data is built (from Debian's packages) into a temp dir unless data=DIR names one.
// --quick: the tiny model, the UCI digits alone, a few steps.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bench/harness.h"
#include "datasets/nevis_build.h"
#include "jobs/nevis_job.h"
#include "train/trainer.h"
#include "models/config_locator.h"

namespace trecvit::bench {
namespace {

namespace fs = std::filesystem;

struct RemoveDir {
  fs::path dir;
  ~RemoveDir() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int64_t positive(const Args& args, const std::string& key, const std::string& fallback) {
  const std::string v = args.get(key, fallback);
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 1)
    throw std::invalid_argument("bench nevis: " + key + " must be an integer >= 1, got '" + v + "'");
  return n;
}

}  // namespace

nlohmann::json bench_nevis(const Args& args) {
  const fs::path tmp = fs::temp_directory_path() / ("trecvit-bench-nevis-" + std::to_string(getpid()));
  RemoveDir cleanup{tmp};
  fs::create_directories(tmp);
  std::string data = args.get("data", "");
  data::NevisBuildOptions build;
  if (args.quick) build.datasets = {"uci_digits"};
  if (data.empty()) {
    data = (tmp / "data").string();
    build.out_dir = data;
    data::build_nevis_debian(build);
  }
  std::string stream = args.get("stream", "debian");
  if (args.quick) {
    stream = (tmp / "stream.json").string();
    std::ofstream(stream) << R"({"name": "quick", "events": [{"dataset": "uci_digits", "year": 1998}]})";
  }
  const auto learners = split_list(args.get("learners", args.quick ? "finetune-knn" : "independent,finetune-prev,finetune-knn"));
  const auto models = split_list(args.get("models", args.quick ? "tiny" : "mlp,peer"));
  const int64_t steps = positive(args, "steps", args.quick ? "5" : "400");
  const int64_t batch = positive(args, "batch", "64");
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& model : models)
    for (const auto& learner : learners) {
      NevisJob job;
      job.stream = stream;
      job.data_root = data;
      job.learner = learner;
      job.model_config = find_config("nevis/" + model + ".json");
      job.train_config = train_config_beside(job.model_config);
      job.out_dir = (tmp / (model + "-" + learner)).string();
      job.steps = steps;
      job.batch_size = batch;
      const auto t0 = std::chrono::steady_clock::now();
      const auto r = run_nevis(job);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto& s = r.summary;
      std::vector<std::pair<std::string, std::string>> cols;
      for (auto& d : s["datasets"])
        cols.emplace_back(d["dataset"].get<std::string>(),
                          d.contains("top1") ? fmt::format("{:.2f}%", 100 * d["top1"].get<double>()) : "mAP");
      auto pct = [](const nlohmann::json& v) { return v.is_number() ? fmt::format("{:.2f}%", 100 * v.get<double>()) : "n/a"; };
      cols.emplace_back("average", pct(s["average_accuracy"]));
      cols.emplace_back("weighted", pct(s["weighted_average_accuracy"]));
      cols.emplace_back("train FLOPs", fmt::format("{:.3g}", s["train_flops_total"].get<double>()));
      cols.emplace_back("seconds", fmt::format("{:.0f}", seconds));
      print_row(model + " / " + learner, cols);
      nlohmann::json row = s;
      row.update({{"model_config", model}, {"seconds", seconds}, {"steps_per_task", steps}, {"batch", batch}});
      runs.push_back(row);
    }
  return {{"benchmark", "nevis"}, {"stream", stream}, {"data", args.get("data", "")}, {"runs", runs}};
}

}  // namespace trecvit::bench

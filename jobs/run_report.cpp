#include "jobs/run_report.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "blocks/file_safety.h"
#include "jobs/svg_plot.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

nlohmann::json read_json(const fs::path& p) {
  if (const auto why = unreadable_if_present(p.string()); !why.empty()) throw std::runtime_error(p.string() + ": " + why);
  std::ifstream in(p);
  if (!in) return nullptr;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error(p.string() + ": invalid JSON");
  return j;
}

}  // namespace

std::string run_report_html(const std::string& run_dir) {
  const fs::path dir(run_dir);
  if (const auto why = unreadable_if_present((dir / "metrics.jsonl").string()); !why.empty())
    throw std::runtime_error(run_dir + "/metrics.jsonl: " + why);
  std::ifstream metrics(dir / "metrics.jsonl");
  if (!metrics) throw std::runtime_error(run_dir + ": no metrics.jsonl (not a training run folder?)");
  svg::Series loss{"training loss", {}}, acc{"training top-1 (batch)", {}}, val1{"validation top-1", {}},
      val5{"validation top-5", {}}, lr{"learning rate", {}};
  std::string line;
  while (std::getline(metrics, line)) {
    const auto row = nlohmann::json::parse(line, nullptr, false);
    if (!row.is_object() || !row.contains("step") || !row["step"].is_number()) continue;  // a line cut by a crash
    const double step = row["step"].get<double>();
    if (row.contains("validation")) {
      val1.points.emplace_back(step, 100 * row["validation"].value("top1", 0.0));
      val5.points.emplace_back(step, 100 * row["validation"].value("top5", 0.0));
      continue;
    }
    loss.points.emplace_back(step, row.value("loss", 0.0));
    acc.points.emplace_back(step, 100 * row.value("accuracy", 0.0));
    lr.points.emplace_back(step, row.value("lr", 0.0));
  }
  const auto config = read_json(dir / "run.json");
  const auto eval = read_json(dir / "eval.json");
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset='utf-8'><title>" << svg::escape(run_dir) << "</title><style>"
       "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "th{background:#f3f3f3}td.l{text-align:left}svg{max-width:100%;height:auto}</style></head><body>"
    << "<h1>Training run " << svg::escape(fs::path(run_dir).filename().string()) << "</h1>";
  if (config.is_object()) {
    const auto& m = config.value("model", nlohmann::json::object());
    const auto& t = config.value("train", nlohmann::json::object());
    h << "<p>model <b>" << svg::escape(m.value("name", std::string("?"))) << "</b>, " << m.value("depth", 0)
      << " layers, width " << m.value("width", 0) << ", " << m.value("num_classes", 0) << " classes; "
      << t.value("steps", 0) << " steps at lr " << svg::format("%.3g", t.value("lr", 0.0)) << "</p>";
    if (config.contains("init") && config["init"].is_object() && config["init"]["source"].is_string())
      h << "<p>started from <code>" << svg::escape(config["init"]["source"].get<std::string>()) << "</code></p>";
  }
  h << "<h2>Loss</h2>" << svg::lines({loss}, "step", "training loss")
    << "<h2>Accuracy</h2><p>Training top-1 is on each logged batch (augmented); validation rows come from "
       "<code>eval_every</code>.</p>"
    << svg::lines({acc, val1, val5}, "step", "top-1 / top-5 (%)") << "<h2>Learning rate</h2>"
    << svg::lines({lr}, "step", "learning rate");
  if (eval.is_object() && eval.contains("confusion")) {
    std::vector<std::vector<int64_t>> cm = eval["confusion"].get<std::vector<std::vector<int64_t>>>();
    std::vector<std::string> names;
    std::vector<double> per;
    for (auto& c : eval.value("per_class", nlohmann::json::array())) {
      names.push_back(c.value("name", "class " + std::to_string(c.value("class", 0))));
      per.push_back(c["accuracy"].is_number() ? 100 * c["accuracy"].get<double>() : 0.0);
    }
    int64_t total = 0;
    for (auto& r : cm)
      for (int64_t v : r) total += v;
    h << "<h2>Last evaluation</h2><p>" << svg::escape(eval.value("split", std::string("?"))) << ": top-1 "
      << svg::format("%.2f", 100 * eval.value("top1", 0.0)) << "%, top-5 " << svg::format("%.2f", 100 * eval.value("top5", 0.0))
      << "% on " << eval.value("count", int64_t(0)) << " videos (the matrix holds " << total << ").</p>"
      << "<h3>Confusion matrix</h3>" << svg::heatmap(cm, names, "true class", "predicted class")
      << "<h3>Per-class accuracy</h3>";
    std::vector<std::string> index;
    for (size_t c = 0; c < per.size(); ++c) index.push_back(std::to_string(c));
    h << svg::bars(per, index, "class index", "top-1 (%)") << "<table><tr><th>#</th><th>class</th><th>top-1 %</th></tr>";
    for (size_t c = 0; c < per.size(); ++c)
      h << "<tr><td>" << c << "</td><td class='l'>" << svg::escape(names[c]) << "</td><td>" << svg::format("%.1f", per[c]) << "</td></tr>";
    h << "</table>";
    if (eval.contains("routing") && eval["routing"].is_object() && !eval["routing"].empty()) {
      h << "<h2>Routing health</h2><table><tr><th>layer</th><th>experts</th><th>used</th><th>used %</th>"
           "<th>unevenness</th><th>share of the top 1%</th></tr>";
      for (auto& [layer, r] : eval["routing"].items())
        h << "<tr><td>" << svg::escape(layer) << "</td><td>" << r.value("num_experts", int64_t(0)) << "</td><td>"
          << r.value("experts_used", int64_t(0)) << "</td><td>" << svg::format("%.1f", 100 * r.value("usage_fraction", 0.0))
          << "</td><td>" << svg::format("%.3f", r.value("unevenness", 0.0)) << "</td><td>"
          << svg::format("%.3f", r.value("top1pct_share", 0.0)) << "</td></tr>";
      h << "</table>";
      for (auto& [layer, r] : eval["routing"].items()) {
        const auto hist = r.value("hit_histogram", std::vector<double>{});
        std::vector<std::string> buckets;
        for (size_t b = 0; b < hist.size(); ++b)
          buckets.push_back(b == 0 ? "0" : std::to_string(1LL << (b - 1)) + "+");
        h << "<h3>Layer " << svg::escape(layer) << ": experts by retrieval count</h3>"
          << svg::bars(hist, buckets, "times retrieved", "experts (log scale)", true);
      }
    }
  } else {
    h << "<p>No evaluation in this folder: <code>trecvit eval --checkpoint " << svg::escape(run_dir)
      << "/checkpoint.pt ... --report " << svg::escape(run_dir) << "/eval.json</code> adds its confusion matrix here.</p>";
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace trecvit

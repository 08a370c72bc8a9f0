#include "jobs/nevis_report.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "blocks/file_safety.h"
#include "jobs/svg_plot.h"

namespace trecvit {
namespace fs = std::filesystem;
namespace {

struct Run {
  std::string label;
  nlohmann::json summary;
  std::vector<nlohmann::json> events;
};

Run read_run(const std::string& dir) {
  Run r;
  for (const char* name : {"events.jsonl", "summary.json"})
    if (const auto why = unreadable_if_present((fs::path(dir) / name).string()); !why.empty())
      throw std::runtime_error((fs::path(dir) / name).string() + ": " + why);
  std::ifstream ev(fs::path(dir) / "events.jsonl"), sm(fs::path(dir) / "summary.json");
  if (!ev && !sm) throw std::runtime_error(dir + ": not a NEVIS run folder (no events.jsonl or summary.json)");
  std::string line;
  while (std::getline(ev, line))
    if (!line.empty()) try {
        r.events.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception&) {
        break;  // a line cut by a kill
      }
  try {
    if (sm) sm >> r.summary;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(dir + "/summary.json: invalid JSON: " + plain_json_error(e));
  }
  r.label = r.summary.value("model", std::string("?")) + " · " + r.summary.value("learner", std::string("?"));
  return r;
}

std::string pct_or_na(const nlohmann::json& v) { return v.is_number() ? svg::format("%.2f", 100 * v.get<double>()) : "n/a"; }

}  // namespace

std::string nevis_report_html(const std::vector<std::string>& dirs) {
  std::vector<Run> runs;
  for (auto& d : dirs) runs.push_back(read_run(d));
  // Short legend labels; the folder only where two runs would read the same.
  std::map<std::string, int> uses;
  for (auto& r : runs) ++uses[r.label];
  for (size_t i = 0; i < runs.size(); ++i)
    if (uses[runs[i].label] > 1) runs[i].label += " (" + fs::path(dirs[i]).filename().string() + ")";
  std::vector<svg::Series> per_event, vs_flops;
  for (auto& r : runs) {
    svg::Series a{r.label, {}}, b{r.label, {}};
    for (size_t i = 0; i < r.events.size(); ++i) {
      const auto& v = r.events[i].contains("map") ? r.events[i]["map"] : r.events[i]["top1"];
      if (!v.is_number()) continue;  // an mAP with no positives to rank
      a.points.emplace_back(double(i + 1), 100 * v.get<double>());
      b.points.emplace_back(r.events[i]["train_flops_cumulative"].get<double>() / 1e12, 100 * v.get<double>());
    }
    per_event.push_back(a);
    vs_flops.push_back(b);
  }
  std::ostringstream h;
  h << "<!doctype html><html><head><meta charset='utf-8'><title>NEVIS runs</title><style>"
       "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "th{background:#f3f3f3}td.l{text-align:left}svg{max-width:100%;height:auto}</style></head><body>"
       "<h1>NEVIS stream results</h1><h2>Summary</h2><table><tr><th>run</th><th>stream</th><th>events</th>"
       "<th>average accuracy %</th><th>weighted average accuracy %</th><th>average mAP %</th>"
       "<th>training FLOPs</th><th>peak parameters</th><th>complete</th></tr>";
  for (auto& r : runs) {
    const auto& s = r.summary;
    h << "<tr><td class='l'>" << svg::escape(r.label) << "</td><td class='l'>"
      << svg::escape(s.value("stream", std::string("?"))) << "</td><td>" << r.events.size() << "</td><td>"
      << pct_or_na(s.value("average_accuracy", nlohmann::json())) << "</td><td>"
      << pct_or_na(s.value("weighted_average_accuracy", nlohmann::json())) << "</td><td>"
      << pct_or_na(s.value("average_map", nlohmann::json())) << "</td><td>"
      << svg::format("%.3g", s.value("train_flops_total", 0.0)) << "</td><td>" << s.value("peak_parameter_count", int64_t(0))
      << "</td><td>" << (s.value("complete", false) ? "yes" : "no") << "</td></tr>";
  }
  h << "</table><h2>Accuracy per event</h2><p>Top-1 on each task's prediction split (mAP for multi-label tasks), "
       "in stream order.</p>"
    << svg::lines(per_event, "event (stream order)", "top-1 / mAP (%)")
    << "<h2>Accuracy against compute</h2><p>Each point is a prediction event, placed at the training FLOPs the "
       "learner had spent up to then (every trial counted).</p>"
    << svg::lines(vs_flops, "cumulative training FLOPs (x 1e12)", "top-1 / mAP (%)") << "<h2>Events</h2>";
  for (auto& r : runs) {
    h << "<h3>" << svg::escape(r.label) << "</h3><table><tr><th>#</th><th>dataset</th><th>year</th><th>split</th>"
         "<th>examples</th><th>top-1 %</th><th>top-5 %</th><th>mAP %</th><th>started from</th>"
         "<th>lr</th><th>FLOPs (cumulative)</th><th>corrupt records</th></tr>";
    for (auto& e : r.events) {
      int64_t corrupt = 0;
      const nlohmann::json counts = e.value("corrupt", nlohmann::json::object());  // named: items() of a temporary dangles
      for (auto& [k, v] : counts.items()) corrupt += v.get<int64_t>();
      h << "<tr><td>" << e["index"].get<int64_t>() + 1 << "</td><td class='l'>"
        << svg::escape(e["dataset"].get<std::string>()) << "</td><td>" << e["year"] << "</td><td>"
        << svg::escape(e.value("split", std::string())) << "</td><td>" << e["examples"] << "</td><td>"
        << pct_or_na(e.value("top1", nlohmann::json())) << "</td><td>" << pct_or_na(e.value("top5", nlohmann::json()))
        << "</td><td>" << pct_or_na(e.value("map", nlohmann::json())) << "</td><td class='l'>"
        << svg::escape(e.value("init", std::string())) << "</td><td>" << svg::format("%.3g", e.value("lr", 0.0)) << "</td><td>"
        << svg::format("%.3g", e["train_flops_cumulative"].get<double>()) << "</td><td>" << corrupt << "</td></tr>";
    }
    h << "</table>";
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace trecvit

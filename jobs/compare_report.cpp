#include "jobs/compare_report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "blocks/file_safety.h"
#include "jobs/svg_plot.h"

namespace trecvit {
namespace {

struct Stats {
  double mean = 0, std = 0;
};

// Mean and sample standard deviation (n - 1; 0 for one seed).
Stats stats(const std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  if (v.size() > 1) {
    for (double x : v) s.std += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(s.std / (v.size() - 1));
  }
  return s;
}

std::vector<double> column(const std::vector<nlohmann::json>& runs, const char* key) {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r.at(key).get<double>());
  return v;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string pct(const nlohmann::json& mean, const nlohmann::json& std) {
  if (!mean.is_number()) return "n/a";
  return svg::format("%.2f", 100 * mean.get<double>()) + (std.is_number() ? " ± " + svg::format("%.2f", 100 * std.get<double>()) : "");
}

std::string si(double v) {
  if (v == 0) return "0";
  const char* units[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (std::abs(v) >= 1000 && u < 4) v /= 1000, ++u;
  return svg::format(v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v) + units[u];
}

// Routing per sparse layer: the seeds' means, and seed 0's usage histogram.
nlohmann::json routing_summary(const std::vector<nlohmann::json>& runs) {
  nlohmann::json out = nlohmann::json::object();
  if (runs.empty() || !runs[0].contains("routing") || !runs[0]["routing"].is_object()) return out;
  for (auto it = runs[0]["routing"].begin(); it != runs[0]["routing"].end(); ++it) {
    std::vector<double> used, uneven, top;
    for (const auto& r : runs) {
      const auto& l = r.at("routing").at(it.key());
      used.push_back(l["usage_fraction"]);
      uneven.push_back(l["unevenness"]);
      top.push_back(l["top1pct_share"]);
    }
    out[it.key()] = {{"num_experts", it.value()["num_experts"]}, {"usage_fraction", stats(used).mean},
                     {"unevenness", stats(uneven).mean}, {"top1pct_share", stats(top).mean},
                     {"hit_histogram", it.value()["hit_histogram"]}};
  }
  return out;
}

}  // namespace

nlohmann::json compare_report(const CompareSpec& spec, const std::map<std::string, std::vector<nlohmann::json>>& runs) {
  nlohmann::json arms = nlohmann::json::array();
  for (const auto& a : spec.arms) {
    const auto it = runs.find(a.name);
    const std::vector<nlohmann::json> rs = it == runs.end() ? std::vector<nlohmann::json>{} : it->second;
    const auto t1 = column(rs, "top1"), t5 = column(rs, "top5"), l1 = column(rs, "last_top1");
    nlohmann::json j = a.cost.to_json();
    j["name"] = a.name;
    j["note"] = a.note;
    j["swept"] = a.swept;
    j["matching"] = a.matching;
    j["config"] = a.config_json;
    j["seeds_done"] = rs.size();
    j["top1_mean"] = stats(t1).mean;
    j["top1_std"] = stats(t1).std;
    j["top1_per_seed"] = t1;
    j["top5_mean"] = stats(t5).mean;
    j["top5_std"] = stats(t5).std;
    j["top5_per_seed"] = t5;
    j["last_top1_mean"] = stats(l1).mean;
    j["last_top1_std"] = stats(l1).std;
    j["last_top1_per_seed"] = l1;
    j["train_clips_per_s"] = median(column(rs, "train_clips_per_s"));
    j["stream_ms_per_frame"] = median(column(rs, "stream_ms_per_frame"));
    const auto rss_t = column(rs, "peak_rss_train_bytes"), rss_s = column(rs, "peak_rss_stream_bytes");
    j["peak_rss_train_bytes"] = rss_t.empty() ? 0.0 : *std::max_element(rss_t.begin(), rss_t.end());
    j["peak_rss_stream_bytes"] = rss_s.empty() ? 0.0 : *std::max_element(rss_s.begin(), rss_s.end());
    std::vector<double> grow_t, grow_s;
    for (const auto& r : rs) {
      grow_t.push_back(r.value("rss_growth_train_bytes", -1.0));
      grow_s.push_back(r.value("rss_growth_stream_bytes", -1.0));
    }
    j["rss_growth_train_bytes"] = grow_t.empty() ? 0.0 : *std::max_element(grow_t.begin(), grow_t.end());
    j["rss_growth_stream_bytes"] = grow_s.empty() ? 0.0 : *std::max_element(grow_s.begin(), grow_s.end());
    if (rs.empty())  // no finished seed: no numbers, rather than zeros that read as results
      for (auto key : {"top1_mean", "top1_std", "top5_mean", "top5_std", "last_top1_mean", "last_top1_std"}) j[key] = nullptr;
    if (rs.size() == 1)  // one seed has no spread
      for (auto key : {"top1_std", "top5_std", "last_top1_std"}) j[key] = nullptr;
    j["routing"] = routing_summary(rs);
    nlohmann::json curves = nlohmann::json::array();
    for (const auto& r : rs) curves.push_back(r["loss_curve"]);
    j["loss_curves"] = curves;
    arms.push_back(j);
  }
  // Sweeps: the arms made from one base arm and field, in order.
  nlohmann::json sweeps = nlohmann::json::array();
  std::map<std::string, nlohmann::json> by_field;
  for (const auto& a : arms) {
    const std::string sw = a["swept"];
    if (sw.empty()) continue;
    const std::string name = a["name"], base = name.substr(0, name.find('[')), field = sw.substr(0, sw.find('='));
    auto& s = by_field[base + ":" + field];
    s["arm"] = base;
    s["field"] = field;
    s["points"].push_back({{"value", sw.substr(sw.find('=') + 1)}, {"top1_mean", a["top1_mean"]}, {"top1_std", a["top1_std"]},
                           {"flops_per_clip", a["flops_per_clip"]}, {"params_total", a["params_total"]}});
  }
  for (auto& [k, v] : by_field) sweeps.push_back(v);
  return {{"spec", spec.name},
          {"spec_path", spec.path},
          {"data", {{"root", spec.data_root}, {"format", spec.format}, {"train", spec.train_split}, {"eval", spec.eval_split}}},
          {"recipe", {{"steps", spec.recipe.steps}, {"batch_size", spec.recipe.data.batch_size}, {"sampler", spec.recipe.data.sampler},
                      {"eval_sampler", spec.recipe.data.eval_sampler}, {"train_config", spec.train_config}}},
          {"seeds", spec.seeds},
          {"reference", spec.reference},
          {"arms", arms},
          {"sweeps", sweeps}};
}

void write_compare_markdown(const nlohmann::json& r, const std::string& path) {
  std::ostringstream o;
  o << "# Comparison " << r["spec"].get<std::string>() << "\n\n"
    << r["seeds"].get<int64_t>() << " seed(s), " << r["recipe"]["steps"].get<int64_t>() << " steps of batch "
    << r["recipe"]["batch_size"].get<int64_t>() << " on " << r["data"]["root"].get<std::string>() << " ("
    << r["data"]["eval"].get<std::string>() << " split). Accuracies in %, mean ± std over seeds (sample std).\n\n";
  if (!r.value("complete", true)) o << "**Incomplete: the call was stopped; run it again with --resume to finish.**\n\n";
  o << "| arm | seeds | top-1 | top-5 | last-frame top-1 | params | active params/token | FLOPs/clip (router) | train clips/s | "
       "stream ms/frame | RSS growth train / stream |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& a : r["arms"]) {
    o << "| " << a["name"].get<std::string>() << " | " << a["seeds_done"].get<int64_t>() << " | " << pct(a["top1_mean"], a["top1_std"]) << " | "
      << pct(a["top5_mean"], a["top5_std"]) << " | " << pct(a["last_top1_mean"], a["last_top1_std"]) << " | "
      << si(a["params_total"].get<double>()) << " | " << si(a["params_active_per_token"].get<double>()) << " | "
      << si(a["flops_per_clip"].get<double>()) << " (" << si(a["flops_router_per_clip"].get<double>()) << ") | "
      << svg::format("%.1f", a["train_clips_per_s"].get<double>()) << " | " << svg::format("%.2f", a["stream_ms_per_frame"].get<double>())
      << " | " << svg::format("%.0f", a["rss_growth_train_bytes"].get<double>() / 1048576) << " / "
      << svg::format("%.0f", a["rss_growth_stream_bytes"].get<double>() / 1048576) << " MiB |\n";
  }
  o << "\n";
  for (const auto& a : r["arms"]) {
    if (!a["matching"].get<std::string>().empty()) o << "- " << a["name"].get<std::string>() << ": " << a["matching"].get<std::string>() << "\n";
    for (auto it = a["routing"].begin(); it != a["routing"].end(); ++it)
      o << "- " << a["name"].get<std::string>() << ", layer " << it.key() << ": "
        << svg::format("%.1f", 100 * it.value()["usage_fraction"].get<double>()) << "% of "
        << it.value()["num_experts"].get<int64_t>() << " experts used, unevenness "
        << svg::format("%.3f", it.value()["unevenness"].get<double>()) << ", the top 1% take "
        << svg::format("%.1f", 100 * it.value()["top1pct_share"].get<double>()) << "% of retrievals\n";
  }
  if (const auto why = write_file_atomically(path, o.str()); !why.empty()) throw std::runtime_error(path + ": " + why);
}

void write_compare_html(const nlohmann::json& r, const std::string& path) {
  using namespace svg;
  std::ostringstream h;
  h << "<!DOCTYPE html><html><head><meta charset='utf-8'><title>trecvit compare: " << escape(r["spec"]) << "</title><style>"
    << "body{font-family:sans-serif;max-width:1180px;margin:24px auto;color:#222}h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
    << "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    << "td:first-child,th:first-child,td:last-child,th:last-child{text-align:left}td:last-child{max-width:260px}.legend{font-size:12px}"
    << ".legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}.grid{display:flex;flex-wrap:wrap;gap:12px}.note{color:#555;font-size:13px}"
    << "figure{margin:0}figcaption{font-size:13px;color:#444;max-width:560px}</style></head><body>";
  h << "<h1>trecvit compare: " << escape(r["spec"]) << "</h1><p class='note'>" << r["seeds"].get<int64_t>() << " seed(s); "
    << r["recipe"]["steps"].get<int64_t>() << " steps of batch " << r["recipe"]["batch_size"].get<int64_t>() << " ("
    << escape(r["recipe"]["sampler"]) << " sampling) on " << escape(r["data"]["root"]) << "; evaluated on the "
    << escape(r["data"]["eval"]) << " split. Every arm sees the same batches for the same seed."
    << (r.value("complete", true) ? "" : " <b>Incomplete: the run was stopped; resume it to finish.</b>") << "</p>";
  h << "<table><tr><th>arm</th><th>seeds</th><th>top-1 %</th><th>top-5 %</th><th>last-frame top-1 %</th><th>per seed</th><th>params</th>"
       "<th>active/token</th><th>FLOPs/clip</th><th>router FLOPs</th><th>train clips/s</th><th>stream ms/frame</th>"
       "<th>peak RSS train / stream (growth)</th><th>held equal</th></tr>";
  for (const auto& a : r["arms"]) {
    std::string per;
    for (const auto& v : a["top1_per_seed"]) per += (per.empty() ? "" : ", ") + svg::format("%.1f", 100 * v.get<double>());
    h << "<tr><td>" << escape(a["name"]) << "</td><td>" << a["seeds_done"].get<int64_t>() << "</td><td>"
      << pct(a["top1_mean"], a["top1_std"]) << "</td><td>"
      << pct(a["top5_mean"], a["top5_std"]) << "</td><td>" << pct(a["last_top1_mean"], a["last_top1_std"]) << "</td><td>" << per
      << "</td><td>" << si(a["params_total"].get<double>()) << "</td><td>" << si(a["params_active_per_token"].get<double>())
      << "</td><td>" << si(a["flops_per_clip"].get<double>()) << "</td><td>" << si(a["flops_router_per_clip"].get<double>())
      << "</td><td>" << svg::format("%.1f", a["train_clips_per_s"].get<double>()) << "</td><td>"
      << svg::format("%.2f", a["stream_ms_per_frame"].get<double>()) << "</td><td>"
      << svg::format("%.0f", a["peak_rss_train_bytes"].get<double>() / 1048576) << " / "
      << svg::format("%.0f", a["peak_rss_stream_bytes"].get<double>() / 1048576) << " MiB (+"
      << svg::format("%.0f", a["rss_growth_train_bytes"].get<double>() / 1048576) << " / +"
      << svg::format("%.0f", a["rss_growth_stream_bytes"].get<double>() / 1048576) << ")</td><td class='note'>"
      << escape(a["matching"]) << "</td></tr>";
  }
  h << "</table>";
  std::vector<Point> by_flops, by_params;
  std::vector<Series> losses;
  for (const auto& a : r["arms"]) {
    // Arms without a finished seed stay out of the plots (their colour slot is kept).
    const bool has = a["top1_mean"].is_number();
    const double y = has ? 100 * a["top1_mean"].get<double>() : NAN;
    const double e = a["top1_std"].is_number() ? 100 * a["top1_std"].get<double>() : 0;
    by_flops.push_back({a["flops_per_clip"].get<double>(), y, e, a["name"]});
    by_params.push_back({a["params_total"].get<double>(), y, e, a["name"]});
    Series s{a["name"], {}};
    if (!a["loss_curves"].empty())
      for (const auto& p : a["loss_curves"][0]) s.points.push_back({p[0].get<double>(), p[1].get<double>()});
    losses.push_back(s);
  }
  std::string legend = "<p class='legend'>";
  for (size_t i = 0; i < by_flops.size(); ++i)
    legend += "<span style='background:" + std::string(color(i)) + "'></span>" + escape(by_flops[i].label);
  legend += "</p>";
  h << "<h2>Accuracy against cost</h2>" << legend << "<div class='grid'><figure>"
    << scatter(by_flops, "FLOPs per clip (log scale)", "validation top-1 %", true)
    << "<figcaption>The isoFLOP picture: one point per arm, bars one standard deviation over seeds. Arms at the same x "
       "cost the same compute.</figcaption></figure><figure>"
    << scatter(by_params, "total parameters (log scale)", "validation top-1 %", true)
    << "<figcaption>Accuracy against total parameters: arms at the same x are parameter-matched.</figcaption></figure></div>";
  h << "<h2>Training loss (seed 0)</h2>" << lines(losses, "step", "training loss");
  for (const auto& sw : r["sweeps"]) {
    std::vector<double> v;
    std::vector<std::string> labels;
    for (const auto& p : sw["points"]) {
      v.push_back(p["top1_mean"].is_number() ? 100 * p["top1_mean"].get<double>() : 0.0);
      labels.push_back(p["value"]);
    }
    h << "<h2>Sweep of " << escape(sw["field"]) << " over " << escape(sw["arm"]) << "</h2>"
      << bars(v, labels, sw["field"].get<std::string>(), "validation top-1 %");
  }
  h << "<h2>Routing health on the evaluation split</h2><div class='grid'>";
  bool any = false;
  for (const auto& a : r["arms"])
    for (auto it = a["routing"].begin(); it != a["routing"].end(); ++it) {
      any = true;
      std::vector<double> v;
      std::vector<std::string> labels;
      int b = 0;
      for (const auto& c : it.value()["hit_histogram"]) {
        v.push_back(c.get<double>());
        labels.push_back(b == 0 ? "0" : b == 1 ? "1" : "<" + std::to_string(1 << b));
        ++b;
      }
      h << "<figure>" << bars(v, labels, "retrievals per expert (bins: 0, 1, [2, 4), [4, 8), ...)", "experts (log scale)", true)
        << "<figcaption>" << escape(a["name"]) << ", layer " << it.key() << ": "
        << svg::format("%.1f", 100 * it.value()["usage_fraction"].get<double>()) << "% of " << it.value()["num_experts"].get<int64_t>()
        << " experts used; unevenness " << svg::format("%.3f", it.value()["unevenness"].get<double>())
        << " (0 is even use, log N one expert); the most-used 1% take "
        << svg::format("%.1f", 100 * it.value()["top1pct_share"].get<double>()) << "% of retrievals.</figcaption></figure>";
    }
  if (!any) h << "<p class='note'>No arm has a sparse mixer.</p>";
  h << "</div></body></html>\n";
  if (const auto why = write_file_atomically(path, h.str()); !why.empty()) throw std::runtime_error(path + ": " + why);
}

}  // namespace trecvit

#pragma once
// The comparison report: every number per arm (JSON), the table a paper would print (Markdown),
// and a self-contained HTML page with inline SVG plots (no scripts, no network).
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "jobs/compare_spec.h"

namespace trecvit {

// runs: per arm name, the result.json objects of its finished seeds.
nlohmann::json compare_report(const CompareSpec& spec, const std::map<std::string, std::vector<nlohmann::json>>& runs);
void write_compare_markdown(const nlohmann::json& report, const std::string& path);
void write_compare_html(const nlohmann::json& report, const std::string& path);

}  // namespace trecvit

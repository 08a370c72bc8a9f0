#include "blocks/option_fields.h"

#include <cmath>
#include <sstream>

namespace trecvit {
namespace {

std::string num(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

std::string Check::describe() const {
  if (!choices.empty()) {
    std::string s;
    for (auto& c : choices) s += (s.empty() ? "" : ", ") + c;
    return s;
  }
  const bool has_lo = !std::isinf(lo), has_hi = !std::isinf(hi);
  if (has_lo && has_hi) return "in " + std::string(lo_open ? "(" : "[") + num(lo) + ", " + num(hi) + (hi_open ? ")" : "]");
  if (has_lo) return (lo_open ? "> " : ">= ") + num(lo);
  if (has_hi) return (hi_open ? "< " : "<= ") + num(hi);
  return "any";
}

std::string Check::violation(double v) const {
  const bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi) && !std::isnan(v);
  return ok ? std::string() : describe();
}

std::string Check::violation(const std::string& v) const {
  if (choices.empty()) return {};
  for (auto& c : choices)
    if (c == v) return {};
  std::string s;
  for (auto& c : choices) s += (s.empty() ? "\"" : ", \"") + c + "\"";
  return "one of " + s;
}

std::string fields_markdown(const std::vector<FieldInfo>& fields, const nlohmann::json& defaults) {
  std::string md = "| field | type | default | allowed | meaning |\n| --- | --- | --- | --- | --- |\n";
  for (auto& f : fields)
    md += "| `" + f.name + "` | " + f.type + " | " +
          (defaults.contains(f.name) ? "`" + defaults[f.name].dump() + "`" : std::string("(from the model)")) + " | " +
          f.check.describe() + " | " + f.doc + " |\n";
  return md;
}

}  // namespace trecvit

#include "jobs/settings.h"

#include <sstream>

#include "models/config.h"

namespace trecvit {

Setting parse_setting(const std::string& text, const std::string& origin) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(origin + ": expected SECTION.FIELD=VALUE, like model.depth=4 or train.lr=1e-3");
  return flag_setting(text.substr(0, eq), text.substr(eq + 1), origin);
}

Setting flag_setting(const std::string& key, const std::string& text, const std::string& flag) {
  Setting s;
  s.key = key;
  s.origin = flag;
  s.text = text;
  s.from_text = true;
  s.value = nlohmann::json::parse(text, nullptr, false);
  if (s.value.is_discarded()) s.value = text;  // a bare word: a string
  return s;
}

nlohmann::json* json_at_path(nlohmann::json& j, const std::string& path) {
  nlohmann::json* cur = &j;
  std::stringstream ss(path);
  std::string key;
  while (std::getline(ss, key, '.')) {
    if (cur->is_null()) *cur = nlohmann::json::object();
    if (!cur->is_object() || key.empty()) return nullptr;
    cur = &(*cur)[key];
  }
  return path.empty() || path.back() == '.' ? nullptr : cur;
}

const nlohmann::json* json_find(const nlohmann::json& j, const std::string& path) {
  const nlohmann::json* v = &j;
  std::stringstream ss(path);
  std::string key;
  while (std::getline(ss, key, '.')) {
    if (!v->is_object() || !v->contains(key)) return nullptr;
    v = &(*v)[key];
  }
  return path.empty() ? nullptr : v;
}

void apply_setting(nlohmann::json& j, const Setting& s, const nlohmann::json& resolved) {
  nlohmann::json* target = json_at_path(j, s.path());
  if (!target)
    throw ConfigError(s.origin + ": '" + s.path() + "' is not a field path of the " + s.section() +
                      " options (a dotted path through JSON objects)");
  const nlohmann::json* current = json_find(resolved, s.path());
  *target = s.from_text && current && current->is_string() ? nlohmann::json(s.text) : s.value;
}

std::vector<Setting> json_leaves(const nlohmann::json& j, const std::string& section, const std::string& origin) {
  std::vector<Setting> out;
  std::vector<std::pair<std::string, const nlohmann::json*>> todo = {{"", &j}};
  while (!todo.empty()) {
    auto [path, v] = todo.back();
    todo.pop_back();
    if (v->is_object() && !v->empty()) {
      for (auto it = v->begin(); it != v->end(); ++it) todo.emplace_back(path.empty() ? it.key() : path + "." + it.key(), &it.value());
    } else if (!path.empty()) {
      Setting s;
      s.key = section + "." + path;
      s.value = *v;
      s.origin = origin + " (field " + path + ")";
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace trecvit

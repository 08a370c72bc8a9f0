#pragma once
// `--set section.field=value`: one override of a model, train or data field. Each is validated
// by its section's own parser, so its errors read like the JSON file's and name the setting.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace trecvit {

struct Setting {
  std::string key;         // "model.depth", "train.lr", "data.batch_size", "model.layer_channel_mixers.1.topk"
  nlohmann::json value;
  std::string origin;      // what the user wrote, for errors: "--set train.lr=1e-3", "--batch-size 16"
  std::string text;        // the value as typed, when it came from text ("" otherwise)
  bool from_text = false;  // a string field then takes `text` as written ("--data 2024" is a path)
  std::string section() const { return key.substr(0, key.find('.')); }
  std::string path() const { return key.find('.') == std::string::npos ? "" : key.substr(key.find('.') + 1); }
};

// "KEY=VALUE": VALUE is JSON when it parses as JSON (4, 1e-3, true, {"type": "mlp"}), else a
// string. Throws ConfigError naming `origin` when there is no '=' or no key.
Setting parse_setting(const std::string& text, const std::string& origin);
// A flag's value as a setting of `key` (typed as parse_setting types it).
Setting flag_setting(const std::string& key, const std::string& text, const std::string& flag);

// The value at a dotted path, creating objects on the way (a null on the way becomes one);
// nullptr when a step is not an object or a key is empty. json_find never creates.
nlohmann::json* json_at_path(nlohmann::json& j, const std::string& path);
const nlohmann::json* json_find(const nlohmann::json& j, const std::string& path);
// Applies s at s.path() within `j`. `resolved` is the section with every default filled in: a
// text value for a field that is a string there stays the text as written.
void apply_setting(nlohmann::json& j, const Setting& s, const nlohmann::json& resolved);
// Every leaf of `j` (objects are walked, arrays are leaves) as a setting of "section.path",
// named `origin` + " (field PATH)": how a file given again on a resume is compared field by field.
std::vector<Setting> json_leaves(const nlohmann::json& j, const std::string& section, const std::string& origin);

}  // namespace trecvit

#include "datasets/annotations.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "blocks/file_safety.h"
#include "blocks/parse_number.h"

namespace trecvit::data {
namespace fs = std::filesystem;
namespace {

// An id or label that names a file inside the dataset root: one path component, no "..".
void require_component(const std::string& s, const std::string& where, const std::string& what) {
  if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos || s.find('\\') != std::string::npos ||
      s.find('\0') != std::string::npos || s.size() > 255)
    throw DatasetError(where + ": " + what + " '" + s + "' is not a file name inside the dataset root (one path component, no '..')");
}

// A number of seconds in a CSV field: finite, >= 0, and the whole field.
int64_t seconds_field(const std::string& s, const std::string& where, const std::string& column) {
  const auto parsed = parse_double(s);
  const double v = parsed.value_or(0);
  if (!parsed || !std::isfinite(v) || v < 0 || v > 1e9)
    throw DatasetError(where + ": " + column + " '" + s + "' is not a time in seconds (a finite number >= 0)");
  return std::llround(v);
}

nlohmann::json read_json(const fs::path& p) {
  if (const auto why = unreadable_reason(p.string()); !why.empty()) throw DatasetError(p.string() + ": " + why);
  std::ifstream f(p);
  if (!f) throw DatasetError(p.string() + ": cannot open file");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw DatasetError(p.string() + ": invalid JSON: " + plain_json_error(e));
  }
}

// The first existing file among the candidate names.
fs::path find_file(const fs::path& root, const std::vector<std::string>& names) {
  for (auto& n : names)
    if (path_exists(root / n)) return root / n;
  std::string all;
  for (auto& n : names) all += (all.empty() ? "" : " or ") + n;
  throw DatasetError(root.string() + ": no " + all);
}

bool is_video_file(const fs::path& p) {
  static const std::set<std::string> ext = {".webm", ".mp4", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv"};
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return ext.count(e) > 0;
}

}  // namespace

std::string ssv2_strip_brackets(const std::string& tmpl) {
  std::string out;
  for (char c : tmpl)
    if (c != '[' && c != ']') out += c;
  return out;
}

namespace {

// Lower case, one spelling for the counterclockwise family, so names match however they spell it.
std::string mirror_canonical(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const std::string from : {"counter-clockwise", "anti-clockwise", "anticlockwise"})
    for (size_t at; (at = s.find(from)) != std::string::npos;) s.replace(at, from.size(), "counterclockwise");
  return s;
}

}  // namespace

std::vector<int64_t> mirror_label_map(const std::vector<std::string>& class_names) {
  static const std::map<std::string, std::string> mirror = {
      {"left", "right"}, {"right", "left"}, {"clockwise", "counterclockwise"}, {"counterclockwise", "clockwise"}};
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < class_names.size(); ++i) index[mirror_canonical(class_names[i])] = static_cast<int64_t>(i);
  std::vector<int64_t> out(class_names.size());
  for (size_t i = 0; i < class_names.size(); ++i) {
    std::string mirrored, word;
    auto flush = [&] {
      auto m = mirror.find(word);
      mirrored += m == mirror.end() ? word : m->second;
      word.clear();
    };
    for (char c : mirror_canonical(class_names[i])) {
      if (std::isalpha(static_cast<unsigned char>(c))) {
        word += c;
      } else {
        flush();
        mirrored += c;
      }
    }
    flush();
    auto it = index.find(mirrored);
    out[i] = it == index.end() ? static_cast<int64_t>(i) : it->second;
  }
  return out;
}

std::vector<std::string> parse_csv_line(const std::string& line_in, const std::string& where) {
  std::string line = line_in;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"' && fields.back().empty()) {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (quoted) throw DatasetError(where + ": unterminated quoted field");
  return fields;
}

DatasetSplit load_ssv2(const std::string& root_s, const std::string& split, const std::string& videos_dir) {
  const fs::path root(root_s);
  if (!is_folder(root)) throw DatasetError(root_s + ": not a directory");
  if (split != "train" && split != "validation" && split != "test")
    throw DatasetError("ssv2: unknown split '" + split + "' (train, validation, test)");
  DatasetSplit out{"ssv2", split, {}, {}, {}};
  const auto labels_path = find_file(root, {"labels.json", "something-something-v2-labels.json"});
  const auto labels = read_json(labels_path);
  if (!labels.is_object()) throw DatasetError(labels_path.string() + ": expected {template: \"index\"}");
  std::map<std::string, int64_t> index;
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    int64_t i = -1;
    if (it->is_string()) i = parse_int(it->get_ref<const std::string&>()).value_or(-1);
    else if (it->is_number_integer()) i = it->get<int64_t>();
    if (i < 0) throw DatasetError(labels_path.string() + ": template '" + it.key() + "': index " + it->dump() + " is not a non-negative integer");
    index[it.key()] = i;
  }
  out.class_names.resize(index.size());
  for (auto& [name, i] : index) {
    if (i >= static_cast<int64_t>(index.size()) || !out.class_names[i].empty())
      throw DatasetError(labels_path.string() + ": class indices must be 0.." + std::to_string(index.size() - 1) +
                         ", each once (template '" + name + "')");
    out.class_names[i] = name;
  }
  const auto ann_path = find_file(root, {split + ".json", "something-something-v2-" + split + ".json"});
  const auto ann = read_json(ann_path);
  if (!ann.is_array()) throw DatasetError(ann_path.string() + ": expected a list of entries");
  fs::path vdir = videos_dir.empty() ? fs::path() : fs::path(videos_dir);
  if (vdir.empty())
    for (auto cand : {root / "videos", root / "20bn-something-something-v2", root})
      if (is_folder(cand)) {
        vdir = cand;
        break;
      }
  std::set<std::string> seen_ids;
  for (size_t k = 0; k < ann.size(); ++k) {
    const auto& e = ann[k];
    const std::string where = ann_path.string() + ": entry " + std::to_string(k);
    if (!e.is_object() || !e.contains("id")) throw DatasetError(where + ": missing field 'id'");
    VideoItem item;
    if (e["id"].is_string()) item.id = e["id"].get<std::string>();
    else if (e["id"].is_number_unsigned()) item.id = e["id"].dump();
    else throw DatasetError(where + ": 'id' must be a string or a non-negative integer, got " + e["id"].dump());
    require_component(item.id, where, "id");
    if (!seen_ids.insert(item.id).second) throw DatasetError(where + ": duplicate id '" + item.id + "'");
    if (split != "test") {
      if (!e.contains("template") || !e["template"].is_string())
        throw DatasetError(where + " (id " + item.id + "): missing field 'template'");
      const std::string t = ssv2_strip_brackets(e["template"].get<std::string>());
      auto it = index.find(t);
      if (it == index.end()) throw DatasetError(where + " (id " + item.id + "): unknown template '" + t + "'");
      item.label = it->second;
    }
    item.path = (vdir / (item.id + ".webm")).string();
    if (path_exists(item.path))
      out.items.push_back(item);
    else
      out.missing.push_back(item.path);
  }
  return out;
}

DatasetSplit load_kinetics(const std::string& root_s, const std::string& split, const std::string& csv_path) {
  const fs::path root(root_s);
  if (!is_folder(root)) throw DatasetError(root_s + ": not a directory");
  fs::path csv = csv_path.empty() ? fs::path() : fs::path(csv_path);
  if (csv.empty())
    csv = find_file(root, {"annotations/" + split + ".csv", split + ".csv", "kinetics_" + split + ".csv"});
  if (const auto why = unreadable_reason(csv.string()); !why.empty()) throw DatasetError(csv.string() + ": " + why);
  std::ifstream f(csv);
  if (!f) throw DatasetError(csv.string() + ": cannot open file");
  std::string line;
  if (!std::getline(f, line)) throw DatasetError(csv.string() + ": empty file");
  const auto header = parse_csv_line(line, csv.string() + ": line 1");
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  for (auto need : {"youtube_id", "time_start", "time_end"})
    if (!col.count(need)) throw DatasetError(csv.string() + ": header has no column '" + std::string(need) + "'");
  const bool has_label = col.count("label") > 0;
  struct Row {
    std::string label, id;
    int64_t start, end;
  };
  std::vector<Row> rows;
  std::set<std::string> labels;
  for (int64_t n = 2; std::getline(f, line); ++n) {
    if (line.empty() || line == "\r") continue;
    const std::string where = csv.string() + ": line " + std::to_string(n);
    auto fields = parse_csv_line(line, where);
    if (fields.size() < header.size()) throw DatasetError(where + ": " + std::to_string(fields.size()) + " fields, header has " + std::to_string(header.size()));
    Row r;
    r.id = fields[col["youtube_id"]];
    require_component(r.id, where, "youtube_id");
    r.start = seconds_field(fields[col["time_start"]], where, "time_start");
    r.end = seconds_field(fields[col["time_end"]], where, "time_end");
    if (r.end < r.start) throw DatasetError(where + ": time_end is before time_start");
    if (has_label) {
      r.label = fields[col["label"]];
      if (!r.label.empty()) require_component(r.label, where, "label");
      if (!r.label.empty()) labels.insert(r.label);
    }
    rows.push_back(r);
  }
  DatasetSplit out{"kinetics", split, {}, {labels.begin(), labels.end()}, {}};
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < out.class_names.size(); ++i) index[out.class_names[i]] = static_cast<int64_t>(i);
  for (auto& r : rows) {
    char name[512];
    std::snprintf(name, sizeof(name), "%s_%06lld_%06lld.mp4", r.id.c_str(), static_cast<long long>(r.start),
                  static_cast<long long>(r.end));
    std::string underscored = r.label;
    std::replace(underscored.begin(), underscored.end(), ' ', '_');
    std::vector<fs::path> candidates = {root / split / r.label / name, root / split / underscored / name,
                                        root / r.label / name, root / underscored / name, root / split / name,
                                        root / name};
    VideoItem item{"", r.label.empty() ? -1 : index[r.label], r.id};
    for (auto& c : candidates)
      if (is_plain_file(c)) {
        item.path = c.string();
        break;
      }
    if (item.path.empty())
      out.missing.push_back(name);
    else
      out.items.push_back(item);
  }
  return out;
}

DatasetSplit load_folder(const std::string& root_s) {
  const fs::path root(root_s);
  if (!is_folder(root)) throw DatasetError(root_s + ": not a directory");
  DatasetSplit out{"folder", "", {}, {}, {}};
  for (auto& d : fs::directory_iterator(root))
    if (d.is_directory()) out.class_names.push_back(d.path().filename().string());
  std::sort(out.class_names.begin(), out.class_names.end());
  if (out.class_names.empty()) throw DatasetError(root_s + ": no class folders");
  for (size_t c = 0; c < out.class_names.size(); ++c) {
    std::vector<fs::path> files;
    for (auto& e : fs::recursive_directory_iterator(root / out.class_names[c]))
      if (e.is_regular_file() && is_video_file(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto& p : files)
      out.items.push_back({p.string(), static_cast<int64_t>(c), fs::relative(p, root).string()});
  }
  return out;
}

DatasetSplit load_csv_list(const std::string& csv_s) {
  const fs::path csv(csv_s);
  if (const auto why = unreadable_reason(csv_s); !why.empty()) throw DatasetError(csv_s + ": " + why);
  std::ifstream f(csv);
  if (!f) throw DatasetError(csv_s + ": cannot open file");
  DatasetSplit out{"csv", "", {}, {}, {}};
  std::map<std::string, int64_t> by_name;
  std::string line;
  bool numeric = true;
  std::vector<std::pair<std::string, std::string>> rows;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.empty() || line == "\r") continue;
    const std::string where = csv_s + ": line " + std::to_string(n);
    auto fields = parse_csv_line(line, where);
    if (n == 1 && fields.size() >= 2 && fields[0] == "path" && fields[1] == "label") continue;  // header
    if (fields.size() != 2) throw DatasetError(where + ": expected 'path,label', got " + std::to_string(fields.size()) + " fields");
    if (fields[0].empty()) throw DatasetError(where + ": empty path");
    numeric = numeric && !fields[1].empty() && fields[1].size() <= 6 && fields[1].find_first_not_of("0123456789") == std::string::npos;
    rows.emplace_back(fields[0], fields[1]);
  }
  if (!numeric) {
    std::set<std::string> names;
    for (auto& r : rows) names.insert(r.second);
    out.class_names.assign(names.begin(), names.end());
    for (size_t i = 0; i < out.class_names.size(); ++i) by_name[out.class_names[i]] = static_cast<int64_t>(i);
  }
  int64_t max_label = -1;
  for (auto& [path, label] : rows) {
    fs::path p(path);
    if (p.is_relative()) p = csv.parent_path() / p;
    const int64_t l = numeric ? parse_int(label).value_or(-1) : by_name[label];
    max_label = std::max(max_label, l);
    if (path_exists(p))
      out.items.push_back({p.string(), l, path});
    else
      out.missing.push_back(p.string());
  }
  if (numeric)
    for (int64_t i = 0; i <= max_label; ++i) out.class_names.push_back(std::to_string(i));
  return out;
}


}  // namespace trecvit::data

#include "jobs/labels.h"

#include "blocks/file_safety.h"
#include "datasets/annotations.h"
#include "blocks/parse_number.h"

#include <fstream>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace trecvit {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("labels " + path + ": " + what);
}

std::vector<std::string> from_json(const std::string& path, const nlohmann::json& j) {
  std::vector<std::string> names;
  if (j.is_array()) {
    for (const auto& v : j) {
      if (!v.is_string()) fail(path, "a JSON list of labels must hold strings, found " + std::string(v.type_name()));
      names.push_back(v.get<std::string>());
    }
    return names;
  }
  if (!j.is_object()) fail(path, "expected a JSON list of names or an object {\"name\": index}");
  names.assign(j.size(), "");
  std::vector<bool> seen(j.size(), false);
  for (auto it = j.begin(); it != j.end(); ++it) {
    int64_t idx = -1;
    if (it->is_number_integer()) idx = it->get<int64_t>();
    else if (it->is_string()) {
      const std::string s = it->get<std::string>();
      const auto parsed = parse_int(s);
      if (!parsed) fail(path, "label \"" + it.key() + "\" has index \"" + s + "\", not an integer");
      idx = *parsed;
    } else {
      fail(path, "label \"" + it.key() + "\" must map to an integer index");
    }
    if (idx < 0 || idx >= static_cast<int64_t>(j.size()))
      fail(path, "label \"" + it.key() + "\" has index " + std::to_string(idx) + ", outside [0, " + std::to_string(j.size()) + ")");
    if (seen[idx]) fail(path, "index " + std::to_string(idx) + " is given to two labels");
    seen[idx] = true;
    names[idx] = it.key();
  }
  return names;
}

}  // namespace

std::vector<std::string> load_class_names(const std::string& path, int64_t num_classes) {
  std::string text, why;
  if (!read_regular_file(path, text, why)) fail(path, why);
  std::vector<std::string> names;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) fail(path, "starts like JSON but is not valid JSON");
    names = from_json(path, j);
  } else if (text.compare(first == std::string::npos ? 0 : first, 6, "label,") == 0) {
    // A Kinetics annotation CSV: the classes are its distinct labels, sorted, as the loader
    // numbers them.
    std::istringstream lines(text);
    std::string line;
    std::set<std::string> distinct;
    int64_t row = 0;
    std::getline(lines, line);  // the header
    while (std::getline(lines, line)) {
      ++row;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      try {
        const std::string label = data::parse_csv_line(line, path + " row " + std::to_string(row)).at(0);
        if (!label.empty()) distinct.insert(label);  // test rows carry none
      } catch (const std::exception& e) {
        fail(path, e.what());
      }
    }
    names.assign(distinct.begin(), distinct.end());
  } else {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) names.push_back(line);
    }
  }
  if (static_cast<int64_t>(names.size()) != num_classes)
    fail(path, std::to_string(names.size()) + " names, but the model has " + std::to_string(num_classes) + " classes");
  return names;
}

std::vector<std::string> default_class_names(int64_t num_classes) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < num_classes; ++i) names.push_back("class " + std::to_string(i));
  return names;
}

}  // namespace trecvit

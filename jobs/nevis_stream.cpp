#include "jobs/nevis_stream.h"
#include "blocks/file_safety.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/config.h"
#include "models/config_locator.h"

namespace trecvit {

const std::vector<std::string>& builtin_nevis_streams() {
  static const std::vector<std::string> names = {"full", "short", "tiny", "debug", "debian"};
  return names;
}

NevisStream load_nevis_stream(const std::string& name_or_path) {
  const auto& builtin = builtin_nevis_streams();
  std::string path = name_or_path;
  if (std::find(builtin.begin(), builtin.end(), name_or_path) != builtin.end())
    path = find_config("nevis/streams/" + name_or_path + ".json");
  else if (!is_plain_file(path))
    throw ConfigError("stream '" + name_or_path + "': neither a built-in stream (full, short, tiny, debug, debian) "
                      "nor a JSON file");
  std::ifstream in(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError("stream " + path + ": invalid JSON: " + plain_json_error(e));
  }
  NevisStream s;
  s.source = path;
  auto bad = [&](const std::string& what) { return ConfigError("stream " + path + ": " + what); };
  if (!j.is_object() || !j.contains("events") || !j["events"].is_array())
    throw bad("expected {\"name\": ..., \"events\": [{\"dataset\": ..., \"year\": ...}, ...]}");
  s.name = j.value("name", std::filesystem::path(path).stem().string());
  for (size_t i = 0; i < j["events"].size(); ++i) {
    const auto& e = j["events"][i];
    const std::string at = "events[" + std::to_string(i) + "]";
    if (!e.is_object() || !e.contains("dataset") || !e["dataset"].is_string() || e["dataset"].get<std::string>().empty())
      throw bad(at + ": needs a non-empty string \"dataset\"");
    if (!e.contains("year") || !e["year"].is_number_integer())
      throw bad(at + " (" + e["dataset"].get<std::string>() + "): needs an integer \"year\"");
    NevisEvent ev{e["dataset"], e["year"].get<int64_t>(), e.value("stream_name", e["dataset"].get<std::string>())};
    if (ev.dataset.find("..") != std::string::npos || ev.dataset.front() == '/')
      throw bad(at + ": dataset '" + ev.dataset + "' must be a folder name under the data root");
    if (!s.events.empty() && ev.year < s.events.back().year)
      throw bad(at + " (" + ev.dataset + "): year " + std::to_string(ev.year) + " comes before the previous event's " +
                std::to_string(s.events.back().year) + " (a stream is in publication order)");
    s.events.push_back(ev);
  }
  if (s.events.empty()) throw bad("no events");
  return s;
}

std::vector<NevisEvent> nevis_events(const NevisStream& stream, int64_t stop_year, bool final) {
  std::vector<NevisEvent> out;
  for (auto& e : stream.events)
    if (final || e.year < stop_year) out.push_back(e);
  return out;
}

}  // namespace trecvit

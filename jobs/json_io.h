#pragma once
// JSON files of the jobs' run folders: written whole or not at all, read with errors that name
// the file.
#include <nlohmann/json.hpp>
#include <string>

namespace trecvit {

// Writes PATH.tmp, then renames it over PATH (a crash leaves the old file or the new one).
void write_json_atomically(const std::string& path, const nlohmann::json& j);
// The JSON object in `path`; throws ConfigError "WHAT PATH: cannot be opened | invalid JSON |
// must be a JSON object".
nlohmann::json read_json_object(const std::string& path, const std::string& what);

}  // namespace trecvit

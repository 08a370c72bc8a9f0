#include "jobs/json_io.h"

#include <cstdio>
#include <fstream>

#include "blocks/file_safety.h"
#include "models/config.h"

namespace trecvit {

void write_json_atomically(const std::string& path, const nlohmann::json& j) {
  if (const auto why = write_file_atomically(path, j.dump(2) + "\n"); !why.empty()) throw ConfigError(path + ": " + why);
}

nlohmann::json read_json_object(const std::string& path, const std::string& what) {
  if (const auto why = unreadable_reason(path); !why.empty()) throw ConfigError(what + " " + path + ": " + why);
  std::ifstream f(path);
  if (!f) throw ConfigError(what + " " + path + ": cannot be opened");
  auto j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded()) throw ConfigError(what + " " + path + ": invalid JSON");
  if (!j.is_object()) throw ConfigError(what + " " + path + ": must be a JSON object");
  return j;
}

}  // namespace trecvit

#include "jobs/json_io.h"

#include <cstdio>
#include <fstream>

#include "models/config.h"

namespace trecvit {

void write_json_atomically(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out.flush()) {
      std::remove(tmp.c_str());
      throw ConfigError(tmp + ": cannot be written");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw ConfigError(path + ": cannot be replaced");
  }
}

nlohmann::json read_json_object(const std::string& path, const std::string& what) {
  std::ifstream f(path);
  if (!f) throw ConfigError(what + " " + path + ": cannot be opened");
  auto j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded()) throw ConfigError(what + " " + path + ": invalid JSON");
  if (!j.is_object()) throw ConfigError(what + " " + path + ": must be a JSON object");
  return j;
}

}  // namespace trecvit

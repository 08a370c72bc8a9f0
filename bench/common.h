#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "models/config.h"
#include "models/trecvit.h"

namespace trecvit::bench {

// configs/<name>.json (or a path), at a square image size (0: keep the config's).
TRecViTConfig bench_config(const std::string& name_or_path, int64_t image_size);

// Runs this binary again (`env` prefix, same thread count, then `arguments`, e.g. "bench peer
// --json ...") so a measurement gets a fresh process; returns its JSON output. Throws
// std::runtime_error with the command when the child fails or prints no JSON.
nlohmann::json run_self_json(const std::string& env, const std::string& arguments);

// A TCP port on 127.0.0.1 that was free a moment ago (the OS's choice for port 0).
int free_port();

}  // namespace trecvit::bench

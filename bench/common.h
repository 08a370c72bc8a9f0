#pragma once
#include <string>

#include "models/config.h"
#include "models/trecvit.h"

namespace trecvit::bench {

// configs/<name>.json (or a path), at a square image size (0: keep the config's).
TRecViTConfig bench_config(const std::string& name_or_path, int64_t image_size);

}  // namespace trecvit::bench

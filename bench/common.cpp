#include "bench/common.h"

#include <sys/stat.h>

namespace trecvit::bench {

TRecViTConfig bench_config(const std::string& name, int64_t image_size) {
  struct stat st;
  std::string path = name;
  if (stat(path.c_str(), &st) != 0) {
    const char* dir = std::getenv("TRECVIT_CONFIG_DIR");
    path = std::string(dir ? dir : TRECVIT_CONFIG_DIR) + "/" + name + ".json";
  }
  auto c = load_config(path);
  if (image_size > 0) c.image_height = c.image_width = image_size;
  c.validate();
  return c;
}

}  // namespace trecvit::bench

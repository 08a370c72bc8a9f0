#include "video_io/md5.h"

extern "C" {
#include <libavutil/md5.h>
}

namespace trecvit::video {

std::string md5_hex(const uint8_t* data, size_t size) {
  uint8_t digest[16];
  av_md5_sum(digest, data, size);
  static const char* hex = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[2 * i] = hex[digest[i] >> 4];
    s[2 * i + 1] = hex[digest[i] & 15];
  }
  return s;
}

}  // namespace trecvit::video

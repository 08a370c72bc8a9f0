#pragma once
// MD5 as lowercase hex (libavutil's implementation): frame checksums comparable with
// `ffmpeg -f framemd5`, and stable cache file names.
#include <cstddef>
#include <cstdint>
#include <string>

namespace trecvit::video {

std::string md5_hex(const uint8_t* data, size_t size);

}  // namespace trecvit::video

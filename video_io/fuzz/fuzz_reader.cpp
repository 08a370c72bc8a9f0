// libFuzzer target: arbitrary bytes through the in-memory Reader (open, index, sequential
// and random-access decode). Any VideoError is an expected outcome; crashes, leaks, hangs
// and sanitizer reports are bugs.
#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" {
#include <libavutil/log.h>
}

#include "video_io/error.h"
#include "video_io/reader.h"

using namespace trecvit::video;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (set_ffmpeg_log_level(AV_LOG_QUIET), true);
  (void)quiet;
  auto bytes = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  try {
    ReaderOptions options;
    options.index_cache.mode = IndexCacheMode::kOff;
    Reader reader(bytes, options, "fuzz");
    const int64_t n = reader.info().frames;
    if (n == 0) return 0;
    // Small outputs: the point is the demux/decode/convert paths, not big memcpys.
    const FrameSize small = FrameSize::exact(24, 16);
    std::vector<uint8_t> out(static_cast<size_t>(reader.geometry(small).frame_bytes()) * 4);
    int64_t budget = 48;
    reader.scan(small, [&](int64_t, const uint8_t*) { return --budget > 0; });
    reader.read({n - 1, 0, n / 2, n - 1}, small, out.data());
    const FrameSize crop = FrameSize::short_side_crop(20, 12, 12);
    out.resize(static_cast<size_t>(reader.geometry(crop).frame_bytes()));
    reader.read({n / 3}, crop, out.data());
  } catch (const VideoError&) {
  }
  return 0;
}

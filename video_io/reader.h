#pragma once
// Exact frame access to one video (file, URL or in-memory buffer) without LibTorch: the
// frame index gives exact counts and timestamps, `read` returns exactly the requested
// frames as packed RGB24. For tensors use video_io/video_reader.h.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "video_io/convert.h"
#include "video_io/decoder.h"
#include "video_io/error.h"
#include "video_io/frame_index.h"
#include "video_io/index_cache.h"
#include "video_io/input.h"

namespace trecvit::video {

struct ReaderOptions {
  DecoderOptions decoder;
  IndexCacheOptions index_cache;
};

struct VideoInfo {
  std::string source;
  std::string container, codec, pixel_format;
  int width = 0, height = 0;              // as displayed (after rotation)
  int coded_width = 0, coded_height = 0;  // as stored
  int rotation = 0;                       // clockwise degrees applied for display (0, 90, 180, 270)
  int bit_depth = 8;
  double fps = 0;                         // nominal (the container's average rate)
  double duration = 0;                    // seconds: the container's, else from the index
  int64_t frames = 0;                     // exact: frames in the index
  int64_t keyframes = 0;
  bool truncated = false;                 // the index pass stopped at damaged or missing data
  std::string problem;                    // why, when truncated
};

struct ReadReport {
  int64_t decoded = 0;               // requested slots holding a decoded frame
  std::vector<int64_t> missing;      // requested indices that could not be decoded (sorted, unique)
  std::string problem;               // the decoder's last error when something is missing
  int64_t frames_decoded = 0;        // frames the decoder produced (the work done)
  int64_t seeks = 0;
  bool complete() const { return missing.empty(); }
};

// Called with each frame's display index and RGB24 bytes; return false to stop early.
using FrameCallback = std::function<bool(int64_t index, const uint8_t* rgb)>;

class Reader {
 public:
  explicit Reader(const std::string& path_or_url, const ReaderOptions& options = {});
  Reader(Bytes data, const ReaderOptions& options = {}, const std::string& name = "<memory>");
  ~Reader();
  Reader(Reader&&) noexcept;
  Reader& operator=(Reader&&) noexcept;

  const VideoInfo& info() const { return info_; }
  const FrameIndex& index() const { return index_; }
  // Presentation time of frame i in seconds from the first frame.
  double timestamp(int64_t i) const { return index_.seconds(i); }
  // The frame on screen at `seconds` from the first frame.
  int64_t index_at(double seconds) const;
  Geometry geometry(const FrameSize& size) const;

  // Decodes the frames at `indices` (any order; repeats allowed) into `dst`: one
  // geometry(size).frame_bytes() slot per index, in request order. Damaged data never
  // throws: undecodable frames are listed in the report and their slots zero-filled.
  // Indices outside [0, frames) throw VideoError(kBadRequest).
  ReadReport read(const std::vector<int64_t>& indices, const FrameSize& size, uint8_t* dst);
  // Decodes every frame in order, calling fn for each; stops when fn returns false.
  ReadReport scan(const FrameSize& size, const FrameCallback& fn);

 private:
  void open(const ReaderOptions& options);
  void load_index(const ReaderOptions& options);
  void index_by_decoding();
  void fill_info();
  bool start_session(int64_t keyframe, ReadReport* report);
  int64_t map_timestamp(int64_t ts) const;

  std::unique_ptr<Input> input_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<FrameConverter> converter_;
  DecoderOptions decoder_options_;
  FrameIndex index_;
  VideoInfo info_;
  int64_t cur_ = -1;  // display index of the last frame decoded in this session; -1: must seek
};

}  // namespace trecvit::video

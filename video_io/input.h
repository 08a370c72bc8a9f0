#pragma once
// An opened container (file, URL or in-memory buffer) and its chosen video stream. Opening
// classifies every failure into a typed VideoError naming the source.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "video_io/ffmpeg_raii.h"

namespace trecvit::video {

using Bytes = std::shared_ptr<const std::vector<uint8_t>>;

// For live sources: FFmpeg polls `interrupt` inside every blocking open and read, and gives up
// with AVERROR_EXIT when it returns true (a stop request, a deadline passed).
struct InputOptions {
  std::function<bool()> interrupt;
  std::vector<std::pair<std::string, std::string>> format_options;  // avformat_open_input options
  // A live source: a local path may be a FIFO or a device. Otherwise it must be a regular file,
  // so a FIFO given as a video fails at once instead of blocking the open forever.
  bool live = false;
};

class Input {
 public:
  // A local path or any URL FFmpeg understands.
  static std::unique_ptr<Input> open(const std::string& path_or_url, const InputOptions& options = {});
  // A buffer held (not copied) for the Input's lifetime; `name` is used in errors.
  static std::unique_ptr<Input> open_memory(Bytes data, const std::string& name = "<memory>");
  ~Input();
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;

  // The same source opened afresh (for sources that cannot seek back).
  std::unique_ptr<Input> reopen() const;

  AVFormatContext* fmt() const { return fmt_.get(); }
  int stream_index() const { return stream_; }
  AVStream* stream() const { return fmt_->streams[stream_]; }
  const AVCodec* codec() const { return codec_; }
  const std::string& source() const { return source_; }
  bool is_memory() const { return memory_ != nullptr; }
  bool is_local_file() const { return local_file_; }

 private:
  Input() = default;
  void finish_open(int open_result);

  struct Memory {
    Bytes data;
    int64_t pos = 0;
  };
  // Declaration order is destruction order reversed: the format context goes first.
  std::function<bool()> interrupt_;  // FFmpeg may poll it while closing
  std::unique_ptr<Memory> memory_;
  AvioPtr avio_;
  FormatPtr fmt_;
  int stream_ = -1;
  const AVCodec* codec_ = nullptr;
  std::string source_;
  bool local_file_ = false;
};

}  // namespace trecvit::video

#include "video_io/input.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "video_io/error.h"

namespace trecvit::video {

namespace {

constexpr int kAvioBufferSize = 1 << 16;

bool looks_like_url(const std::string& s) { return s.find("://") != std::string::npos; }

// Fails early with a clear reason for the common local-file problems.
void check_local_file(const std::string& path, bool live) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    throw VideoError(ErrorKind::kMissingFile, path, errno == ENOENT ? "no such file" : std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) throw VideoError(ErrorKind::kNotAVideo, path, "is a directory");
  if (!live && !S_ISREG(st.st_mode))
    throw VideoError(ErrorKind::kNotAVideo, path,
                     std::string("is not a regular file (") + (S_ISFIFO(st.st_mode) ? "a named pipe" : "a device or socket") +
                         "): videos are read from files; live sources go to `trecvit stream`");
  if (::access(path.c_str(), R_OK) != 0) throw VideoError(ErrorKind::kMissingFile, path, "cannot be read: " + std::string(std::strerror(errno)));
  if (S_ISREG(st.st_mode) && st.st_size == 0) throw VideoError(ErrorKind::kNotAVideo, path, "empty file (0 bytes)");
}

}  // namespace

Input::~Input() = default;

std::unique_ptr<Input> Input::open(const std::string& path_or_url, const InputOptions& options) {
  std::unique_ptr<Input> in(new Input());
  in->source_ = path_or_url;
  in->local_file_ = !looks_like_url(path_or_url);
  if (in->local_file_) check_local_file(path_or_url, options.live);
  AVFormatContext* raw = avformat_alloc_context();
  if (!raw) throw std::bad_alloc();
  if (options.interrupt) {
    in->interrupt_ = options.interrupt;
    raw->interrupt_callback.callback = [](void* opaque) -> int { return (*static_cast<std::function<bool()>*>(opaque))() ? 1 : 0; };
    raw->interrupt_callback.opaque = &in->interrupt_;
  }
  AVDictionary* dict = nullptr;
  for (const auto& [k, v] : options.format_options) av_dict_set(&dict, k.c_str(), v.c_str(), 0);
  const int r = avformat_open_input(&raw, path_or_url.c_str(), nullptr, &dict);
  av_dict_free(&dict);
  in->fmt_.reset(raw);  // null on failure: FFmpeg freed it
  in->finish_open(r);
  return in;
}

std::unique_ptr<Input> Input::open_memory(Bytes data, const std::string& name) {
  std::unique_ptr<Input> in(new Input());
  in->source_ = name;
  if (!data || data->empty()) throw VideoError(ErrorKind::kNotAVideo, name, "empty buffer (0 bytes)");
  in->memory_ = std::make_unique<Memory>();
  in->memory_->data = std::move(data);
  AvBufferPtr buffer(static_cast<uint8_t*>(av_malloc(kAvioBufferSize)));
  if (!buffer) throw std::bad_alloc();
  auto read = [](void* opaque, uint8_t* buf, int size) -> int {
    auto* m = static_cast<Memory*>(opaque);
    const int64_t left = static_cast<int64_t>(m->data->size()) - m->pos;
    if (left <= 0) return AVERROR_EOF;
    const int n = static_cast<int>(std::min<int64_t>(left, size));
    std::memcpy(buf, m->data->data() + m->pos, n);
    m->pos += n;
    return n;
  };
  auto seek = [](void* opaque, int64_t offset, int whence) -> int64_t {
    auto* m = static_cast<Memory*>(opaque);
    const int64_t size = static_cast<int64_t>(m->data->size());
    switch (whence & ~AVSEEK_FORCE) {
      case AVSEEK_SIZE: return size;
      case SEEK_SET: break;
      case SEEK_CUR: offset += m->pos; break;
      case SEEK_END: offset += size; break;
      default: return AVERROR(EINVAL);
    }
    if (offset < 0) return AVERROR(EINVAL);
    m->pos = std::min(offset, size);
    return m->pos;
  };
  in->avio_.reset(avio_alloc_context(buffer.get(), kAvioBufferSize, 0, in->memory_.get(), read, nullptr, seek));
  if (!in->avio_) throw std::bad_alloc();
  buffer.release();  // owned by the AVIOContext now
  AVFormatContext* raw = avformat_alloc_context();
  if (!raw) throw std::bad_alloc();
  raw->pb = in->avio_.get();
  raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  const int r = avformat_open_input(&raw, nullptr, nullptr, nullptr);
  in->fmt_.reset(raw);
  in->finish_open(r);
  return in;
}

void Input::finish_open(int r) {
  if (r < 0) {
    if (r == AVERROR(ENOENT)) throw VideoError(ErrorKind::kMissingFile, source_, "cannot open", av_error_text(r));
    if (r == AVERROR_EXIT) throw VideoError(ErrorKind::kSourceLost, source_, "opening was interrupted (timeout or stop)");
    if (!local_file_ && !memory_ && r != AVERROR_INVALIDDATA)
      throw VideoError(ErrorKind::kSourceLost, source_, "cannot be opened", av_error_text(r));
    throw VideoError(ErrorKind::kNotAVideo, source_, "not a container FFmpeg can read", av_error_text(r));
  }
  r = avformat_find_stream_info(fmt_.get(), nullptr);
  if (r < 0) throw VideoError(ErrorKind::kCorruptData, source_, "cannot read the stream information", av_error_text(r));
  const AVCodec* codec = nullptr;
  r = av_find_best_stream(fmt_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (r == AVERROR_STREAM_NOT_FOUND)
    throw VideoError(ErrorKind::kNoVideoStream, source_,
                     "no video stream (" + std::to_string(fmt_->nb_streams) + " other stream(s))");
  if (r == AVERROR_DECODER_NOT_FOUND || (r >= 0 && !codec)) {
    throw VideoError(ErrorKind::kUnsupported, source_, "no decoder for the video stream", av_error_text(r));
  }
  if (r < 0) throw VideoError(ErrorKind::kNoVideoStream, source_, "cannot select a video stream", av_error_text(r));
  AVStream* st = fmt_->streams[r];
  if (st->disposition & AV_DISPOSITION_ATTACHED_PIC)
    throw VideoError(ErrorKind::kNoVideoStream, source_, "no video stream (only an attached cover picture)");
  if (st->codecpar->width <= 0 || st->codecpar->height <= 0)
    throw VideoError(ErrorKind::kCorruptData, source_, "the video stream has no frame size");
  stream_ = r;
  codec_ = codec;
}

std::unique_ptr<Input> Input::reopen() const {
  return memory_ ? open_memory(memory_->data, source_) : open(source_);
}

}  // namespace trecvit::video

#include "video_io/reader.h"

#include <algorithm>
#include <cstring>

#include "video_io/error.h"
#include "video_io/rotate.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace trecvit::video {

namespace {
constexpr int64_t kSeekCostFrames = 8;
}  // namespace

Reader::Reader(const std::string& path_or_url, const ReaderOptions& options) {
  input_ = Input::open(path_or_url);
  open(options);
}

Reader::Reader(Bytes data, const ReaderOptions& options, const std::string& name) {
  input_ = Input::open_memory(std::move(data), name);
  open(options);
}

Reader::~Reader() = default;
Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&&) noexcept = default;

void Reader::open(const ReaderOptions& options) {
  decoder_options_ = options.decoder;
  load_index(options);
  decoder_ = std::make_unique<Decoder>(*input_, decoder_options_);
  converter_ = std::make_unique<FrameConverter>();
  fill_info();
}

void Reader::load_index(const ReaderOptions& options) {
  const int s = input_->stream_index();
  const std::string src = input_->source();  // a copy: index_by_decoding() replaces input_
  const std::string cache = input_->is_local_file() ? index_cache_path(src, options.index_cache) : "";
  if (auto cached = load_cached_index(src, cache, s)) {
    index_ = std::move(*cached);
    return;
  }
  bool missing_timestamps = false;
  index_ = build_index(input_->fmt(), s, &missing_timestamps);
  if (missing_timestamps) index_by_decoding();
  save_cached_index(src, cache, s, index_);
}

// For streams whose packets carry no pts: the decoder's own timestamps, exact by
// construction; when frames carry none either (raw elementary streams), their order.
void Reader::index_by_decoding() {
  input_ = input_->reopen();
  Decoder dec(*input_, decoder_options_);
  std::vector<std::pair<int64_t, uint8_t>> entries;
  bool timed = true;
  while (AVFrame* f = dec.next()) {
    const int64_t ts = Decoder::timestamp(f);
    timed = timed && ts != AV_NOPTS_VALUE;
    entries.emplace_back(timed ? ts : static_cast<int64_t>(entries.size()), f->key_frame ? 1 : 0);
  }
  index_.pts.clear();
  index_.key.clear();
  index_.by_order = !timed;
  if (timed) {
    std::stable_sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.first < b.first; });
  } else {
    // Positions only: times from the nominal rate (nothing better exists), and every access
    // decodes from the start (frame 0 is the only seek point).
    const AVRational rate = input_->stream()->avg_frame_rate.num > 0 ? input_->stream()->avg_frame_rate
                                                                      : input_->stream()->r_frame_rate;
    index_.tb_num = rate.num > 0 && rate.den > 0 ? rate.den : 1;
    index_.tb_den = rate.num > 0 && rate.den > 0 ? rate.num : 25;
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    index_.pts.push_back(timed ? entries[i].first : static_cast<int64_t>(i));
    index_.key.push_back(timed ? entries[i].second : i == 0);
  }
  if (dec.errors() > 0) {
    index_.truncated = true;
    index_.problem = dec.last_error();
  }
}

void Reader::fill_info() {
  const AVStream* st = input_->stream();
  const AVCodecParameters* par = st->codecpar;
  info_.source = input_->source();
  info_.container = input_->fmt()->iformat->name;
  info_.codec = avcodec_get_name(par->codec_id);
  const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
  info_.pixel_format = pf ? pf : "unknown";
  if (const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(par->format)))
    info_.bit_depth = d->comp[0].depth;
  info_.rotation = display_rotation_cw(st);
  info_.coded_width = par->width;
  info_.coded_height = par->height;
  const bool swap = info_.rotation == 90 || info_.rotation == 270;
  info_.width = swap ? par->height : par->width;
  info_.height = swap ? par->width : par->height;
  const AVRational rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
  info_.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
  info_.frames = index_.size();
  info_.keyframes = std::count(index_.key.begin(), index_.key.end(), 1);
  if (input_->fmt()->duration != AV_NOPTS_VALUE && input_->fmt()->duration > 0)
    info_.duration = static_cast<double>(input_->fmt()->duration) / AV_TIME_BASE;
  else if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
    info_.duration = st->duration * av_q2d(st->time_base);
  else if (info_.frames > 0)
    info_.duration = index_.seconds(info_.frames - 1) + (info_.fps > 0 ? 1.0 / info_.fps : 0.0);
  info_.truncated = index_.truncated;
  info_.problem = index_.problem;
}

int64_t Reader::index_at(double seconds) const {
  const int64_t n = index_.size();
  if (n == 0) throw VideoError(ErrorKind::kBadRequest, info_.source, "the video has no frames");
  if (!(seconds >= 0) || seconds > std::max(info_.duration, index_.seconds(n - 1)))
    throw VideoError(ErrorKind::kBadRequest, info_.source,
                     "time " + std::to_string(seconds) + " s outside the video (" + std::to_string(info_.duration) + " s)");
  return index_.at_time(seconds);
}

Geometry Reader::geometry(const FrameSize& size) const {
  return plan_geometry(info_.width, info_.height, info_.rotation, size, info_.source);
}

int64_t Reader::map_timestamp(int64_t ts) const {
  if (index_.by_order) return cur_ + 1 < index_.size() ? cur_ + 1 : -1;
  int64_t idx = index_.find(ts);
  // Equal timestamps (broken muxers): later frames take the next entries.
  while (idx >= 0 && idx <= cur_ && idx + 1 < index_.size() && index_.pts[idx + 1] == ts) ++idx;
  return idx;
}

bool Reader::start_session(int64_t keyframe, ReadReport* report) {
  ++report->seeks;
  cur_ = -1;
  if (!index_.by_order && decoder_->seek(index_.pts[keyframe])) return true;
  // Not seekable (a pipe or live URL) or counted by order: reopen and decode from the start.
  auto fresh = input_->reopen();
  decoder_.reset();
  input_ = std::move(fresh);
  decoder_ = std::make_unique<Decoder>(*input_, decoder_options_);
  return true;
}

ReadReport Reader::read(const std::vector<int64_t>& indices, const FrameSize& size, uint8_t* dst) {
  const int64_t n = index_.size();
  for (int64_t i : indices)
    if (i < 0 || i >= n)
      throw VideoError(ErrorKind::kBadRequest, info_.source,
                       "frame index " + std::to_string(i) + " outside [0, " + std::to_string(n) + ")");
  const Geometry g = geometry(size);
  const int64_t fb = g.frame_bytes();
  std::vector<std::pair<int64_t, size_t>> order;  // (frame, slot), sorted so each target is decoded once
  for (size_t k = 0; k < indices.size(); ++k) order.emplace_back(indices[k], k);
  std::sort(order.begin(), order.end());

  ReadReport r;
  decoder_->clear_errors();  // the report speaks of this call only
  size_t oi = 0;
  // Fills every slot that asks for frame order[oi].first with `f` (nullptr: missing, zeros).
  auto resolve = [&](const AVFrame* f) {
    const int64_t idx = order[oi].first;
    uint8_t* first = dst + order[oi].second * fb;
    if (f) converter_->convert(f, g, first); else std::memset(first, 0, fb);
    if (!f) r.missing.push_back(idx);
    int64_t slots = 1;
    for (++oi; oi < order.size() && order[oi].first == idx; ++oi, ++slots)
      std::memcpy(dst + order[oi].second * fb, first, fb);
    if (f) r.decoded += slots;
  };

  while (oi < order.size()) {
    const int64_t t = order[oi].first;
    const int64_t k = index_.keyframe_at_or_before(t);
    int64_t seek_key = k, attempts = 0;
    bool seen = true;  // decoded a frame before t in this session (continuing: yes)
    // Decode forward unless a seek skips enough frames to pay for itself (flushing and
    // refilling the decoder costs about kSeekCostFrames decoded frames).
    if (!(cur_ >= 0 && cur_ < t && k - (cur_ + 1) <= kSeekCostFrames)) {
      start_session(k, &r);
      seen = false;
    }
    while (true) {
      AVFrame* f = decoder_->next();
      const int64_t idx = f ? map_timestamp(Decoder::timestamp(f)) : -1;
      if (f) ++r.frames_decoded;
      if (f && idx < 0) continue;  // not an indexed frame (e.g. a leading picture after a seek)
      if (f && idx < t) {
        cur_ = idx;
        seen = true;
        continue;
      }
      if (!seen && (!f || idx > t) && attempts < 2 && seek_key > 0) {  // the seek landed past t: start earlier
        seek_key = ++attempts == 1 ? index_.keyframe_at_or_before(seek_key - 1) : 0;
        start_session(seek_key, &r);
        continue;
      }
      if (!f) {  // end of data before t: later targets would decode the same packets
        cur_ = -1;
        while (oi < order.size()) resolve(nullptr);
        break;
      }
      cur_ = idx;
      while (oi < order.size() && order[oi].first <= idx) resolve(order[oi].first == idx ? f : nullptr);
      break;
    }
  }
  if (!r.missing.empty())
    r.problem = !decoder_->last_error().empty() ? decoder_->last_error()
                : index_.truncated             ? index_.problem
                                               : "the decoder produced no frame for them";
  return r;
}

ReadReport Reader::scan(const FrameSize& size, const FrameCallback& fn) {
  const Geometry g = geometry(size);
  AvBufferPtr buf(static_cast<uint8_t*>(av_malloc(g.frame_bytes() + 64)));
  if (!buf) throw std::bad_alloc();
  ReadReport r;
  decoder_->clear_errors();
  const int64_t n = index_.size();
  if (n == 0) return r;
  start_session(0, &r);
  int64_t expected = 0;
  while (AVFrame* f = decoder_->next()) {
    ++r.frames_decoded;
    const int64_t idx = map_timestamp(Decoder::timestamp(f));
    if (idx < 0 || idx <= cur_) continue;
    for (; expected < idx; ++expected) r.missing.push_back(expected);
    converter_->convert(f, g, buf.get());
    cur_ = idx;
    expected = idx + 1;
    ++r.decoded;
    if (!fn(idx, buf.get())) return r;
  }
  cur_ = -1;
  for (; expected < n; ++expected) r.missing.push_back(expected);
  if (!r.missing.empty())
    r.problem = !decoder_->last_error().empty() ? decoder_->last_error() : index_.truncated ? index_.problem : "no frame decoded";
  return r;
}

}  // namespace trecvit::video

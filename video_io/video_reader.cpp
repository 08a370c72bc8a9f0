#include "video_io/video_reader.h"

#include <numeric>

#include "video_io/error.h"

namespace trecvit::video {

VideoReader::VideoReader(const std::string& path_or_url, const ReaderOptions& options) : reader_(path_or_url, options) {}

VideoReader::VideoReader(Bytes data, const ReaderOptions& options, const std::string& name)
    : reader_(std::move(data), options, name) {}

ReadReport VideoReader::read_into(const std::vector<int64_t>& indices, const FrameSize& size, torch::Tensor& out) {
  const Geometry g = reader_.geometry(size);
  const std::vector<int64_t> want{static_cast<int64_t>(indices.size()), g.out_h, g.out_w, 3};
  if (!out.defined() || out.scalar_type() != torch::kByte || !out.is_contiguous() || out.sizes() != want ||
      !out.device().is_cpu())
    throw VideoError(ErrorKind::kBadRequest, info().source,
                     "output must be a contiguous CPU uint8 tensor of shape " + c10::str(c10::IntArrayRef(want)));
  return reader_.read(indices, size, out.data_ptr<uint8_t>());
}

torch::Tensor VideoReader::frames(const std::vector<int64_t>& indices, const FrameSize& size, ReadReport* report) {
  const Geometry g = reader_.geometry(size);
  auto out = torch::empty({static_cast<int64_t>(indices.size()), g.out_h, g.out_w, 3}, torch::kByte);
  *report = read_into(indices, size, out);
  return out;
}

torch::Tensor VideoReader::frames(const std::vector<int64_t>& indices, const FrameSize& size) {
  ReadReport report;
  auto out = frames(indices, size, &report);
  if (!report.complete()) {
    std::string list;
    for (size_t i = 0; i < report.missing.size() && i < 10; ++i) list += (i ? ", " : "") + std::to_string(report.missing[i]);
    if (report.missing.size() > 10) list += ", ...";
    throw VideoError(ErrorKind::kIncomplete, info().source,
                     std::to_string(report.missing.size()) + " of the requested frames could not be decoded (" + list +
                         "); " + std::to_string(info().frames) + " frames indexed",
                     report.problem);
  }
  return out;
}

torch::Tensor VideoReader::clip(int64_t start, int64_t count, int64_t stride, const FrameSize& size) {
  if (count < 1 || stride < 1 || start < 0 || start + (count - 1) * stride >= info().frames)
    throw VideoError(ErrorKind::kBadRequest, info().source,
                     "clip start " + std::to_string(start) + ", count " + std::to_string(count) + ", stride " +
                         std::to_string(stride) + " does not fit in " + std::to_string(info().frames) + " frames");
  std::vector<int64_t> idx(count);
  for (int64_t i = 0; i < count; ++i) idx[i] = start + i * stride;
  return frames(idx, size);
}

torch::Tensor VideoReader::frames_at(const std::vector<double>& seconds, const FrameSize& size) {
  std::vector<int64_t> idx;
  for (double s : seconds) idx.push_back(reader_.index_at(s));
  return frames(idx, size);
}

torch::Tensor VideoReader::all(const FrameSize& size) {
  std::vector<int64_t> idx(info().frames);
  std::iota(idx.begin(), idx.end(), 0);
  return frames(idx, size);
}

FrameSize model_input_size(int64_t height, int64_t width) {
  const int side = static_cast<int>(std::max(height, width));
  return FrameSize::short_side_crop(side, static_cast<int>(width), static_cast<int>(height));
}

}  // namespace trecvit::video

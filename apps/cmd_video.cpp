// probe, frames: the video_io reader from the command line.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/args.h"
#include "apps/commands.h"
#include "blocks/file_safety.h"
#include "video_io/error.h"
#include "video_io/image_file.h"
#include "video_io/md5.h"
#include "video_io/reader.h"
#include "blocks/parse_number.h"

extern "C" {
#include <libavutil/log.h>
}

namespace trecvit::cli {
namespace {

using video::ErrorKind;
using video::VideoError;

// "0,10,20" or ranges "0-9" (inclusive), mixed.
constexpr int64_t kMaxIndices = 1 << 20;

std::vector<int64_t> parse_indices(const std::string& s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    const size_t dash = item.find('-', 1);
    const auto a = parse_int(item.substr(0, dash));
    const auto b = dash == std::string::npos ? a : parse_int(item.substr(dash + 1));
    const bool ok = a && b && *a >= 0 && *b >= *a && *b - *a < kMaxIndices - int64_t(out.size());
    if (ok) {
      for (int64_t i = *a; i <= *b; ++i) out.push_back(i);
    } else {
      throw CLI::ValidationError("--indices", "'" + item + "' is not an index >= 0 or a range A-B (at most " +
                                                  std::to_string(kMaxIndices) + " frames in all)");
    }
    pos = comma + 1;
  }
  return out;
}

video::FrameSize parse_size(const std::string& s) {
  if (s.empty()) return video::FrameSize::native();
  int w = 0, h = 0;
  char x = 0, extra = 0;
  if (std::sscanf(s.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0)
    throw CLI::ValidationError("--size", "expected WxH, e.g. 224x224, got '" + s + "'");
  return video::FrameSize::exact(w, h);
}

video::ReaderOptions reader_options(int decode_threads) {
  video::ReaderOptions o;
  o.decoder.threads = decode_threads;
  return o;
}

nlohmann::json info_json(const video::Reader& r, bool timestamps) {
  const auto& i = r.info();
  nlohmann::json j = {{"source", i.source},     {"container", i.container},   {"codec", i.codec},
                      {"pixel_format", i.pixel_format}, {"bit_depth", i.bit_depth}, {"width", i.width},
                      {"height", i.height},     {"coded_width", i.coded_width}, {"coded_height", i.coded_height},
                      {"rotation", i.rotation}, {"fps", i.fps},             {"duration", i.duration},
                      {"frames", i.frames},     {"keyframes", i.keyframes}, {"truncated", i.truncated}};
  if (i.truncated) j["problem"] = i.problem;
  if (timestamps) {
    j["timestamps"] = nlohmann::json::array();
    for (int64_t k = 0; k < i.frames; ++k) j["timestamps"].push_back(r.timestamp(k));
  }
  return j;
}

void print_info(const video::Reader& r) {
  const auto& i = r.info();
  fmt::print("{}: {} {} {}x{}{}, {} ({}-bit)\n", i.source, i.container, i.codec, i.width, i.height,
             i.rotation ? fmt::format(" (stored {}x{}, rotated {} deg)", i.coded_width, i.coded_height, i.rotation) : "",
             i.pixel_format, i.bit_depth);
  fmt::print("frames: {} (exact, indexed), keyframes: {}, fps: {:.3f} (nominal), duration: {:.3f} s\n", i.frames,
             i.keyframes, i.fps, i.duration);
  if (i.truncated) fmt::print("truncated: {}\n", i.problem);
}

}  // namespace

void add_video_commands(CLI::App& app, Global& g) {
  {
    auto* cmd = app.add_subcommand("probe", "metadata of a video, with the exact frame count from an index pass");
    static std::string path;
    static bool json = false, timestamps = false;
    cmd->add_option("video", path, "video file or URL")->required();
    cmd->add_flag("--json", json, "print one JSON object");
    cmd->add_flag("--timestamps", timestamps, "include every frame's presentation time (seconds)");
    cmd->callback([] {
      video::set_ffmpeg_log_level(AV_LOG_FATAL);  // failures are reported by video_io itself
      video::Reader r(path, reader_options(1));
      if (json) std::cout << dump(info_json(r, timestamps), 2) << "\n";
      else print_info(r);
    });
  }
  {
    auto* cmd = app.add_subcommand("frames", "decode frames by index to images, or print their MD5 (RGB24)");
    static std::string path, indices, size, out, format = "png";
    static bool md5 = false;
    static int decode_threads = 1;
    cmd->add_option("video", path, "video file or URL")->required();
    cmd->add_option("--indices", indices, "frame indices: 0,10,20 or ranges 0-15")->required();
    cmd->add_option("--size", size, "resize to WxH (default: native size, as displayed)");
    auto* o = cmd->add_option("--out", out, "directory for frame_NNNNNN.<format> files");
    auto* m = cmd->add_flag("--md5", md5, "print 'INDEX MD5' per frame (MD5 of the packed RGB24 bytes)");
    o->excludes(m);
    cmd->add_option("--format", format, "image format for --out")->check(one_of({"png", "ppm"}));
    cmd->add_option("--decode-threads", decode_threads, "decoder threads (0: FFmpeg's choice)")->check(at_least(0));
    cmd->callback([] {
      if (out.empty() == !md5) throw CLI::ValidationError("frames: give exactly one of --out DIR, --md5");
      const auto idx = parse_indices(indices);
      const auto fs = parse_size(size);
      video::set_ffmpeg_log_level(AV_LOG_FATAL);
      video::Reader r(path, reader_options(decode_threads));
      const auto geo = r.geometry(fs);
      const double need = double(geo.frame_bytes()) * double(idx.size()), have = physical_memory_bytes();
      if (need > have / 2)
        throw CLI::ValidationError("--indices", std::to_string(idx.size()) + " frames of " + std::to_string(geo.frame_bytes()) +
                                                    " bytes need " + fmt::format("{:.3g}", need / 1e9) + " GB, more than half of this machine's " +
                                                    fmt::format("{:.3g}", have / 1e9) + " GB");
      std::vector<uint8_t> buf(static_cast<size_t>(geo.frame_bytes()) * idx.size());
      const auto report = r.read(idx, fs, buf.data());
      if (!out.empty()) std::filesystem::create_directories(out);
      for (size_t k = 0; k < idx.size(); ++k) {
        if (std::binary_search(report.missing.begin(), report.missing.end(), idx[k])) continue;
        const uint8_t* frame = buf.data() + k * geo.frame_bytes();
        if (md5) {
          fmt::print("{} {}\n", idx[k], video::md5_hex(frame, geo.frame_bytes()));
        } else {
          const auto file = fmt::format("{}/frame_{:06d}.{}", out, idx[k], format);
          video::write_rgb_image(file, frame, geo.out_w, geo.out_h);
        }
      }
      std::cout.flush();
      if (!report.complete())
        throw VideoError(ErrorKind::kIncomplete, path,
                         fmt::format("{} of {} requested frames decoded; missing {}", report.decoded, idx.size(),
                                     fmt::join(report.missing, ",")),
                         report.problem);
      if (!out.empty()) fmt::print(stderr, "wrote {} frames ({}x{}) to {}\n", idx.size(), geo.out_w, geo.out_h, out);
    });
  }
}

}  // namespace trecvit::cli

#pragma once
// Helpers for the video_io suites: test videos made with the ffmpeg CLI in a temp dir, and
// the CLI's own answers (ffprobe frame counts and timestamps, RGB24 frame MD5s) to check
// the reader against.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "video_io/reader.h"

namespace trecvit::test {

// A fresh temporary directory, removed when the test process exits.
inline std::string video_temp_dir() {
  struct Cleanup {
    std::vector<std::string> dirs;
    ~Cleanup() {
      std::error_code ec;
      for (auto& d : dirs) std::filesystem::remove_all(d, ec);
    }
  };
  static Cleanup cleanup;
  cleanup.dirs.push_back(temp_dir());
  return cleanup.dirs.back();
}

// Reader options that always run the index pass (tests must not depend on a cache's state).
inline video::ReaderOptions no_cache() {
  video::ReaderOptions o;
  o.index_cache.mode = video::IndexCacheMode::kOff;
  return o;
}

inline std::string must_shell(const std::string& cmd) {
  std::string out;
  const int rc = run_command(cmd, &out);
  if (rc != 0) throw std::runtime_error("command failed (" + std::to_string(rc) + "): " + cmd + "\n" + out);
  return out;
}

// ffmpeg -f lavfi -i SOURCE ARGS DIR/NAME; returns the path.
inline std::string make_video(const std::string& dir, const std::string& name, const std::string& source,
                              const std::string& args) {
  const std::string path = dir + "/" + name;
  must_shell("ffmpeg -nostdin -v error -y -f lavfi -i '" + source + "' " + args + " '" + path + "'");
  return path;
}

// A copy of `path` whose stream carries rotation metadata (set on remux: ffmpeg 5.1 drops
// it when encoding). The CLI then displays it rotated the other way (clockwise 360 - degrees).
inline std::string with_rotation_tag(const std::string& path, int degrees) {
  const std::string out = path.substr(0, path.rfind('.')) + "_rot" + path.substr(path.rfind('.'));
  must_shell("ffmpeg -nostdin -v error -y -i '" + path + "' -c copy -metadata:s:v:0 rotate=" + std::to_string(degrees) +
             " '" + out + "'");
  return out;
}

inline std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// Frames the decoder outputs, as ffprobe counts them.
inline int64_t ffprobe_frame_count(const std::string& path) {
  return std::stoll(must_shell("ffprobe -v quiet -select_streams v:0 -count_frames -show_entries stream=nb_read_frames "
                               "-of csv=p=0 '" + path + "'"));
}

// Presentation times (seconds) of the decoded frames, relative to the first; empty when
// ffprobe has none for some frame (streams without timestamps).
inline std::vector<double> ffprobe_timestamps(const std::string& path) {
  std::vector<double> t;
  for (auto& l : split_lines(must_shell("ffprobe -v quiet -select_streams v:0 -show_entries frame=best_effort_timestamp_time "
                                        "-of csv=p=0 '" + path + "'"))) {
    if (l.rfind("N/A", 0) == 0) return {};
    t.push_back(std::stod(l));
  }
  for (size_t i = t.size(); i-- > 0;) t[i] -= t[0];
  return t;
}

// MD5 of every frame as the CLI decodes it to RGB24 (display order, rotation applied);
// `vf` adds filters before the conversion (e.g. "scale=64:48:flags=bicubic").
inline std::vector<std::string> cli_frame_md5(const std::string& path, const std::string& vf = "") {
  const std::string filters = vf.empty() ? "" : " -vf '" + vf + "'";
  std::vector<std::string> md5;
  for (auto& l : split_lines(must_shell("ffmpeg -nostdin -v quiet -i '" + path + "'" + filters +
                                        " -pix_fmt rgb24 -f framemd5 -"))) {
    if (l[0] == '#') continue;
    md5.push_back(l.substr(l.rfind(' ') + 1));
  }
  return md5;
}

// Resident set size in bytes.
inline int64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace trecvit::test

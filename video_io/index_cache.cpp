#include "video_io/index_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "video_io/md5.h"

namespace trecvit::video {
namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'T', 'R', 'V', 'I', 'D', 'X', '0', '2'};

struct FileStamp {
  int64_t size = -1, mtime_ns = -1;
};

std::optional<FileStamp> stamp(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileStamp{static_cast<int64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("TRECVIT_CACHE_DIR"); d && *d) return std::string(d) + "/index";
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::string(d) + "/trecvit/index";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/trecvit/index";
  return "";
}

template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
bool get(const std::string& in, size_t& at, T* v) {
  if (at + sizeof(T) > in.size()) return false;
  std::memcpy(v, in.data() + at, sizeof(T));
  at += sizeof(T);
  return true;
}

}  // namespace

std::string index_cache_path(const std::string& path, const IndexCacheOptions& options) {
  if (options.mode == IndexCacheMode::kOff || !stamp(path)) return "";
  if (options.mode == IndexCacheMode::kBeside) return path + ".trecvit-index";
  const std::string dir = options.dir.empty() ? default_cache_dir() : options.dir;
  if (dir.empty()) return "";
  std::error_code ec;
  const std::string canonical = fs::weakly_canonical(path, ec).string();
  const std::string key = ec ? path : canonical;
  return dir + "/" + md5_hex(reinterpret_cast<const uint8_t*>(key.data()), key.size()) + ".idx";
}

std::optional<FrameIndex> load_cached_index(const std::string& video_path, const std::string& cache_path,
                                            int stream) {
  const auto now = stamp(video_path);
  if (!now || cache_path.empty()) return std::nullopt;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(cache_path, ec)) return std::nullopt;  // a FIFO would block
  std::ifstream f(cache_path, std::ios::binary);
  if (!f) return std::nullopt;
  const std::string in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (in.size() < sizeof(kMagic) || std::memcmp(in.data(), kMagic, sizeof(kMagic)) != 0) return std::nullopt;
  size_t at = sizeof(kMagic);
  FileStamp was;
  int32_t stream_was = 0, tb_num = 0, tb_den = 0;
  uint8_t truncated = 0, by_order = 0;
  int64_t n = 0;
  if (!get(in, at, &was.size) || !get(in, at, &was.mtime_ns) || !get(in, at, &stream_was) ||
      !get(in, at, &tb_num) || !get(in, at, &tb_den) || !get(in, at, &truncated) || !get(in, at, &by_order) ||
      !get(in, at, &n))
    return std::nullopt;
  // Stale (the file changed) or damaged: rebuild.
  if (was.size != now->size || was.mtime_ns != now->mtime_ns || stream_was != stream || tb_num <= 0 ||
      tb_den <= 0 || n < 0 || in.size() - at != static_cast<size_t>(n) * (sizeof(int64_t) + 1))
    return std::nullopt;
  FrameIndex index;
  index.tb_num = tb_num;
  index.tb_den = tb_den;
  index.truncated = truncated != 0;
  index.by_order = by_order != 0;
  if (index.truncated) index.problem = "truncated (from the cached index)";
  index.pts.resize(n);
  index.key.resize(n);
  std::memcpy(index.pts.data(), in.data() + at, n * sizeof(int64_t));
  std::memcpy(index.key.data(), in.data() + at + n * sizeof(int64_t), n);
  return index;
}

bool save_cached_index(const std::string& video_path, const std::string& cache_path, int stream,
                       const FrameIndex& index) {
  const auto now = stamp(video_path);
  if (!now || cache_path.empty()) return false;
  std::string out(kMagic, sizeof(kMagic));
  put(out, now->size);
  put(out, now->mtime_ns);
  put(out, static_cast<int32_t>(stream));
  put(out, static_cast<int32_t>(index.tb_num));
  put(out, static_cast<int32_t>(index.tb_den));
  put(out, static_cast<uint8_t>(index.truncated));
  put(out, static_cast<uint8_t>(index.by_order));
  put(out, static_cast<int64_t>(index.size()));
  out.append(reinterpret_cast<const char*>(index.pts.data()), index.pts.size() * sizeof(int64_t));
  out.append(reinterpret_cast<const char*>(index.key.data()), index.key.size());
  std::error_code ec;
  fs::create_directories(fs::path(cache_path).parent_path(), ec);
  // Write then rename, so concurrent readers never see half a file.
  const std::string tmp = cache_path + ".tmp" + std::to_string(::getpid()) + "." +
                          std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f || !f.write(out.data(), static_cast<std::streamsize>(out.size()))) {
      fs::remove(tmp, ec);
      return false;
    }
  }
  fs::rename(tmp, cache_path, ec);
  if (ec) fs::remove(tmp, ec);
  return !ec;
}

}  // namespace trecvit::video

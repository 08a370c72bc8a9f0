#pragma once
// Files read and written safely. Inputs are opened only when they are regular files: a named
// pipe given as a config, an annotation list or a checkpoint would otherwise block the open (or
// the first read) forever, and a directory surfaces as a stream error. Outputs are written to a
// temporary beside them (NAME.tmp.PID) and renamed into place; temporaries a killed process
// left behind are removed the next time the folder is written. Header-only and Torch-free, so
// every library (and the fuzz targets) can use it; callers throw their own error types.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "blocks/parse_number.h"

namespace trecvit {

// Lookups that never throw: a path that cannot even be looked up (a name too long, a loop of
// links, a component that is not a folder) counts as absent, as a missing file does.
inline bool path_exists(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}
inline bool is_folder(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec);
}
inline bool is_plain_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

// "" when `path` is a readable regular file, else why not ("no such file", "is a directory",
// "is a named pipe, not a regular file", ...).
inline std::string unreadable_reason(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno == ENOENT ? "no such file" : std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return "is a directory, not a file";
  if (S_ISFIFO(st.st_mode)) return "is a named pipe, not a regular file";
  if (!S_ISREG(st.st_mode)) return "is a device or socket, not a regular file";
  if (::access(path.c_str(), R_OK) != 0) return std::string("cannot be read (") + std::strerror(errno) + ")";
  return "";
}

// "" when nothing is at `path` or it is a readable regular file (for files that may be absent).
inline std::string unreadable_if_present(const std::string& path) {
  const std::string why = unreadable_reason(path);
  return why == "no such file" ? "" : why;
}

// The whole of the regular file at `path` into `out`; false with `why` set when it is not one or
// cannot be read.
inline bool read_regular_file(const std::string& path, std::string& out, std::string& why) {
  why = unreadable_reason(path);
  if (!why.empty()) return false;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    why = std::string("cannot be opened (") + std::strerror(errno) + ")";
    return false;
  }
  out.clear();
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) why = "cannot be read";
  return !failed;
}

// A JSON library error as a sentence: without nlohmann's "[json.exception.parse_error.101] " tag.
inline std::string plain_json_error(const std::exception& e) {
  const std::string s = e.what();
  const auto tag = s.rfind("[json.exception.", 0) == 0 ? s.find("] ") : std::string::npos;
  return tag == std::string::npos ? s : s.substr(tag + 2);
}

// Physical memory of this machine, for estimates made before a large allocation.
inline double physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? double(pages) * double(size) : 1e18;
}

inline std::string temporary_path(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

// Writes `content` to a temporary beside `path`, syncs it and renames it into place; "" on
// success, else why not (and the temporary is gone): a full disk never leaves a torn file.
inline std::string write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = temporary_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return std::string("cannot be written (") + std::strerror(errno) + ")";
  std::string error;
  for (size_t done = 0; done < content.size() && error.empty();) {
    const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) error = std::string("write failed (") + (w < 0 ? std::strerror(errno) : "no progress") + ")";
    else done += static_cast<size_t>(w);
  }
  if (error.empty() && ::fsync(fd) != 0) error = std::string("write failed (") + std::strerror(errno) + ")";
  if (::close(fd) != 0 && error.empty()) error = std::string("write failed (") + std::strerror(errno) + ")";
  if (error.empty() && std::rename(tmp.c_str(), path.c_str()) != 0)
    error = std::string("cannot be replaced (") + std::strerror(errno) + ")";
  if (!error.empty()) std::remove(tmp.c_str());
  return error;
}

// Appends `line` and a newline to `path` in one write; "" on success, else why not.
inline std::string append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return std::string("cannot be written (") + std::strerror(errno) + ")";
  const std::string all = line + "\n";
  ssize_t w;
  do w = ::write(fd, all.data(), all.size());
  while (w < 0 && errno == EINTR);
  std::string error;
  if (w != static_cast<ssize_t>(all.size()))
    error = std::string("write failed (") + (w < 0 ? std::strerror(errno) : "short write") + ")";
  if (::close(fd) != 0 && error.empty()) error = std::string("write failed (") + std::strerror(errno) + ")";
  if (!error.empty() && w > 0) {  // a torn line would be read as the end of the file
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && st.st_size >= w) (void)::truncate(path.c_str(), st.st_size - w);
  }
  return error;
}

// Removes the NAME.tmp.PID files in `dir` whose process is gone; returns how many.
inline int remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  int removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const auto at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 == name.size()) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(*parse_int(digits));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    if (std::filesystem::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace trecvit

#pragma once
// On-disk cache of FrameIndex for files, keyed by the canonical path and invalidated when the
// file's size or modification time changes. A cache that cannot be read or written is
// ignored (the index is rebuilt); it never changes what a reader returns.
#include <optional>
#include <string>

#include "video_io/frame_index.h"

namespace trecvit::video {

enum class IndexCacheMode {
  kOff,     // always run the index pass
  kDir,     // one file per video in a cache directory
  kBeside,  // VIDEO.trecvit-index next to the video
};

struct IndexCacheOptions {
  IndexCacheMode mode = IndexCacheMode::kDir;
  // kDir: "" means $TRECVIT_CACHE_DIR, else $XDG_CACHE_HOME/trecvit, else ~/.cache/trecvit
  // (each plus /index).
  std::string dir;
};

// Where the index of `path` is cached, or "" when not cached (mode off, not a local file).
std::string index_cache_path(const std::string& path, const IndexCacheOptions& options);

std::optional<FrameIndex> load_cached_index(const std::string& video_path, const std::string& cache_path,
                                            int stream);
// Best effort: returns false when the cache could not be written.
bool save_cached_index(const std::string& video_path, const std::string& cache_path, int stream,
                       const FrameIndex& index);

}  // namespace trecvit::video

#include "datasets/tfrecord.h"

#include <cstring>
#include <vector>

#include "blocks/file_safety.h"
#include "datasets/annotations.h"
#include "datasets/crc32c.h"

namespace trecvit::data {
namespace {

constexpr int64_t kHeader = 12, kFooter = 4;

uint64_t le64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t le32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

bool header_valid(const char* h) { return masked_crc32c(h, 8) == le32(h + 8); }

// Reads at absolute positions through a window of at least 1 MiB: one system call per window,
// not three per record; the file is never read whole.
class File {
 public:
  explicit File(const std::string& path) : path_(path), in_(open(path)) {
    if (!in_) throw DatasetError(path + ": cannot open");
    in_.seekg(0, std::ios::end);
    size_ = in_.tellg();
    if (size_ < 0) throw DatasetError(path + ": cannot read (not a regular file?)");
  }
  static std::ifstream open(const std::string& path) {
    if (const auto why = unreadable_reason(path); !why.empty()) throw DatasetError(path + ": " + why);
    return std::ifstream(path, std::ios::binary);
  }
  int64_t size() const { return size_; }
  void read(int64_t at, char* dst, int64_t n) {
    if (at < start_ || at + n > start_ + int64_t(window_.size())) {
      const int64_t len = std::min(std::max<int64_t>(n, kWindow), size_ - at);
      window_.resize(size_t(std::max<int64_t>(len, 0)));
      in_.clear();
      in_.seekg(at);
      in_.read(window_.data(), std::streamsize(window_.size()));
      start_ = at;
      if (in_.gcount() != std::streamsize(window_.size()) || len < n)
        throw DatasetError(path_ + ": read error at byte " + std::to_string(at));
    }
    std::memcpy(dst, window_.data() + (at - start_), size_t(n));
  }

 private:
  static constexpr int64_t kWindow = 1 << 20;
  std::string path_;
  std::ifstream in_;
  int64_t size_ = 0, start_ = 0;
  std::vector<char> window_;
};

// The next offset after `from` where a header with a matching CRC and a record that fits the
// file begins, or -1.
int64_t resync(File& f, int64_t from) {
  constexpr int64_t kChunk = 1 << 16;
  std::vector<char> buf(kChunk + kHeader);
  for (int64_t at = from; at + kHeader <= f.size(); at += kChunk) {
    const int64_t n = std::min<int64_t>(kChunk + kHeader, f.size() - at);
    f.read(at, buf.data(), n);
    for (int64_t i = 0; i + kHeader <= n && i < kChunk; ++i)
      if (at + i + kHeader + kFooter <= f.size() && header_valid(buf.data() + i)) {
        const uint64_t len = le64(buf.data() + i);
        if (len <= uint64_t(f.size() - (at + i) - kHeader - kFooter)) return at + i;
      }
  }
  return -1;
}

}  // namespace

TFRecordScan read_tfrecords(const std::string& path,
                            const std::function<void(int64_t, std::string_view)>& on_record,
                            const std::function<void(const TFRecordProblem&)>& on_problem) {
  File f(path);
  TFRecordScan scan;
  auto problem = [&](int64_t at, std::string reason) {
    ++scan.problems;
    if (on_problem) on_problem({path, at, std::move(reason)});
  };
  std::string data;
  char head[kHeader], foot[kFooter];
  int64_t at = 0;
  while (at < f.size()) {
    if (f.size() - at < kHeader) {
      problem(at, "truncated record header (" + std::to_string(f.size() - at) + " of 12 bytes)");
      break;
    }
    f.read(at, head, kHeader);
    if (!header_valid(head)) {
      const int64_t next = resync(f, at + 1);
      problem(at, "length CRC mismatch" + (next < 0 ? std::string(" (no later record found)")
                                                    : " (skipped " + std::to_string(next - at) + " bytes)"));
      if (next < 0) break;
      at = next;
      continue;
    }
    const uint64_t len = le64(head);
    if (len > uint64_t(f.size() - at - kHeader) || f.size() - at - kHeader - int64_t(len) < kFooter) {
      problem(at, "truncated record (length " + std::to_string(len) + ", " +
                      std::to_string(f.size() - at - kHeader) + " bytes left)");
      break;
    }
    data.resize(len);
    f.read(at + kHeader, data.data(), int64_t(len));
    f.read(at + kHeader + int64_t(len), foot, kFooter);
    const int64_t next = at + kHeader + int64_t(len) + kFooter;
    if (masked_crc32c(data.data(), data.size()) != le32(foot)) {
      problem(at, "data CRC mismatch");
      // A record cut short inside the file: its length overshoots, so look for the next header
      // from just after this one instead of trusting it.
      char probe[kHeader];
      if (next < f.size() && (f.size() - next < kHeader || (f.read(next, probe, kHeader), !header_valid(probe)))) {
        const int64_t found = resync(f, at + kHeader);
        if (found < 0) break;
        at = found;
        continue;
      }
    } else {
      ++scan.records;
      on_record(at, data);
    }
    at = next;
  }
  return scan;
}

TFRecordWriter::TFRecordWriter(const std::string& path) : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
  if (!out_) throw DatasetError(path + ": cannot create");
}

TFRecordWriter::~TFRecordWriter() {
  try {
    close();
  } catch (...) {  // destructors must not throw; call close() to see the error
  }
}

void TFRecordWriter::write(std::string_view data) {
  char head[kHeader], foot[kFooter];
  const uint64_t len = data.size();
  std::memcpy(head, &len, 8);
  const uint32_t lc = masked_crc32c(head, 8), dc = masked_crc32c(data.data(), data.size());
  std::memcpy(head + 8, &lc, 4);
  std::memcpy(foot, &dc, 4);
  out_.write(head, kHeader);
  out_.write(data.data(), std::streamsize(data.size()));
  out_.write(foot, kFooter);
  if (!out_) throw DatasetError(path_ + ": write failed (disk full?)");
  ++records_;
}

void TFRecordWriter::close() {
  if (!out_.is_open()) return;
  out_.flush();
  const bool ok = bool(out_);
  out_.close();
  if (!ok) throw DatasetError(path_ + ": write failed (disk full?)");
}

}  // namespace trecvit::data

#pragma once
// TFRecord files (uncompressed), the container NEVIS shards use:
//   uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)
// all little-endian. Reading verifies both CRCs; a damaged record is reported with its byte
// offset and skipped, and reading goes on with the next record that can be found.
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>

namespace trecvit::data {

struct TFRecordProblem {
  std::string file;
  int64_t offset = 0;  // where the damaged record starts
  std::string reason;
};

struct TFRecordScan {
  int64_t records = 0;   // good records delivered
  int64_t problems = 0;  // damaged records reported
};

// Calls on_record(offset, data) for every record whose CRCs match and on_problem for each one
// that is damaged: a length-CRC mismatch (then the next valid header is searched for byte by
// byte), a data-CRC mismatch (the record is skipped), or a truncated end. A zero-length file is
// no records. Throws DatasetError only when the file cannot be opened or read at all.
TFRecordScan read_tfrecords(const std::string& path,
                            const std::function<void(int64_t offset, std::string_view data)>& on_record,
                            const std::function<void(const TFRecordProblem&)>& on_problem);

// Appends records to a file; close() (or the destructor) flushes. Throws DatasetError on a
// write failure, naming the file.
class TFRecordWriter {
 public:
  explicit TFRecordWriter(const std::string& path);
  ~TFRecordWriter();
  void write(std::string_view data);
  void close();
  int64_t records() const { return records_; }

 private:
  std::string path_;
  std::ofstream out_;
  int64_t records_ = 0;
};

}  // namespace trecvit::data

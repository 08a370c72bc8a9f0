// libFuzzer target for the record and annotation readers: arbitrary bytes as a TFRecord shard,
// a tf.train.Example, an SSv2 labels + annotation pair, a Kinetics CSV or a path,label list.
// DatasetError and ExampleParseError are expected outcomes (each a sentence naming the file);
// any other exception, a crash, a hang or a sanitizer report is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "datasets/annotations.h"
#include "datasets/tf_example.h"
#include "datasets/tfrecord.h"

using namespace trecvit::data;

namespace {

const std::string& scratch() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/trecvit_fuzz_records_XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (!d) std::abort();
    return std::string(d);
  }();
  return dir;
}

void put(const std::string& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string& dir = scratch();
  try {
    switch (data[0] % 5) {
      case 0:
        parse_example(in);
        break;
      case 1: {
        put(dir + "/shard", in);
        read_tfrecords(
            dir + "/shard", [](int64_t, std::string_view record) {
              try {
                parse_example(record);
              } catch (const ExampleParseError&) {
              }
            },
            [](const TFRecordProblem&) {});
        break;
      }
      case 2: {  // labels.json, NUL, train.json
        const auto cut = in.find('\0');
        put(dir + "/labels.json", in.substr(0, cut));
        put(dir + "/train.json", cut == std::string_view::npos ? std::string_view("[]") : in.substr(cut + 1));
        load_ssv2(dir, "train");
        break;
      }
      case 3:
        put(dir + "/train.csv", in);
        load_kinetics(dir, "train", dir + "/train.csv");
        break;
      case 4:
        put(dir + "/list.csv", in);
        load_csv_list(dir + "/list.csv");
        break;
    }
  } catch (const DatasetError&) {
  } catch (const ExampleParseError&) {
  }
  return 0;
}

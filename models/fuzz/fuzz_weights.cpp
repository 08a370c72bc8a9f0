// libFuzzer target for the weight readers: arbitrary bytes as a .npy array, a .npz archive or a
// trecvit checkpoint. NpyError, CheckpointError and ConfigError are expected outcomes (each a
// sentence naming the file); any other exception, a crash or a sanitizer report is a bug.
// TRECVIT_FUZZ_READER=npy|npz|checkpoint gives every input to one reader (long runs per reader:
// the checkpoint reader is ~100x slower than the others).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "models/checkpoint.h"
#include "models/npz.h"

using namespace trecvit;

namespace {

const std::string& scratch() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/trecvit_fuzz_weights_XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (!d) std::abort();
    return std::string(d);
  }();
  return dir;
}

// 0, 1 or 2 from TRECVIT_FUZZ_READER; -1: the first byte chooses.
int forced_reader() {
  static const int r = [] {
    const char* v = std::getenv("TRECVIT_FUZZ_READER");
    const std::string s = v ? v : "";
    return s == "npy" ? 0 : s == "npz" ? 1 : s == "checkpoint" ? 2 : -1;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string path = scratch() + "/input";
  try {
    switch (forced_reader() >= 0 ? forced_reader() : data[0] % 3) {
      case 0:
        parse_npy(bytes, "fuzz.npy");
        break;
      case 1:
        std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
        read_npz(path);
        break;
      case 2:
        std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
        load_checkpoint(path);
        break;
    }
  } catch (const NpyError&) {
  } catch (const CheckpointError&) {
  } catch (const ConfigError&) {
  }
  return 0;
}

#pragma once
// tf.train.Example, read and written with a small protobuf wire-format codec (field numbers of
// tensorflow/core/example/{example,feature}.proto):
//   Example{Features features = 1}   Features{map<string, Feature> feature = 1}
//   Feature{oneof: BytesList bytes_list = 1, FloatList float_list = 2, Int64List int64_list = 3}
//   BytesList{repeated bytes value = 1}, FloatList{repeated float value = 1 [packed]},
//   Int64List{repeated int64 value = 1 [packed]}
// Packed and unpacked repeated scalars are both accepted, unknown fields skipped, as protobuf does.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace trecvit::data {

struct ExampleFeature {
  enum class Kind { kNone, kBytes, kFloat, kInt64 } kind = Kind::kNone;
  std::vector<std::string> bytes;
  std::vector<float> floats;
  std::vector<int64_t> int64s;
};

struct TFExample {
  std::map<std::string, ExampleFeature> features;
  const ExampleFeature* find(const std::string& name) const;
  void set_bytes(const std::string& name, std::string value);
  void set_int64s(const std::string& name, std::vector<int64_t> values);
  void set_floats(const std::string& name, std::vector<float> values);
};

struct ExampleParseError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws ExampleParseError saying what is malformed (truncated varint, length past the end, ...).
TFExample parse_example(std::string_view wire);
std::string serialize_example(const TFExample& example);

}  // namespace trecvit::data

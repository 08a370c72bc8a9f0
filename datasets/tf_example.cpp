#include "datasets/tf_example.h"

#include <cstring>

namespace trecvit::data {
namespace {

enum Wire { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

class Reader {
 public:
  explicit Reader(std::string_view s, const char* what) : s_(s), what_(what) {}
  bool done() const { return pos_ >= s_.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= s_.size()) fail("truncated varint");
      const uint8_t b = uint8_t(s_[pos_++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > s_.size() - pos_) fail("length " + std::to_string(n) + " runs past the end");
    auto out = s_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint32_t fixed32() {
    if (s_.size() - pos_ < 4) fail("truncated fixed32");
    uint32_t v;
    std::memcpy(&v, s_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  void skip(int wire) {
    switch (wire) {
      case kVarint: varint(); break;
      case kFixed64:
        if (s_.size() - pos_ < 8) fail("truncated fixed64");
        pos_ += 8;
        break;
      case kLen: bytes(); break;
      case kFixed32: fixed32(); break;
      default: fail("unsupported wire type " + std::to_string(wire));
    }
  }
  // (field number, wire type)
  std::pair<uint32_t, int> tag() {
    const uint64_t t = varint();
    if ((t >> 3) == 0) fail("field number 0");
    return {uint32_t(t >> 3), int(t & 7)};
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw ExampleParseError(std::string(what_) + ": " + why + " (at byte " + std::to_string(pos_) + ")");
  }

 private:
  std::string_view s_;
  const char* what_;
  size_t pos_ = 0;
};

float bits_to_float(uint32_t v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}

ExampleFeature parse_feature(std::string_view wire) {
  ExampleFeature f;
  Reader r(wire, "Feature");
  while (!r.done()) {
    auto [field, type] = r.tag();
    if (type != kLen || field < 1 || field > 3) {
      r.skip(type);
      continue;
    }
    Reader list(r.bytes(), field == 1 ? "BytesList" : field == 2 ? "FloatList" : "Int64List");
    f = ExampleFeature{};  // oneof: the last one present wins
    f.kind = field == 1 ? ExampleFeature::Kind::kBytes
                        : field == 2 ? ExampleFeature::Kind::kFloat : ExampleFeature::Kind::kInt64;
    while (!list.done()) {
      auto [vf, vt] = list.tag();
      if (vf != 1) {
        list.skip(vt);
      } else if (field == 1 && vt == kLen) {
        f.bytes.emplace_back(list.bytes());
      } else if (field == 2 && vt == kFixed32) {
        f.floats.push_back(bits_to_float(list.fixed32()));
      } else if (field == 3 && vt == kVarint) {
        f.int64s.push_back(int64_t(list.varint()));
      } else if (field != 1 && vt == kLen) {  // packed
        Reader packed(list.bytes(), "packed values");
        while (!packed.done())
          if (field == 2) f.floats.push_back(bits_to_float(packed.fixed32()));
          else f.int64s.push_back(int64_t(packed.varint()));
      } else {
        list.fail("value of wire type " + std::to_string(vt));
      }
    }
  }
  return f;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(v | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void put_tag(std::string& out, uint32_t field, int wire) { put_varint(out, (uint64_t(field) << 3) | wire); }
void put_bytes(std::string& out, uint32_t field, std::string_view b) {
  put_tag(out, field, kLen);
  put_varint(out, b.size());
  out.append(b);
}

std::string serialize_feature(const ExampleFeature& f) {
  std::string list, packed;
  switch (f.kind) {
    case ExampleFeature::Kind::kBytes:
      for (auto& b : f.bytes) put_bytes(list, 1, b);
      break;
    case ExampleFeature::Kind::kFloat:
      for (float v : f.floats) {
        char b[4];
        std::memcpy(b, &v, 4);
        packed.append(b, 4);
      }
      if (!f.floats.empty()) put_bytes(list, 1, packed);
      break;
    case ExampleFeature::Kind::kInt64:
      for (int64_t v : f.int64s) put_varint(packed, uint64_t(v));
      if (!f.int64s.empty()) put_bytes(list, 1, packed);
      break;
    case ExampleFeature::Kind::kNone: return {};
  }
  std::string out;
  put_bytes(out, f.kind == ExampleFeature::Kind::kBytes ? 1 : f.kind == ExampleFeature::Kind::kFloat ? 2 : 3, list);
  return out;
}

}  // namespace

const ExampleFeature* TFExample::find(const std::string& name) const {
  auto it = features.find(name);
  return it == features.end() ? nullptr : &it->second;
}

void TFExample::set_bytes(const std::string& name, std::string value) {
  auto& f = features[name] = ExampleFeature{};
  f.kind = ExampleFeature::Kind::kBytes;
  f.bytes.push_back(std::move(value));
}

void TFExample::set_int64s(const std::string& name, std::vector<int64_t> values) {
  auto& f = features[name] = ExampleFeature{};
  f.kind = ExampleFeature::Kind::kInt64;
  f.int64s = std::move(values);
}

void TFExample::set_floats(const std::string& name, std::vector<float> values) {
  auto& f = features[name] = ExampleFeature{};
  f.kind = ExampleFeature::Kind::kFloat;
  f.floats = std::move(values);
}

TFExample parse_example(std::string_view wire) {
  TFExample ex;
  Reader r(wire, "Example");
  while (!r.done()) {
    auto [field, type] = r.tag();
    if (field != 1 || type != kLen) {
      r.skip(type);
      continue;
    }
    Reader features(r.bytes(), "Features");
    while (!features.done()) {
      auto [ff, ft] = features.tag();
      if (ff != 1 || ft != kLen) {
        features.skip(ft);
        continue;
      }
      Reader entry(features.bytes(), "Features.feature entry");
      std::string key;
      ExampleFeature value;
      while (!entry.done()) {
        auto [ef, et] = entry.tag();
        if (ef == 1 && et == kLen) key = std::string(entry.bytes());
        else if (ef == 2 && et == kLen) value = parse_feature(entry.bytes());
        else entry.skip(et);
      }
      ex.features[key] = std::move(value);  // a repeated map key: the last one wins
    }
  }
  return ex;
}

std::string serialize_example(const TFExample& example) {
  std::string features;
  for (auto& [name, f] : example.features) {
    std::string entry;
    put_bytes(entry, 1, name);
    put_bytes(entry, 2, serialize_feature(f));
    put_bytes(features, 1, entry);
  }
  std::string out;
  put_bytes(out, 1, features);
  return out;
}

}  // namespace trecvit::data

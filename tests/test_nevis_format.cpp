// NEVIS's on-disk format: CRC32C, TFRecord framing, tf.train.Example, PNG decoding, and the
// dataset loader's handling of every kind of damaged record.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "datasets/annotations.h"
#include "datasets/crc32c.h"
#include "datasets/nevis.h"
#include "datasets/nevis_build.h"
#include "datasets/tf_example.h"
#include "datasets/tfrecord.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace trecvit;
using namespace trecvit::data;

namespace {

std::string png_of(const cv::Mat& m) {
  std::vector<uint8_t> buf;
  EXPECT_TRUE(cv::imencode(".png", m, buf));
  return std::string(buf.begin(), buf.end());
}

std::string example_bytes(const std::string& png, int64_t label) {
  TFExample ex;
  ex.set_bytes("png_encoded_image", png);
  ex.set_int64s("label", {label});
  return serialize_example(ex);
}

std::vector<std::pair<int64_t, std::string>> read_all(const std::string& path, std::vector<TFRecordProblem>* problems) {
  std::vector<std::pair<int64_t, std::string>> out;
  read_tfrecords(
      path, [&](int64_t off, std::string_view d) { out.emplace_back(off, std::string(d)); },
      [&](const TFRecordProblem& p) { problems->push_back(p); });
  return out;
}

void flip_byte(const std::string& path, int64_t at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c;
  f.read(&c, 1);
  c ^= 0x5a;
  f.seekp(at);
  f.write(&c, 1);
}

}  // namespace

TEST(Crc32c, KnownAnswersBothImplementations) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32c(check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(crc32c_portable(check.data(), check.size()), 0xE3069283u);
  // RFC 3720 (iSCSI) B.4 test vectors.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff), inc(32);
  for (int i = 0; i < 32; ++i) inc[i] = uint8_t(i);
  for (auto f : {&crc32c, &crc32c_portable}) {
    EXPECT_EQ(f(zeros.data(), 32), 0x8A9136AAu);
    EXPECT_EQ(f(ones.data(), 32), 0x62A8AB43u);
    EXPECT_EQ(f(inc.data(), 32), 0x46DD794Eu);
  }
  // Every length and alignment: the SSE4.2 path agrees with the table.
  std::vector<uint8_t> buf(300);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 37 + 11);
  for (size_t off = 0; off < 9; ++off)
    for (size_t n = 0; n + off <= buf.size(); n += 7)
      ASSERT_EQ(crc32c(buf.data() + off, n), crc32c_portable(buf.data() + off, n)) << off << " " << n;
  EXPECT_EQ(mask_crc32c(0), 0xa282ead8u);
}

TEST(TFRecord, RoundTripAndEveryCorruptionNamedWithItsOffset) {
  const std::string dir = test::temp_dir(), path = dir + "/data-00000-of-00001";
  std::vector<std::string> records;
  for (int i = 0; i < 6; ++i) records.push_back(std::string(size_t(20 + 13 * i), char('a' + i)));
  {
    TFRecordWriter w(path);
    for (auto& r : records) w.write(r);
    w.close();
  }
  std::vector<TFRecordProblem> problems;
  auto got = read_all(path, &problems);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_TRUE(problems.empty());
  std::vector<int64_t> offsets;
  int64_t at = 0;
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(got[i].second, records[i]);
    EXPECT_EQ(got[i].first, at);
    offsets.push_back(at);
    at += 16 + int64_t(records[i].size());
  }
  EXPECT_EQ(int64_t(fs::file_size(path)), at);

  flip_byte(path, offsets[1] + 12 + 5);  // data of record 1
  flip_byte(path, offsets[3] + 2);       // length of record 3
  fs::resize_file(path, at - 7);         // record 5 cut short
  problems.clear();
  got = read_all(path, &problems);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].offset, offsets[1]);
  EXPECT_NE(problems[0].reason.find("data CRC"), std::string::npos);
  EXPECT_EQ(problems[1].offset, offsets[3]);
  EXPECT_NE(problems[1].reason.find("length CRC"), std::string::npos);
  EXPECT_EQ(problems[2].offset, offsets[5]);
  EXPECT_NE(problems[2].reason.find("truncated"), std::string::npos);
  for (auto& p : problems) EXPECT_EQ(p.file, path);
  ASSERT_EQ(got.size(), 3u);  // 0, 2 and 4 (found again after the bad length)
  EXPECT_EQ(got[0].second, records[0]);
  EXPECT_EQ(got[1].second, records[2]);
  EXPECT_EQ(got[2].second, records[4]);
  EXPECT_EQ(got[2].first, offsets[4]);

  // A record cut short INSIDE the file: its length overshoots into the next record, whose
  // header is then found again.
  {
    const std::string cut = dir + "/cut";
    std::ifstream in(dir + "/data-00000-of-00001", std::ios::binary);
    std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string spliced = whole.substr(0, size_t(offsets[2] - 9)) + whole.substr(size_t(offsets[2]), size_t(offsets[3] - offsets[2]));
    std::ofstream(cut, std::ios::binary) << spliced;
    problems.clear();
    got = read_all(cut, &problems);
    ASSERT_EQ(got.size(), 2u);  // record 0 and record 2 (record 1 lost its last 9 bytes)
    EXPECT_EQ(got[1].second, records[2]);
    EXPECT_EQ(got[1].first, offsets[2] - 9);
    ASSERT_GE(problems.size(), 1u);
    EXPECT_EQ(problems[0].offset, offsets[1]);
  }

  std::ofstream(dir + "/empty").close();
  problems.clear();
  EXPECT_TRUE(read_all(dir + "/empty", &problems).empty());
  EXPECT_TRUE(problems.empty());
  EXPECT_THROW(read_all(dir + "/absent", &problems), DatasetError);
}

TEST(TFExample, RoundTripPackedAndUnpacked) {
  TFExample ex;
  ex.set_bytes("png_encoded_image", std::string("\x89PNG\0\x01", 6));
  ex.set_int64s("label", {7});
  ex.set_int64s("multi_label", {1, -3, 1LL << 40});
  ex.set_floats("f", {1.5f, -2.25f});
  const auto back = parse_example(serialize_example(ex));
  ASSERT_TRUE(back.find("png_encoded_image"));
  EXPECT_EQ(back.find("png_encoded_image")->bytes[0], std::string("\x89PNG\0\x01", 6));
  EXPECT_EQ(back.find("label")->int64s, std::vector<int64_t>{7});
  EXPECT_EQ(back.find("multi_label")->int64s, (std::vector<int64_t>{1, -3, 1LL << 40}));
  EXPECT_EQ(back.find("f")->floats, (std::vector<float>{1.5f, -2.25f}));
  // Hand-written wire bytes with an UNPACKED int64 list (what some writers emit) and an
  // unknown field: Example{features{feature{key:"label" value{int64_list{value:5 value:6}}}}, 9: 1}.
  const std::string int64_list = std::string("\x08\x05\x08\x06", 4);
  const std::string feature = std::string("\x1a", 1) + char(int64_list.size()) + int64_list;
  const std::string entry = std::string("\x0a\x05label\x12", 8) + char(feature.size()) + feature;
  const std::string features = std::string("\x0a", 1) + char(entry.size()) + entry;
  const std::string wire = std::string("\x0a", 1) + char(features.size()) + features + std::string("\x48\x01", 2);
  EXPECT_EQ(parse_example(wire).find("label")->int64s, (std::vector<int64_t>{5, 6}));
  EXPECT_THROW(parse_example(std::string("\x0a\x40\x0a", 3)), ExampleParseError);  // length past the end
  EXPECT_THROW(parse_example(std::string("\x08\xff\xff", 3)), ExampleParseError);  // truncated varint
}

// protoc (Debian's protobuf-compiler) built from the toolkit's own example.proto is the
// reference: its encoding parses here, and this codec's encoding decodes there to the same text.
TEST(TFExample, AgreesWithProtocBothWays) {
  ASSERT_EQ(std::system("protoc --version > /dev/null 2>&1"), 0) << "protoc missing: scripts/install-deps.sh installs protobuf-compiler";
  const std::string dir = test::temp_dir(), proto = std::string(TRECVIT_SOURCE_DIR) + "/datasets/proto";
  const std::string protoc = "protoc --proto_path=" + proto + " ";
  std::ofstream(dir + "/in.txt") << R"(features {
  feature { key: "label" value { int64_list { value: 7 } } }
  feature { key: "multi_label" value { int64_list { value: [1, -3, 1099511627776] } } }
  feature { key: "png_encoded_image" value { bytes_list { value: "\211PNG\000\001" } } }
  feature { key: "f" value { float_list { value: [1.5, -2.25] } } }
})";
  std::string out;
  ASSERT_EQ(test::run_command(protoc + "--encode=tensorflow.Example example.proto < " + dir + "/in.txt > " + dir + "/p.bin", &out), 0) << out;
  std::ifstream in(dir + "/p.bin", std::ios::binary);
  const std::string wire((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto ex = parse_example(wire);
  EXPECT_EQ(ex.find("label")->int64s, std::vector<int64_t>{7});
  EXPECT_EQ(ex.find("multi_label")->int64s, (std::vector<int64_t>{1, -3, 1LL << 40}));
  EXPECT_EQ(ex.find("png_encoded_image")->bytes[0], std::string("\x89PNG\0\x01", 6));
  EXPECT_EQ(ex.find("f")->floats, (std::vector<float>{1.5f, -2.25f}));
  // Our encoding, decoded by protoc, re-encoded by protoc: byte-identical to protoc's own
  // (protoc writes map entries in key order, as serialize_example does).
  std::ofstream(dir + "/ours.bin", std::ios::binary) << serialize_example(ex);
  ASSERT_EQ(test::run_command(protoc + "--decode=tensorflow.Example example.proto < " + dir + "/ours.bin > " + dir +
                                  "/ours.txt && " + protoc + "--encode=tensorflow.Example example.proto < " + dir +
                                  "/ours.txt > " + dir + "/again.bin",
                              &out),
            0)
      << out;
  std::ifstream again(dir + "/again.bin", std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>()), serialize_example(ex));
}

TEST(NevisImages, PngVariantsDecodeAsOpenCVReadsThem) {
  const std::string dir = test::temp_dir();
  cv::RNG rng(7);
  struct Case { int type, w, h; };
  for (auto c : {Case{CV_8UC1, 13, 7}, Case{CV_8UC3, 9, 11}, Case{CV_8UC4, 5, 3}, Case{CV_16UC1, 17, 5},
                 Case{CV_16UC3, 3, 19}, Case{CV_16UC4, 1, 1}}) {
    cv::Mat m(c.h, c.w, c.type);
    rng.fill(m, cv::RNG::UNIFORM, 0, CV_MAT_DEPTH(c.type) == CV_16U ? 65536 : 256);
    const std::string png = png_of(m), file = dir + "/img.png";
    std::ofstream(file, std::ios::binary) << png;
    cv::Mat ref = cv::imread(file, cv::IMREAD_COLOR);
    cv::cvtColor(ref, ref, cv::COLOR_BGR2RGB);
    auto t = decode_image_rgb(png);
    ASSERT_EQ(t.size(0), c.h);
    ASSERT_EQ(t.size(1), c.w);
    ASSERT_EQ(t.size(2), 3);
    EXPECT_EQ(std::memcmp(t.data_ptr(), ref.data, size_t(c.w) * c.h * 3), 0) << "type " << c.type;
    // Known values: grey replicated; 16 bit keeps its high byte (OpenCV rounds, so +-1).
    if (c.type == CV_8UC1) {
      EXPECT_EQ(t[3][4][1].item<int>(), m.at<uint8_t>(3, 4));
    }
    if (c.type == CV_16UC1) {
      EXPECT_NEAR(t[2][3][0].item<int>(), m.at<uint16_t>(2, 3) / 256.0, 1.0);
    }
  }
  EXPECT_THROW(decode_image_rgb("not a png"), DatasetError);
}

TEST(NevisDataset, DamagedRecordsAreNamedCountedAndSkipped) {
  const std::string root = test::temp_dir(), ds = root + "/toy";
  fs::create_directories(ds + "/train");
  fs::create_directories(ds + "/dev-test");
  std::ofstream(ds + "/status") << "ready\n";
  write_nevis_sidecar(ds, 3, false, {"a", "b", "c"});
  const std::string shard = ds + "/train/data-00000-of-00002";
  std::vector<int64_t> offsets;
  {
    TFRecordWriter w(shard);
    int64_t at = 0;
    auto put = [&](const std::string& r) {
      offsets.push_back(at);
      w.write(r);
      at += 16 + int64_t(r.size());
    };
    put(example_bytes(png_of(cv::Mat(4, 6, CV_8UC1, cv::Scalar(10))), 0));  // good
    put(example_bytes("this is no png", 1));                                 // undecodable
    put(example_bytes(png_of(cv::Mat(5, 5, CV_8UC3, cv::Scalar(1, 2, 3))), 7));  // label out of range
    put("\x0a\x7f garbage");                                                 // malformed Example
    put(example_bytes(png_of(cv::Mat(3, 2, CV_16UC1, cv::Scalar(5000))), 2));  // good
    TFExample no_label;
    no_label.set_bytes("png_encoded_image", png_of(cv::Mat(2, 2, CV_8UC1)));
    put(serialize_example(no_label));  // no label
    put(example_bytes(png_of(cv::Mat(2, 2, CV_8UC1)), int64_t(1e12)));  // damage, not a class: never 1e12 classes
  }
  {
    TFRecordWriter w(ds + "/train/data-00001-of-00002");  // a zero-length shard: nothing
  }
  std::ofstream(ds + "/train/README") << "not a shard";
  std::ofstream(ds + "/train/data-00000-of-00002.tmp") << "not a shard either";
  {
    TFRecordWriter w(ds + "/dev-test/data-00000-of-00001");
    w.write(example_bytes(png_of(cv::Mat(4, 4, CV_8UC4, cv::Scalar(9, 8, 7, 255))), 1));
  }
  std::vector<TFRecordProblem> problems;
  NevisLoadOptions o;
  auto d = load_nevis_dataset(root, "toy", o, [&](const TFRecordProblem& p) { problems.push_back(p); });
  EXPECT_TRUE(d.ready);
  EXPECT_EQ(d.num_classes, 3);
  EXPECT_EQ(d.classes_from, "sidecar");
  EXPECT_EQ(d.class_names[2], "c");
  const auto& train = d.split("train");
  ASSERT_EQ(train.size(), 2);
  EXPECT_EQ(train.corrupt, 5);
  EXPECT_EQ(train.labels, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(train.images[0].sizes(), (std::vector<int64_t>{4, 6, 3}));
  EXPECT_EQ(train.images[1][0][0][0].item<int>(), 5000 >> 8);  // OpenCV keeps the high byte
  ASSERT_EQ(problems.size(), 5u);
  const std::vector<std::string> reasons = {"undecodable", "outside [0, 3)", "malformed", "no label", "outside [0, 3)"};
  const std::vector<int64_t> at = {offsets[1], offsets[2], offsets[3], offsets[5], offsets[6]};
  std::sort(problems.begin(), problems.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(problems[i].file, shard);
    EXPECT_EQ(problems[i].offset, at[i]);
    EXPECT_NE(problems[i].reason.find(reasons[i]), std::string::npos) << problems[i].reason;
  }
  EXPECT_EQ(d.split("dev-test").size(), 1);
  EXPECT_EQ(d.split("dev-test").images[0][1][1][0].item<int>(), 7);  // RGB order: B=9,G=8,R=7 written as BGRA
  EXPECT_FALSE(d.split("dev").present);
  EXPECT_EQ(d.split("dev").size(), 0);

  // Without the sidecar the labels give the count (the out-of-range label now counts).
  fs::remove(ds + "/trecvit.json");
  d = load_nevis_dataset(root, "toy", o);
  EXPECT_EQ(d.num_classes, 8);  // 1e12 stays damage
  EXPECT_EQ(d.classes_from, "labels");
  EXPECT_EQ(d.split("train").corrupt, 4);
  o.num_classes = 2;  // the override rules; label 2 and 7 are out of range now
  d = load_nevis_dataset(root, "toy", o);
  EXPECT_EQ(d.split("train").size(), 1);
  EXPECT_THROW(load_nevis_dataset(root, "absent", o), DatasetError);
}

TEST(NevisDataset, MultiLabelRecordsAndSlashNames) {
  const std::string root = test::temp_dir(), ds = root + "/voc_2007";
  fs::create_directories(ds + "/train");
  {
    TFRecordWriter w(ds + "/train/data-00000-of-00001");
    for (auto labels : {std::vector<int64_t>{0, 4}, std::vector<int64_t>{2}}) {
      TFExample ex;  // real multi-label records may carry no single label
      ex.set_bytes("png_encoded_image", png_of(cv::Mat(3, 3, CV_8UC3, cv::Scalar(1, 1, 1))));
      ex.set_int64s("multi_label", labels);
      w.write(serialize_example(ex));
    }
  }
  auto d = load_nevis_dataset(root, "voc/2007", {});
  EXPECT_TRUE(d.multi_label);
  EXPECT_FALSE(d.ready);  // no status file
  EXPECT_EQ(d.num_classes, 5);
  EXPECT_EQ(d.split("train").multi_labels[0], (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(d.split("train").labels[1], -1);
  EXPECT_EQ(nevis_dataset_names(root), std::vector<std::string>{"voc_2007"});
}

TEST(NevisBuild, UciDigitsFromTheDebianPackage) {
  NevisBuildOptions o;
  ASSERT_TRUE(fs::exists(o.source.uci_digits_csv)) << "scripts/install-deps.sh installs python3-sklearn";
  o.out_dir = test::temp_dir();
  o.datasets = {"uci_digits"};
  o.shards = 3;
  auto r = build_nevis_debian(o);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].examples.at("train"), 1006);  // 56/12/12/20 of 1,797
  EXPECT_EQ(r[0].examples.at("dev"), 215);
  EXPECT_EQ(r[0].examples.at("dev-test"), 216);
  EXPECT_EQ(r[0].examples.at("test"), 360);
  EXPECT_EQ(r[0].examples.at("train_and_dev"), 1221);
  EXPECT_EQ(nevis_shards(o.out_dir + "/uci_digits/train").size(), 3u);
  auto d = load_nevis_dataset(o.out_dir, "uci_digits", {});
  EXPECT_TRUE(d.ready);
  EXPECT_EQ(d.num_classes, 10);
  int64_t total = 0, corrupt = 0;
  for (auto s : {"train", "dev", "dev-test", "test"}) total += d.split(s).size(), corrupt += d.split(s).corrupt;
  EXPECT_EQ(total, 1797);
  EXPECT_EQ(corrupt, 0);
  EXPECT_EQ(d.split("train").images[0].sizes(), (std::vector<int64_t>{8, 8, 3}));
  // A second build keeps the finished dataset.
  EXPECT_TRUE(build_nevis_debian(o)[0].skipped);
}

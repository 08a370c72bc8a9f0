// video_io on bad input and over many uses: a typed error naming the file for each kind of
// bad file, truncated and damaged files yielding what decodes, the in-memory reader, the
// index cache and its invalidation, and no memory growth over 1000 reopenings.
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "tests/test_video_util.h"
#include "video_io/md5.h"
#include "video_io/video_reader.h"

using namespace trecvit::video;
using trecvit::test::cli_frame_md5;
using trecvit::test::ffprobe_frame_count;
using trecvit::test::make_video;
using trecvit::test::no_cache;
using trecvit::test::must_shell;
using trecvit::test::video_temp_dir;

namespace {

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Opens `path` expecting a VideoError of `kind` whose message names the file.
void expect_error(const std::string& path, ErrorKind kind) {
  try {
    VideoReader r(path, no_cache());
    FAIL() << path << ": opened, " << r.info().frames << " frames";
  } catch (const VideoError& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_EQ(e.source(), path);
  }
}

TEST(VideoErrors, EachBadFileGetsItsTypedError) {
  const auto dir = video_temp_dir();
  expect_error(dir + "/missing.mp4", ErrorKind::kMissingFile);
  write_bytes(dir + "/empty.mp4", {});
  expect_error(dir + "/empty.mp4", ErrorKind::kNotAVideo);
  std::vector<uint8_t> noise(20000);
  std::mt19937 rng(1);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  write_bytes(dir + "/noise.mp4", noise);
  expect_error(dir + "/noise.mp4", ErrorKind::kNotAVideo);
  expect_error(dir, ErrorKind::kNotAVideo);  // a directory
  const auto audio = make_video(dir, "tone.m4a", "sine=frequency=440:duration=0.5", "-c:a aac");
  expect_error(audio, ErrorKind::kNoVideoStream);
  // An mp4 cut before its index (moov at the end): nothing to read.
  const auto whole = make_video(dir, "w.mp4", "testsrc2=size=64x48:rate=25", "-frames:v 20 -c:v libx264");
  auto bytes = slurp(whole);
  bytes.resize(bytes.size() / 2);
  write_bytes(dir + "/cut.mp4", bytes);
  expect_error(dir + "/cut.mp4", ErrorKind::kNotAVideo);
  // In memory: the same classification, under the given name.
  try {
    VideoReader r(std::make_shared<const std::vector<uint8_t>>(noise), no_cache(), "noise-buffer");
    FAIL() << "random bytes opened";
  } catch (const VideoError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotAVideo);
    EXPECT_NE(std::string(e.what()).find("noise-buffer"), std::string::npos);
  }
}

TEST(VideoErrors, BadRequestsNameTheProblem) {
  const auto path = make_video(video_temp_dir(), "a.mp4", "testsrc2=size=64x48:rate=25", "-frames:v 10 -c:v libx264");
  VideoReader r(path, no_cache());
  for (auto bad : {int64_t(-1), int64_t(10)}) {
    try {
      r.frames({0, bad});
      FAIL();
    } catch (const VideoError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kBadRequest);
      EXPECT_NE(std::string(e.what()).find("outside [0, 10)"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(r.clip(0, 6, 2), VideoError);
  EXPECT_THROW(r.frames({0}, FrameSize::exact(0, 10)), VideoError);
}

TEST(VideoErrors, TruncatedFilesYieldTheFramesThatDecode) {
  const auto dir = video_temp_dir();
  // A streamable mp4 (index first) and a webm, each cut at 60%.
  const auto mp4 = make_video(dir, "a.mp4", "testsrc2=size=160x96:rate=25",
                              "-frames:v 60 -c:v libx264 -preset veryfast -g 12 -movflags +faststart");
  const auto webm = make_video(dir, "a.webm", "testsrc2=size=160x96:rate=25",
                               "-frames:v 40 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 10");
  for (const auto& whole : {mp4, webm}) {
    auto bytes = slurp(whole);
    bytes.resize(bytes.size() * 6 / 10);
    const auto cut = whole + ".cut" + whole.substr(whole.rfind('.'));
    write_bytes(cut, bytes);
    VideoReader r(cut, no_cache());
    const int64_t n = r.size();
    EXPECT_EQ(n, ffprobe_frame_count(cut)) << cut;
    EXPECT_GT(n, 5);
    const auto want = cli_frame_md5(cut);
    auto all = r.all();  // every indexed frame decodes
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(md5_hex(all[i].contiguous().data_ptr<uint8_t>(), all[i].numel()), want[i]) << cut << " frame " << i;
    // Memory input behaves like the file.
    VideoReader m(std::make_shared<const std::vector<uint8_t>>(bytes), no_cache(), "cut-buffer");
    EXPECT_EQ(m.size(), n);
    EXPECT_TRUE(torch::equal(m.frames({n - 1})[0], all[n - 1]));
  }
  VideoReader t(mp4 + ".cut.mp4", no_cache());
  EXPECT_TRUE(t.info().truncated);
  EXPECT_FALSE(t.info().problem.empty());
}

TEST(VideoErrors, DamagedDataIsReportedNotFatal) {
  const auto dir = video_temp_dir();
  const auto path = make_video(dir, "a.webm", "testsrc2=size=160x96:rate=12",
                               "-frames:v 30 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 12");
  auto bytes = slurp(path);
  std::mt19937 rng(5);
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 600; ++i) bytes[i] = static_cast<uint8_t>(rng());
  write_bytes(dir + "/bad.webm", bytes);
  VideoReader r(dir + "/bad.webm", no_cache());
  const int64_t n = r.size();
  ASSERT_GT(n, 0);
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  ReadReport report;
  auto frames = r.frames(all, FrameSize::native(), &report);
  EXPECT_EQ(report.decoded + static_cast<int64_t>(report.missing.size()), n);
  for (int64_t i : report.missing) EXPECT_EQ(frames[i].sum().item<int64_t>(), 0);  // zeros, listed
  if (!report.missing.empty()) {
    EXPECT_FALSE(report.problem.empty());
    try {
      r.frames(all);
      FAIL() << "incomplete decode not reported";
    } catch (const VideoError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kIncomplete);
      EXPECT_NE(std::string(e.what()).find("bad.webm"), std::string::npos);
    }
  }
}

TEST(VideoIndexCache, StoredAndInvalidatedWhenTheFileChanges) {
  const auto dir = video_temp_dir();
  const auto path = make_video(dir, "a.mp4", "testsrc2=size=64x48:rate=25", "-frames:v 10 -c:v libx264");
  ReaderOptions o;
  o.index_cache.dir = dir + "/cache";
  const auto cache = index_cache_path(path, o.index_cache);
  ASSERT_FALSE(cache.empty());
  EXPECT_EQ(VideoReader(path, o).size(), 10);
  ASSERT_TRUE(std::filesystem::exists(cache));
  const auto first = VideoReader(path, o);  // from the cache
  EXPECT_EQ(first.info().frames, 10);
  // Replace the file with a longer one: the stale index must not be used.
  make_video(dir, "b.mp4", "testsrc2=size=64x48:rate=25", "-frames:v 17 -c:v libx264");
  std::filesystem::rename(dir + "/b.mp4", path);
  EXPECT_EQ(VideoReader(path, o).size(), 17);
  // A damaged cache file is ignored and rewritten.
  std::ofstream(cache, std::ios::trunc) << "garbage";
  EXPECT_EQ(VideoReader(path, o).size(), 17);
  o.index_cache.mode = IndexCacheMode::kBeside;
  EXPECT_EQ(VideoReader(path, o).size(), 17);
  EXPECT_TRUE(std::filesystem::exists(path + ".trecvit-index"));
}

TEST(VideoMemory, ReopeningAThousandTimesDoesNotGrow) {
  const auto path = make_video(video_temp_dir(), "a.mp4", "testsrc2=size=96x64:rate=25",
                               "-frames:v 8 -c:v libx264 -preset veryfast");
  auto bytes = std::make_shared<const std::vector<uint8_t>>(slurp(path));
  auto once = [&](int i) {
    VideoReader r = i % 2 ? VideoReader(path, no_cache()) : VideoReader(bytes, no_cache());
    auto f = r.frames({i % 8});
    ASSERT_EQ(f.size(0), 1);
  };
  for (int i = 0; i < 100; ++i) once(i);  // warm up allocator pools
  const int64_t before = trecvit::test::rss_bytes();
  for (int i = 0; i < 1000; ++i) once(i);
  const int64_t growth = trecvit::test::rss_bytes() - before;
  EXPECT_LT(growth, 4 << 20) << "RSS grew by " << growth << " bytes over 1000 reopenings";
}

}  // namespace

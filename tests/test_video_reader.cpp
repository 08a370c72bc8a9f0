// video_io Reader against the ffmpeg CLI: exact frame counts and timestamps (ffprobe), exact
// RGB24 pixels at native size (ffmpeg -pix_fmt rgb24 -f framemd5), random access equal to
// sequential decoding, resizing and cropping, timestamp access, threads.
#include <algorithm>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "tests/test_video_util.h"
#include "video_io/md5.h"
#include "video_io/video_reader.h"

using namespace trecvit::video;
using trecvit::test::cli_frame_md5;
using trecvit::test::ffprobe_frame_count;
using trecvit::test::ffprobe_timestamps;
using trecvit::test::make_video;
using trecvit::test::no_cache;
using trecvit::test::video_temp_dir;

namespace {

std::string frame_md5(const torch::Tensor& frame) {
  auto c = frame.contiguous();
  return md5_hex(c.data_ptr<uint8_t>(), c.numel());
}

struct Case {
  const char* name;
  const char* file;
  const char* source;
  const char* args;
  int width, height, rotation;  // as displayed
  int rotate_tag = 0;           // rotation metadata added by remuxing
};

// The kinds of file users feed the models, and the awkward ones.
const Case kCases[] = {
    {"Vp9OddWidth12fps", "a.webm", "testsrc=size=321x241:rate=12",
     "-frames:v 30 -pix_fmt yuv420p -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 12", 321, 241, 0},
    {"Vp8AltRef", "a.webm", "testsrc2=size=160x96:rate=25",
     "-frames:v 30 -c:v libvpx -auto-alt-ref 1 -lag-in-frames 16 -g 10", 160, 96, 0},
    {"H264LongGopBFrames", "a.mp4", "testsrc2=size=176x144:rate=25",
     "-frames:v 60 -c:v libx264 -preset veryfast -g 250 -bf 3", 176, 144, 0},
    {"H264ShortGop", "a.mp4", "testsrc2=size=170x128:rate=25",
     "-frames:v 40 -c:v libx264 -preset veryfast -g 6 -keyint_min 6 -bf 2", 170, 128, 0},
    {"VariableFrameRate", "a.mkv", "testsrc2=size=128x72:rate=30",
     "-frames:v 60 -vf select='not(mod(n\\,3))+eq(mod(n\\,7)\\,1)' -fps_mode passthrough -c:v libx264 -preset veryfast -bf 2",
     128, 72, 0},
    {"Rotated90", "a.mp4", "testsrc2=size=160x96:rate=25",
     "-frames:v 12 -c:v libx264 -preset veryfast -g 4", 96, 160, 270, 90},
    {"OddDimensions444", "a.mp4", "testsrc=size=157x83:rate=25",
     "-frames:v 12 -c:v libx264 -preset veryfast -pix_fmt yuv444p", 157, 83, 0},
    {"TenBit", "a.mp4", "testsrc2=size=162x98:rate=25",
     "-frames:v 12 -c:v libx264 -preset veryfast -pix_fmt yuv420p10le -g 5", 162, 98, 0},
    {"Vp9TenBit", "a.webm", "testsrc2=size=162x98:rate=25",
     "-frames:v 12 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -pix_fmt yuv420p10le", 162, 98, 0},
    {"Grey", "a.mkv", "testsrc=size=161x97:rate=25", "-frames:v 8 -c:v ffv1 -pix_fmt gray", 161, 97, 0},
    {"OneFrame", "a.mp4", "testsrc2=size=64x48:rate=25", "-frames:v 1 -c:v libx264", 64, 48, 0},
    // No pts on the packets: indexed by decoding, then by output order.
    {"RawH264NoTimestamps", "a.h264", "testsrc2=size=96x64:rate=25", "-frames:v 30 -c:v libx264 -bf 2 -g 10", 96, 64, 0},
    {"AviBFrames", "a.avi", "testsrc2=size=96x64:rate=25", "-frames:v 30 -c:v mpeg4 -bf 2 -g 10", 96, 64, 0},
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ReaderExact : public ::testing::TestWithParam<Case> {};

TEST_P(ReaderExact, CountsTimestampsAndPixelsMatchTheCli) {
  const Case& c = GetParam();
  auto path = make_video(video_temp_dir(), c.file, c.source, c.args);
  if (c.rotate_tag) path = trecvit::test::with_rotation_tag(path, c.rotate_tag);
  VideoReader r(path, no_cache());
  const auto& info = r.info();
  const int64_t n = ffprobe_frame_count(path);
  ASSERT_EQ(info.frames, n);
  EXPECT_EQ(info.width, c.width);
  EXPECT_EQ(info.height, c.height);
  EXPECT_EQ(info.rotation, c.rotation);
  auto ts = ffprobe_timestamps(path);
  if (ts.empty())  // ffprobe has no times either: frames are spaced at the nominal rate
    for (int64_t i = 0; i < n; ++i) ts.push_back(i / info.fps);
  ASSERT_EQ(static_cast<int64_t>(ts.size()), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(r.timestamp(i), ts[i], 1e-6) << "frame " << i;

  // First, middle, last and random frames, in a shuffled request with a repeat.
  std::mt19937 rng(7);
  std::vector<int64_t> idx = {0, n / 2, n - 1};
  for (int k = 0; k < 3; ++k) idx.push_back(std::uniform_int_distribution<int64_t>(0, n - 1)(rng));
  idx.push_back(n / 2);
  std::shuffle(idx.begin(), idx.end(), rng);
  auto frames = r.frames(idx);
  ASSERT_EQ(frames.sizes(), (std::vector<int64_t>{static_cast<int64_t>(idx.size()), c.height, c.width, 3}));
  const auto want = cli_frame_md5(path);
  ASSERT_EQ(static_cast<int64_t>(want.size()), n);
  for (size_t k = 0; k < idx.size(); ++k) EXPECT_EQ(frame_md5(frames[k]), want[idx[k]]) << "frame " << idx[k];

  // Sequential decode gives the same bytes.
  std::vector<std::string> seq;
  r.raw().scan(FrameSize::native(), [&](int64_t i, const uint8_t* rgb) {
    EXPECT_EQ(i, static_cast<int64_t>(seq.size()));
    seq.push_back(md5_hex(rgb, static_cast<size_t>(c.width) * c.height * 3));
    return true;
  });
  EXPECT_EQ(seq, want);
  if (std::string(c.name) == "Grey") {
    EXPECT_TRUE(torch::equal(frames.select(3, 0), frames.select(3, 1)));
    EXPECT_TRUE(torch::equal(frames.select(3, 0), frames.select(3, 2)));
  }
}

INSTANTIATE_TEST_SUITE_P(Video, ReaderExact, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Reader, RandomAccessEqualsSequentialDecodeWithLongGopsAndFrameThreads) {
  const auto path = make_video(video_temp_dir(), "long.mp4", "testsrc2=size=128x72:rate=25",
                               "-frames:v 150 -c:v libx264 -preset veryfast -g 60 -bf 3");
  std::vector<std::string> seq;
  VideoReader r(path, no_cache());
  r.raw().scan(FrameSize::native(), [&](int64_t, const uint8_t* rgb) {
    seq.push_back(md5_hex(rgb, 128 * 72 * 3));
    return true;
  });
  ASSERT_EQ(seq.size(), 150u);
  std::mt19937 rng(3);
  std::vector<int64_t> idx(40);
  for (auto& i : idx) i = std::uniform_int_distribution<int64_t>(0, 149)(rng);
  ReaderOptions threaded = no_cache();
  threaded.decoder.threads = 3;
  threaded.decoder.thread_type = ThreadType::kFrame;
  VideoReader t(path, threaded);
  auto all_at_once = r.frames(idx);
  for (size_t k = 0; k < idx.size(); ++k) {
    EXPECT_EQ(frame_md5(all_at_once[k]), seq[idx[k]]) << idx[k];
    EXPECT_EQ(frame_md5(t.frames({idx[k]})[0]), seq[idx[k]]) << idx[k];  // one seek per call
  }
  // Clips reuse the decoder: a clip, then one behind it, then one just after.
  auto c1 = r.clip(100, 16, 2), c2 = r.clip(10, 8, 1), c3 = r.clip(20, 4, 3);
  for (int k = 0; k < 16; ++k) EXPECT_EQ(frame_md5(c1[k]), seq[100 + 2 * k]);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(frame_md5(c2[k]), seq[10 + k]);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(frame_md5(c3[k]), seq[20 + 3 * k]);
}

TEST(Reader, ResizeAndCropMatchTheCliScaler) {
  const auto path = make_video(video_temp_dir(), "r.mp4", "testsrc2=size=200x120:rate=25",
                               "-frames:v 10 -c:v libx264 -preset veryfast");
  VideoReader r(path, no_cache());
  auto exact = r.frames({0, 9}, FrameSize::exact(64, 48));
  ASSERT_EQ(exact.sizes(), (std::vector<int64_t>{2, 48, 64, 3}));
  const auto want = cli_frame_md5(path, "scale=64:48:flags=bicubic,format=yuv420p");
  EXPECT_EQ(frame_md5(exact[0]), want[0]);
  EXPECT_EQ(frame_md5(exact[1]), want[9]);
  // Short side 60 -> 100x60, then the centred 48x40: the same bytes as cropping the CLI's resize.
  auto crop = r.frames({3}, FrameSize::short_side_crop(60, 48, 40));
  ASSERT_EQ(crop.sizes(), (std::vector<int64_t>{1, 40, 48, 3}));
  auto full = r.frames({3}, FrameSize::exact(100, 60));
  EXPECT_EQ(frame_md5(full[0]), cli_frame_md5(path, "scale=100:60:flags=bicubic,format=yuv420p")[3]);
  EXPECT_TRUE(torch::equal(crop[0], full[0].slice(0, 10, 50).slice(1, 26, 74)));
  auto model = r.frames({3}, model_input_size(32, 32));
  EXPECT_EQ(model.sizes(), (std::vector<int64_t>{1, 32, 32, 3}));
  EXPECT_THROW(r.frames({0}, FrameSize::short_side_crop(60, 120, 40)), VideoError);
}

TEST(Reader, TimestampAccessFollowsPtsNotFps) {
  const auto& vfr = kCases[4];
  const auto path = make_video(video_temp_dir(), vfr.file, vfr.source, vfr.args);
  VideoReader r(path, no_cache());
  const int64_t n = r.size();
  ASSERT_GT(n, 10);
  const auto all = r.all();
  for (int64_t k : {int64_t(0), int64_t(5), n - 1}) {
    const double t = r.timestamp(k);
    const double next = k + 1 < n ? r.timestamp(k + 1) : t + 0.01;
    auto got = r.frames_at({t, (t + next) / 2});
    EXPECT_TRUE(torch::equal(got[0], all[k])) << k;
    EXPECT_TRUE(torch::equal(got[1], all[k])) << k;
  }
  // Gaps differ (variable rate), so fps could not have given these times.
  std::set<int64_t> gaps;
  for (int64_t k = 1; k < n; ++k) gaps.insert(std::llround((r.timestamp(k) - r.timestamp(k - 1)) * 1000));
  EXPECT_GT(gaps.size(), 1u);
  EXPECT_THROW(r.frames_at({-1.0}), VideoError);
}

TEST(Reader, ParallelReadersAgreeAndStoppingEarlyNeverHangs) {
  const auto path = make_video(video_temp_dir(), "p.mp4", "testsrc2=size=128x72:rate=25",
                               "-frames:v 60 -c:v libx264 -preset veryfast -g 30");
  const auto want = cli_frame_md5(path);
  auto work = [&](int seed) {
    ReaderOptions o = no_cache();
    o.decoder.threads = 2;
    o.decoder.thread_type = seed % 2 ? ThreadType::kFrame : ThreadType::kSlice;
    VideoReader r(path, o);
    // Stop a frame-threaded sequential decode after two frames, then seek elsewhere.
    int seen = 0;
    r.raw().scan(FrameSize::native(), [&](int64_t, const uint8_t*) { return ++seen < 2; });
    std::vector<int64_t> idx = {59, static_cast<int64_t>(seed), 31, 2};
    auto f = r.frames(idx);
    int ok = 0;
    for (size_t k = 0; k < idx.size(); ++k) ok += frame_md5(f[k]) == want[idx[k]];
    return ok;
  };
  std::vector<std::future<int>> jobs;
  for (int s = 0; s < 4; ++s) jobs.push_back(std::async(std::launch::async, work, s));
  for (auto& j : jobs) {
    ASSERT_EQ(j.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "a reader hung";
    EXPECT_EQ(j.get(), 4);
  }
}

}  // namespace

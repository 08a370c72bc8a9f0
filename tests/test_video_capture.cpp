// Capture with a generated file played as a live source and a deliberately slow
// consumer; reconnecting and giving up; clean shutdown; and the VideoWriter round trip.
#include <filesystem>

#include "tests/test_video_util.h"
#include "video_io/capture.h"
#include "video_io/error.h"
#include "video_io/video_reader.h"
#include "video_io/writer.h"

using namespace trecvit::video;
using namespace std::chrono_literals;
using trecvit::test::make_video;
using trecvit::test::video_temp_dir;
using Clock = std::chrono::steady_clock;

namespace {

std::string clip(const std::string& dir, int frames, int fps = 25) {
  return make_video(dir, "live.mp4", "testsrc2=size=64x48:rate=" + std::to_string(fps),
                    "-frames:v " + std::to_string(frames) + " -c:v libx264 -preset veryfast");
}

double mean_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().mean().item<double>();
}

TEST(Capture, SlowConsumerGetsTheNewestFramesAndCountsDrops) {
  const auto path = clip(video_temp_dir(), 40);
  VideoReader exact(path);
  const auto t0 = Clock::now();
  Capture cap(path);  // played at 25 fps, like a camera
  EXPECT_EQ(cap.kind(), Capture::Kind::kFile);
  std::vector<CapturedFrame> got;
  const int64_t rss_start = trecvit::test::rss_bytes();
  while (true) {
    auto f = cap.next(2s);
    if (!f) break;
    got.push_back(*f);
    std::this_thread::sleep_for(150ms);  // a consumer much slower than the source
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_TRUE(cap.ended());
  EXPECT_GE(elapsed, 1.2) << "a 1.6 s file must not be delivered faster than real time";
  ASSERT_GE(got.size(), 5u);
  EXPECT_LE(got.size(), 20u);
  EXPECT_EQ(cap.grabbed(), 40);
  EXPECT_EQ(got.back().dropped + static_cast<int64_t>(got.size()), 40);
  EXPECT_GT(got.back().dropped, 0);
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_GT(got[i].sequence, got[i - 1].sequence);
    EXPECT_GT(got[i].timestamp, got[i - 1].timestamp);
    EXPECT_GE(got[i].dropped, got[i - 1].dropped);
  }
  // Each delivered frame is exactly the file's frame at its sequence number.
  for (size_t i = 0; i < got.size(); i += 3) {
    ASSERT_EQ(got[i].rgb.sizes(), (std::vector<int64_t>{48, 64, 3}));
    EXPECT_TRUE(got[i].rgb.equal(exact.frames({got[i].sequence})[0])) << "sequence " << got[i].sequence;
  }
  EXPECT_LT(trecvit::test::rss_bytes() - rss_start, 16 << 20);
}

TEST(Capture, UnpacedPlaybackGrabsEveryFrame) {
  const auto path = clip(video_temp_dir(), 30);
  CaptureOptions o;
  o.realtime = false;
  Capture cap(path, o);
  int64_t received = 0, dropped = 0;
  while (auto f = cap.next(2s)) {
    ++received;
    dropped = f->dropped;
  }
  EXPECT_EQ(cap.grabbed(), 30);
  EXPECT_EQ(received + dropped, 30);
}

TEST(Capture, StreamReconnectsThenGivesUpWhenTheSourceIsGone) {
  const auto dir = video_temp_dir();
  const auto path = clip(dir, 10);
  CaptureOptions o;
  o.max_reconnects = 3;
  o.backoff = 20ms;
  o.io_timeout = 2000ms;
  Capture cap("file://" + path, o);
  EXPECT_EQ(cap.kind(), Capture::Kind::kStream);
  int64_t last = -1;
  const auto deadline = Clock::now() + 30s;
  while (cap.reconnects() < 1 || last < 10) {  // frames from after a reconnect
    ASSERT_LT(Clock::now(), deadline) << "no reconnect";
    if (auto f = cap.next(1s)) last = f->sequence;
  }
  std::filesystem::remove(path);
  try {
    while (Clock::now() < deadline) cap.next(1s);
    FAIL() << "the capture never gave up";
  } catch (const VideoError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kSourceLost);
    EXPECT_NE(std::string(e.what()).find("gave up after 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Capture, MissingSourcesFailClearly) {
  try {
    Capture cap("/nonexistent/clip.mp4");
    FAIL();
  } catch (const VideoError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kMissingFile);
  }
  CaptureOptions o;
  o.max_reconnects = 2;
  o.backoff = 10ms;
  o.io_timeout = 2000ms;
  const auto t0 = Clock::now();
  try {
    Capture cap("http://127.0.0.1:9/none.mp4", o);  // nothing listens on the discard port
    FAIL();
  } catch (const VideoError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kSourceLost);
    EXPECT_NE(std::string(e.what()).find("cannot be opened (3 attempts, backoff from 10 ms)"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 20.0);
}

TEST(Capture, ShutdownIsPromptWhileGrabbing) {
  const auto path = clip(video_temp_dir(), 250);  // 10 s at 25 fps
  auto cap = std::make_unique<Capture>(path);
  ASSERT_TRUE(cap->next(2s).has_value());
  const auto t0 = Clock::now();
  cap.reset();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0);
}

TEST(Writer, RoundTripsThroughMp4AndWebm) {
  const auto dir = video_temp_dir();
  auto frames = torch::zeros({12, 48, 64, 3}, torch::kByte);
  for (int t = 0; t < 12; ++t) {
    frames[t].select(2, 0).copy_(torch::arange(64, torch::kInt).mul(4).to(torch::kByte).expand({48, 64}));
    frames[t].select(2, 1).fill_(static_cast<uint8_t>(20 * t));
    frames[t].select(2, 2).copy_(torch::arange(48, torch::kInt).mul(5).to(torch::kByte).unsqueeze(1).expand({48, 64}));
  }
  for (auto ext : {".mp4", ".webm", ".mkv", ".mov", ".m4v", ".AVI"}) {  // every container data prepare keeps
    const auto path = dir + "/out" + ext;
    {
      VideoWriter w(path, 12, 64, 48);
      for (int t = 0; t < 12; ++t) w.write(frames[t]);
      EXPECT_EQ(w.frames(), 12);
    }
    VideoReader r(path);
    ASSERT_EQ(r.size(), 12) << path;
    EXPECT_EQ(r.info().width, 64);
    EXPECT_LT(mean_abs_diff(r.all(), frames), 6.0) << path;
  }
  EXPECT_THROW(VideoWriter(dir + "/out.gif", 12, 64, 48), VideoError);
  EXPECT_THROW(VideoWriter(dir + "/odd.mp4", 12, 63, 48), VideoError);  // H.264 4:2:0 needs even sides
  EXPECT_THROW(VideoWriter(dir + "/no/such/dir/x.webm", 12, 64, 48), VideoError);
  VideoWriter w(dir + "/x.mp4", 12, 64, 48);
  EXPECT_THROW(w.write(torch::zeros({48, 65, 3}, torch::kByte)), VideoError);
}

// Each VP9 encoder allocates tens of MB; writing many files must not grow the process (it grew
// ~2 MB per file under the retaining allocator before encoders got their own decaying arena).
TEST(Writer, ManyFilesDoNotGrowTheProcess) {
  const auto dir = video_temp_dir();
  auto frame = torch::randint(0, 256, {64, 64, 3}, torch::TensorOptions().dtype(torch::kByte));
  auto write_files = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      VideoWriter w(dir + "/" + std::to_string(i) + ".webm", 12, 64, 64);
      for (int t = 0; t < 4; ++t) w.write(frame);
      w.close();
    }
  };
  write_files(0, 20);
  const int64_t before = trecvit::test::rss_bytes();
  write_files(20, 220);
  EXPECT_LT(trecvit::test::rss_bytes() - before, 96 << 20);
}

}  // namespace

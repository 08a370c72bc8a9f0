// `trecvit probe`, `trecvit frames` and `trecvit predict VIDEO` end to end, checked against
// ffprobe and the ffmpeg CLI's RGB24 decode.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "models/npz.h"
#include "tests/test_video_util.h"
#include "video_io/video_reader.h"

using trecvit::test::cli_frame_md5;
using trecvit::test::make_video;
using trecvit::test::run_command;
using trecvit::test::split_lines;
using trecvit::test::video_temp_dir;

namespace {

// The binary, with its index cache in this test's temp dir rather than the user's cache.
std::string bin() {
  static const std::string b = "TRECVIT_CACHE_DIR=" + video_temp_dir() + " " + TRECVIT_BIN;
  return b;
}

std::string must_run(const std::string& args) {
  std::string out;
  const int rc = run_command(bin() + " --threads 1 " + args, &out);
  EXPECT_EQ(rc, 0) << args << "\n" << out;
  return out;
}

TEST(VideoCli, ProbeJsonHasExactCountAndDisplayedSize) {
  const auto dir = video_temp_dir();
  const auto path = trecvit::test::with_rotation_tag(
      make_video(dir, "r.mp4", "testsrc2=size=160x96:rate=25", "-frames:v 23 -c:v libx264 -bf 2"), 90);
  auto j = nlohmann::json::parse(must_run("probe " + path + " --json --timestamps"));
  EXPECT_EQ(j.at("frames").get<int64_t>(), 23);
  EXPECT_EQ(j.at("width").get<int>(), 96);
  EXPECT_EQ(j.at("height").get<int>(), 160);
  EXPECT_EQ(j.at("rotation").get<int>(), 270);
  EXPECT_NEAR(j.at("fps").get<double>(), 25.0, 1e-9);
  EXPECT_EQ(j.at("codec").get<std::string>(), "h264");
  EXPECT_EQ(j.at("timestamps").size(), 23u);
  EXPECT_NEAR(j["timestamps"][22].get<double>(), 22 * 0.04, 1e-9);
  const auto text = must_run("probe " + path);
  EXPECT_NE(text.find("frames: 23"), std::string::npos) << text;
}

TEST(VideoCli, ProbeFailsWithTheReasonOnStderr) {
  const auto dir = video_temp_dir();
  std::ofstream(dir + "/empty.webm").flush();
  std::ofstream(dir + "/text.mp4") << "this is not a video, just some text that is long enough to probe\n";
  std::string out;
  for (auto [file, reason] : {std::pair<std::string, std::string>{"/nope.mp4", "no such file"},
                              {"/empty.webm", "empty file"},
                              {"/text.mp4", "not a video"}}) {
    EXPECT_NE(run_command(bin() + " probe " + dir + file, &out), 0) << file;
    EXPECT_NE(out.find(dir + file), std::string::npos) << out;
    EXPECT_NE(out.find(reason), std::string::npos) << out;
  }
}

TEST(VideoCli, FramesMd5MatchesTheFfmpegCli) {
  const auto path = make_video(video_temp_dir(), "a.webm", "testsrc=size=161x97:rate=12",
                               "-frames:v 25 -pix_fmt yuv420p -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 12");
  const auto want = cli_frame_md5(path);
  const auto lines = split_lines(must_run("frames " + path + " --indices 20,0,10 --md5"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "20 " + want[20]);
  EXPECT_EQ(lines[1], "0 " + want[0]);
  EXPECT_EQ(lines[2], "10 " + want[10]);
  const auto range = split_lines(must_run("frames " + path + " --indices 3-5 --md5"));
  ASSERT_EQ(range.size(), 3u);
  EXPECT_EQ(range[2], "5 " + want[5]);
}

TEST(VideoCli, FramesWritesImagesAtTheRequestedSize) {
  const auto dir = video_temp_dir();
  const auto path = make_video(dir, "a.mp4", "testsrc2=size=160x96:rate=25", "-frames:v 12 -c:v libx264");
  must_run("frames " + path + " --indices 1,11 --size 64x48 --out " + dir + "/png");
  EXPECT_GT(std::filesystem::file_size(dir + "/png/frame_000001.png"), 100u);
  EXPECT_GT(std::filesystem::file_size(dir + "/png/frame_000011.png"), 100u);
  must_run("frames " + path + " --indices 2 --out " + dir + "/ppm --format ppm");
  std::ifstream ppm(dir + "/ppm/frame_000002.ppm", std::ios::binary);
  std::string magic;
  int w = 0, h = 0;
  ppm >> magic >> w >> h;
  EXPECT_EQ(magic, "P6");
  EXPECT_EQ(w, 160);
  EXPECT_EQ(h, 96);
  std::string out;
  EXPECT_NE(run_command(bin() + " frames " + path + " --indices 12 --md5", &out), 0);
  EXPECT_NE(out.find("outside [0, 12)"), std::string::npos) << out;
  EXPECT_NE(run_command(bin() + " frames " + path + " --indices 1 --size 64by48 --md5", &out), 0);
  EXPECT_NE(out.find("WxH"), std::string::npos) << out;
}

TEST(VideoCli, PredictAcceptsAVideoFile) {
  const auto dir = video_temp_dir();
  must_run("init --config " + std::string(TRECVIT_CONFIG_DIR) + "/tiny.json --out " + dir + "/m.ckpt --seed 1");
  const auto path = make_video(dir, "clip.mp4", "testsrc2=size=64x48:rate=25", "-frames:v 5 -c:v libx264");
  auto j = nlohmann::json::parse(must_run("predict --checkpoint " + dir + "/m.ckpt " + path + " --per-frame --json"));
  EXPECT_EQ(j["per_frame"].size(), 5u);
  // The same frames through the .npy path give the same logits.
  const auto cfg = trecvit::test::tiny_config();
  trecvit::video::VideoReader r(path);
  trecvit::write_npy(dir + "/clip.npy", r.all(trecvit::video::model_input_size(cfg.image_height, cfg.image_width)));
  auto k = nlohmann::json::parse(must_run("predict --checkpoint " + dir + "/m.ckpt " + dir + "/clip.npy --json"));
  ASSERT_EQ(j["logits"].size(), k["logits"].size());
  for (size_t i = 0; i < k["logits"].size(); ++i)
    EXPECT_NEAR(j["logits"][i].get<double>(), k["logits"][i].get<double>(), 1e-5);
  std::string out;
  EXPECT_NE(run_command(bin() + " predict --checkpoint " + dir + "/m.ckpt " + dir + "/m.ckpt", &out), 0);
  EXPECT_NE(out.find("m.ckpt"), std::string::npos) << out;
}

TEST(VideoCli, BenchDecodeQuickRuns) {
  auto j = nlohmann::json::parse(must_run("bench decode --quick --repeats 1 --json"));
  EXPECT_EQ(j["benchmark"].get<std::string>(), "decode");
  ASSERT_EQ(j["results"].size(), 4u);  // two files, two GOP lengths
  for (auto& r : j["results"]) {
    EXPECT_GT(r["sequential_fps"].get<double>(), 0) << r.dump();
    EXPECT_GT(r["cli_fps"].get<double>(), 0) << r.dump();
    EXPECT_GT(r["clips_per_s"].get<double>(), 0) << r.dump();
  }
  EXPECT_GT(j["parallel"]["speedup"].get<double>(), 0);
}

}  // namespace

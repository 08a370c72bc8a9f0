// trecvit stream: exact equivalence with offline prediction (one file, several files batched),
// the readouts, live sources served by the ffmpeg CLI on loopback (reconnect, loss), a slow
// model under a fast source, and clear errors for bad input.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "jobs/stream_job.h"
#include "models/checkpoint.h"
#include "models/inference.h"
#include "tests/test_video_util.h"
#include "video_io/video_reader.h"

using namespace trecvit;
using namespace std::chrono_literals;
using test::make_video;
using test::max_abs_diff;
using test::run_command;
using test::video_temp_dir;

extern char** environ;

namespace {

const std::string kBin = TRECVIT_BIN;

std::string tiny_checkpoint(const std::string& dir, const std::string& readout = "mean") {
  auto c = test::tiny_config();
  c.readout = readout;
  torch::manual_seed(11);
  TRecViT model(c);
  const std::string path = dir + "/tiny-" + readout + ".pt";
  save_checkpoint(*model, path);
  return path;
}

std::string clip(const std::string& dir, const std::string& name, int frames, const std::string& size = "64x48") {
  return make_video(dir, name, "testsrc2=size=" + size + ":rate=25",
                    "-frames:v " + std::to_string(frames) + " -c:v libx264 -preset veryfast -pix_fmt yuv420p");
}

// Every frame event of a run, per source.
struct Collected {
  std::mutex mu;
  std::map<std::string, std::vector<nlohmann::json>> frames;
  std::vector<std::string> problems;
  ProgressSink sink() {
    return [this](const Event& e) {
      std::lock_guard<std::mutex> lk(mu);
      if (e.kind == EventKind::kFrame) frames[e.fields["source"]].push_back(e.fields);
      if (e.kind == EventKind::kProblem) problems.push_back(e.fields["message"]);
    };
  }
};

torch::Tensor logits_of(const std::vector<nlohmann::json>& rows) {
  std::vector<torch::Tensor> out;
  for (const auto& r : rows) out.push_back(torch::tensor(r["logits"].get<std::vector<double>>(), torch::kDouble));
  return torch::stack(out);
}

StreamJob file_job(const std::string& ckpt, std::vector<std::string> sources) {
  StreamJob job;
  job.checkpoint = ckpt;
  job.sources = std::move(sources);
  job.no_drop = true;
  job.as_fast_as_possible = true;
  job.logits = true;
  return job;
}

// The offline answer: the whole file decoded at the model's size and streamed frame by frame.
torch::Tensor offline_per_frame(const std::string& ckpt, const std::string& path) {
  auto model = load_checkpoint(ckpt);
  const auto& c = model->config();
  auto frames = video::VideoReader(path).all(video::model_input_size(c.image_height, c.image_width));
  return predict_clip(*model, frames, true).per_frame;
}

// `ffmpeg -re ... -f mpegts -listen 1 http://127.0.0.1:PORT`: a live camera-like source.
class LoopbackServer {
 public:
  explicit LoopbackServer(int port) : port_(port) { start(); }
  ~LoopbackServer() { kill(); }
  void start() {
    const std::string url = "http://127.0.0.1:" + std::to_string(port_);
    std::vector<std::string> args = {"ffmpeg", "-nostdin", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i",
                                      "testsrc2=size=96x64:rate=25", "-c:v", "libx264", "-preset", "ultrafast",
                                      "-tune", "zerolatency", "-g", "25", "-f", "mpegts", "-listen", "1", url};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawnp(&pid_, "ffmpeg", nullptr, nullptr, argv.data(), environ), 0);
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  pid_t pid_ = -1;
};

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace

TEST(Stream, FileWithoutDropsEqualsPredictPerFrameThroughTheCli) {
  const auto dir = video_temp_dir();
  const auto ckpt = tiny_checkpoint(dir);
  const auto path = clip(dir, "a.mp4", 23, "80x60");
  std::string out;
  ASSERT_EQ(run_command(kBin + " predict --checkpoint " + ckpt + " --per-frame --json " + path + " > " + dir + "/p.json", &out), 0) << out;
  std::ifstream pin(dir + "/p.json");
  const auto predict = nlohmann::json::parse(pin)["per_frame"];
  ASSERT_EQ(predict.size(), 23u);
  ASSERT_EQ(run_command(kBin + " stream --checkpoint " + ckpt + " " + path + " --no-drop --readout mean --logits --jsonl " + dir +
                            "/s.jsonl --summary-json " + dir + "/sum.json --write-video " + dir + "/annotated.mp4",
                        &out),
            0)
      << out;
  const auto rows = read_jsonl(dir + "/s.jsonl");
  ASSERT_EQ(rows.size(), 23u);
  for (size_t t = 0; t < rows.size(); ++t) {
    EXPECT_EQ(rows[t]["index"], static_cast<int64_t>(t));
    EXPECT_EQ(rows[t]["dropped"], 0);
    EXPECT_EQ(rows[t]["source"], path);
    EXPECT_TRUE(rows[t]["pts"].is_number());
    EXPECT_LT(rows[t]["latency_ms"].get<double>(), 1000);
    ASSERT_EQ(rows[t]["topk"].size(), 5u);
    const auto& l = rows[t]["logits"];
    for (size_t k = 0; k < l.size(); ++k) EXPECT_NEAR(l[k].get<double>(), predict[t][k].get<double>(), 1e-5) << "frame " << t;
  }
  // Played at the native rate by default: 23 frames at 25 fps take most of a second.
  EXPECT_GE(rows.back()["wall"].get<double>(), 0.7);
  std::ifstream sin(dir + "/sum.json");
  const auto sum = nlohmann::json::parse(sin);
  EXPECT_EQ(sum["sources"][0]["frames"], 23);
  EXPECT_EQ(sum["sources"][0]["state"], "ended");
  EXPECT_GT(sum["peak_rss_bytes"].get<int64_t>(), 0);
  video::VideoReader annotated(dir + "/annotated.mp4");
  EXPECT_EQ(annotated.size(), 23);
  EXPECT_EQ(annotated.info().height, 480);  // the default display short side
}

TEST(Stream, ThreeFilesBatchedEqualTheirOwnRuns) {
  const auto dir = video_temp_dir();
  const auto ckpt = tiny_checkpoint(dir);
  const std::vector<std::string> paths = {clip(dir, "a.mp4", 9), clip(dir, "b.mp4", 20, "96x64"), clip(dir, "c.mp4", 14, "50x70")};
  Collected together;
  const auto r = run_stream(file_job(ckpt, paths), together.sink());
  ASSERT_EQ(r.sources.size(), 3u);
  EXPECT_LT(r.steps, 9 + 20 + 14) << "frames of different sources must share steps";
  for (const auto& p : paths) {
    Collected alone;
    run_stream(file_job(ckpt, {p}), alone.sink());
    const auto& got = together.frames[p];
    ASSERT_EQ(got.size(), alone.frames[p].size()) << p;
    for (size_t t = 0; t < got.size(); ++t) EXPECT_EQ(got[t]["index"], static_cast<int64_t>(t));
    EXPECT_LT(max_abs_diff(logits_of(got), logits_of(alone.frames[p])), 1e-5) << p;
    EXPECT_LT(max_abs_diff(logits_of(got), offline_per_frame(ckpt, p)), 1e-5) << p;
  }
}

TEST(Stream, LastEmaAndResetEveryReadouts) {
  const auto dir = video_temp_dir();
  const auto ckpt = tiny_checkpoint(dir);
  const auto path = clip(dir, "a.mp4", 12);
  auto model = load_checkpoint(ckpt);
  torch::NoGradGuard ng;
  model->eval();
  const auto& c = model->config();
  auto frames = video::VideoReader(path).all(video::model_input_size(c.image_height, c.image_width));
  auto z = model->frame_features(frames.unsqueeze(0))[0].to(torch::kDouble);  // [T, rep]
  auto head = [&](const torch::Tensor& x) { return model->head(x.to(torch::kFloat)).to(torch::kDouble); };

  auto job = file_job(ckpt, {path});
  job.readout = "last";
  Collected last;
  run_stream(job, last.sink());
  EXPECT_LT(max_abs_diff(logits_of(last.frames[path]), head(z)), 1e-5);

  job.readout = "ema:0.25";
  Collected ema;
  run_stream(job, ema.sink());
  std::vector<torch::Tensor> want;
  auto e = z[0];
  for (int64_t t = 0; t < z.size(0); ++t) {
    if (t > 0) e = 0.25 * z[t] + 0.75 * e;
    want.push_back(head(e));
  }
  EXPECT_LT(max_abs_diff(logits_of(ema.frames[path]), torch::stack(want)), 1e-5);

  job.readout = "mean";
  job.reset_every = 5;
  Collected reset;
  const auto r = run_stream(job, reset.sink());
  EXPECT_EQ(r.sources[0].resets, 2);  // before frames 5 and 10
  auto got = logits_of(reset.frames[path]);
  for (int64_t start : {0, 5, 10}) {
    const int64_t n = std::min<int64_t>(5, 12 - start);
    auto fresh = predict_clip(*model, frames.narrow(0, start, n), true).per_frame;
    EXPECT_LT(max_abs_diff(got.narrow(0, start, n), fresh), 1e-5) << "segment from " << start;
  }
  EXPECT_THROW(StreamReadout::parse("ema:0"), std::invalid_argument);
  EXPECT_THROW(StreamReadout::parse("median"), std::invalid_argument);
}

TEST(Stream, LiveLoopbackSourceReconnectsAndRestartsItsState) {
  const auto dir = video_temp_dir();
  const auto ckpt = tiny_checkpoint(dir);
  LoopbackServer server(test::free_port());
  StreamJob job;
  job.checkpoint = ckpt;
  job.sources = {server.url()};
  job.backoff = 200ms;
  job.reconnects = 8;
  job.duration = 40;  // a bound; the test cancels much sooner
  std::atomic<int64_t> frames{0}, after_reconnect{0};
  std::atomic<bool> reconnected{false};
  CancelToken cancel;
  ProgressSink sink = [&](const Event& e) {
    if (e.kind == EventKind::kFrame && ++frames > 0 && reconnected && ++after_reconnect >= 20) cancel.request();
    if (e.kind == EventKind::kProblem && e.fields["message"].get<std::string>().find("reconnected") != std::string::npos)
      reconnected = true;
  };
  std::thread restart([&] {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (frames < 25 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
    server.kill();  // the camera goes away ...
    std::this_thread::sleep_for(600ms);
    server.start();  // ... and comes back
  });
  struct Join {
    std::thread& t;
    ~Join() { t.join(); }  // also when run_stream throws
  };
  StreamResult r;
  {
    Join join{restart};
    r = run_stream(job, sink, &cancel);
  }
  ASSERT_TRUE(reconnected) << "frames " << frames;
  EXPECT_TRUE(r.stopped);
  EXPECT_GE(r.sources[0].reconnects, 1);
  EXPECT_GE(r.sources[0].resets, 1);
  EXPECT_GE(after_reconnect, 20);
  EXPECT_TRUE(r.lost.empty());
  EXPECT_LT(r.sources[0].latency_p95_ms, 1000);
}

TEST(Stream, ALostSourceEndsNonZeroWhileAHealthyOneKeepsPredicting) {
  const auto dir = video_temp_dir();
  const auto ckpt = tiny_checkpoint(dir);
  LoopbackServer doomed(test::free_port()), healthy(test::free_port());
  const std::string jsonl = dir + "/f.jsonl";
  std::thread killer([&] {
    // Once the doomed source has produced predictions (not at a fixed time: start-up is slow
    // on a loaded machine), it goes away and never comes back.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(jsonl);
      std::string line;
      int n = 0;
      while (std::getline(in, line)) n += line.find(doomed.url()) != std::string::npos;
      if (n >= 25) break;
      std::this_thread::sleep_for(50ms);
    }
    doomed.kill();
  });
  std::string out;
  const int rc = run_command(kBin + " stream --checkpoint " + ckpt + " " + doomed.url() + " " + healthy.url() +
                                 " --duration 10 --reconnects 2 --backoff-ms 100 --timeout-ms 2000 --jsonl " + jsonl,
                             &out);
  killer.join();
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("lost source: " + doomed.url()), std::string::npos) << out;
  EXPECT_NE(out.find("gave up after 2"), std::string::npos) << out;
  double doomed_last = 0, healthy_last = 0;
  for (const auto& row : read_jsonl(jsonl)) {
    double& last = row["source"] == doomed.url() ? doomed_last : healthy_last;
    last = std::max(last, row["wall"].get<double>());
  }
  EXPECT_GT(doomed_last, 0.5) << out;
  EXPECT_GT(healthy_last, doomed_last + 2) << "the healthy source must keep producing predictions\n" << out;
}

TEST(Stream, SlowModelDropsFramesWithBoundedLatencyAndFlatMemory) {
  const auto dir = video_temp_dir();
  const auto ckpt = tiny_checkpoint(dir);
  auto run = [&](int frames) {
    const auto path = clip(dir, std::to_string(frames) + ".mp4", frames);
    std::string out;
    const std::string sum = dir + "/sum" + std::to_string(frames) + ".json";
    EXPECT_EQ(run_command(kBin + " --threads 1 stream --checkpoint " + ckpt + " " + path +
                              " --as-fast-as-possible --debug-step-delay-ms 4 --summary-json " + sum,
                          &out),
              0)
        << out;
    std::ifstream in(sum);
    return nlohmann::json::parse(in);
  };
  const auto small = run(500), large = run(5000);
  const auto& s = small["sources"][0];
  const auto& l = large["sources"][0];
  EXPECT_EQ(l["grabbed"], 5000);
  EXPECT_GT(l["dropped"].get<int64_t>(), 0);
  EXPECT_GT(l["dropped"].get<int64_t>(), s["dropped"].get<int64_t>());
  EXPECT_EQ(l["frames"].get<int64_t>() + l["dropped"].get<int64_t>(), 5000);
  EXPECT_LT(l["latency_ms"]["p95"].get<double>(), 250);  // the newest frame, never a queue
  const double grow_mb = (large["peak_rss_bytes"].get<double>() - small["peak_rss_bytes"].get<double>()) / 1048576;
  EXPECT_LT(grow_mb, 4) << "peak RSS grew with the length of the feed";
}

TEST(Stream, BadInputIsAClearError) {
  const auto dir = video_temp_dir();
  const auto ckpt = tiny_checkpoint(dir);
  const auto good = clip(dir, "a.mp4", 5);
  std::ofstream(dir + "/notes.txt") << "not a video\n";
  std::ofstream(dir + "/labels3.txt") << "a\nb\nc\n";
  std::ofstream(dir + "/labels.json") << R"({"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4"})";
  auto fails_with = [&](const std::string& args, const std::string& expect) {
    std::string out;
    const int rc = run_command("DISPLAY= WAYLAND_DISPLAY= " + kBin + " stream " + args, &out);
    EXPECT_NE(rc, 0) << args << "\n" << out;
    EXPECT_NE(out.find(expect), std::string::npos) << args << "\n" << out;
    EXPECT_EQ(out.find("terminate called"), std::string::npos) << out;
  };
  const std::string c = "--checkpoint " + ckpt + " ";
  fails_with(c + "foo://camera/1", "unknown source scheme 'foo'");
  fails_with(c + dir + "/notes.txt", dir + "/notes.txt");
  fails_with(c + dir + "/missing.mp4", "no such file");
  fails_with("--checkpoint " + dir + "/notes.txt " + good, dir + "/notes.txt");
  fails_with(c + good + " --topk 0", "--topk");
  fails_with(c + good + " --labels " + dir + "/labels3.txt", "3 names, but the model has 5 classes");
  fails_with(c + good + " --readout median", "--readout median");
  fails_with(c + "http://127.0.0.1:9/x --no-drop", "--no-drop");
  fails_with(c + good + " --show", "--show");
  std::string out;
  ASSERT_EQ(run_command(kBin + " stream " + c + good + " --labels " + dir + "/labels.json --as-fast-as-possible --no-drop --topk 1 --jsonl -", &out), 0) << out;
  EXPECT_NE(out.find("\"label\":\""), std::string::npos) << out;
}

TEST(Stream, LiveBenchmarkQuickRun) {
  std::string out;
  ASSERT_EQ(run_command(kBin + " --threads 1 bench stream --quick --repeats 1 --set parts=live --set seconds=2 --json 2>/dev/null", &out), 0)
      << out;
  const auto j = nlohmann::json::parse(out)["live"];
  EXPECT_GT(j["stream"]["frames"].get<int64_t>(), 10) << out;
  EXPECT_GT(j["rerun"]["frames"].get<int64_t>(), 0) << out;
  EXPECT_GT(j["fps_ratio"].get<double>(), 0) << out;
}

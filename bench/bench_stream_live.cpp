// End to end from a live source: a 25 fps camera-like stream served by the ffmpeg CLI on the
// loopback interface, consumed by `trecvit stream` (one recurrent step per frame), and by the
// practice of the official release, which re-runs the model over the last 32 frames for every
// new frame. Same model, same source, same duration.
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <filesystem>

#include "bench/common.h"
#include "bench/harness.h"
#include "bench/stream_parts.h"

#ifdef TRECVIT_WITH_DATASETS
#include "jobs/stream_job.h"
#include "jobs/stream_support.h"
#include "models/checkpoint.h"
#include "video_io/video_reader.h"
#endif

extern char** environ;

namespace trecvit::bench {

#ifdef TRECVIT_WITH_DATASETS
namespace {

using Clock = std::chrono::steady_clock;

// `ffmpeg -re -f lavfi -i testsrc2 ... -f mpegts -listen 1 http://127.0.0.1:PORT`, killed on scope exit.
class Server {
 public:
  Server(const std::string& size, int fps) : url_("http://127.0.0.1:" + std::to_string(free_port())) {
    std::vector<std::string> args = {"ffmpeg", "-nostdin", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i",
                                     fmt::format("testsrc2=size={}:rate={}", size, fps), "-c:v", "libx264", "-preset",
                                     "ultrafast", "-tune", "zerolatency", "-g", std::to_string(fps), "-f", "mpegts",
                                     "-listen", "1", url_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "ffmpeg", nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("bench stream live: cannot start the ffmpeg CLI (is it installed?)");
  }
  ~Server() {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  pid_t pid_ = -1;
};

}  // namespace

nlohmann::json stream_live(const Args& args) {
  const auto cfg = bench_config(args.get("config", args.quick ? "tiny" : "small"),
                                args.get_int("size", args.quick ? "32" : "112"));
  const double seconds = args.get_double("seconds", args.quick ? "3" : "20");
  const int fps = (int)args.get_int("fps", "25");
  const int64_t window = args.get_int("window", "32");
  const std::string size = args.get("source_size", "320x240");
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("trecvit_bench_live_{}", getpid());
  std::filesystem::create_directories(dir);
  const std::string ckpt = (dir / "model.pt").string();
  torch::manual_seed(0);
  {
    TRecViT model(cfg);
    save_checkpoint(*model, ckpt);
  }
  // 1. trecvit stream: one recurrent step per new frame.
  StreamResult streamed;
  {
    Server server(size, fps);
    StreamJob job;
    job.checkpoint = ckpt;
    job.sources = {server.url()};
    job.duration = seconds;
    job.backoff = std::chrono::milliseconds(200);
    streamed = run_stream(job);
  }
  // 2. The release's practice: the last `window` frames re-run through the model per new frame.
  LatencyStats latency;
  int64_t processed = 0, dropped = 0, grabbed = 0;
  double active = 0;
  {
    Server server(size, fps);
    auto model = load_checkpoint(ckpt);
    model->eval();
    torch::NoGradGuard ng;
    video::CaptureOptions co;
    co.size = video::model_input_size(cfg.image_height, cfg.image_width);
    co.backoff = std::chrono::milliseconds(200);
    video::Capture cap(server.url(), co);
    std::deque<torch::Tensor> frames;
    const auto start = Clock::now();
    Clock::time_point first;
    while (Clock::now() - start < std::chrono::duration<double>(seconds)) {
      auto f = cap.next(std::chrono::milliseconds(1000));
      if (!f) continue;
      if (processed == 0) first = f->grabbed_at;
      frames.push_back(f->rgb);
      if (static_cast<int64_t>(frames.size()) > window) frames.pop_front();
      model->forward(torch::stack(std::vector<torch::Tensor>(frames.begin(), frames.end())).unsqueeze(0));
      latency.add(1e3 * std::chrono::duration<double>(Clock::now() - f->grabbed_at).count());
      ++processed;
      dropped = f->dropped;
    }
    grabbed = cap.grabbed();
    active = std::chrono::duration<double>(Clock::now() - first).count();
  }
  std::filesystem::remove_all(dir);
  const auto& s = streamed.sources.at(0);
  const double rerun_fps = active > 0 ? processed / active : 0;
  print_row(fmt::format("live {}@{} {} fps source, {:.0f} s", cfg.name, cfg.image_height, fps, seconds),
            {{"stream", fmt::format("{:.1f} frames/s, latency p50/p95 {:.0f}/{:.0f} ms, {} dropped of {}", s.fps,
                                    s.latency_p50_ms, s.latency_p95_ms, s.dropped, s.grabbed)},
             {fmt::format("re-run {} frames", window),
              fmt::format("{:.2f} frames/s, latency p50/p95 {:.0f}/{:.0f} ms, {} dropped of {}", rerun_fps,
                          latency.percentile(0.5), latency.percentile(0.95), dropped, grabbed)},
             {"frames/s ratio", fmt::format("{:.1f}x", rerun_fps > 0 ? s.fps / rerun_fps : 0.0)}});
  return {{"config", cfg.name},
          {"image_size", cfg.image_height},
          {"source_fps", fps},
          {"seconds", seconds},
          {"stream", s.to_json()},
          {"rerun", {{"window", window}, {"frames", processed}, {"fps", rerun_fps}, {"dropped", dropped}, {"grabbed", grabbed},
                     {"latency_ms", {{"p50", latency.percentile(0.5)}, {"p95", latency.percentile(0.95)}, {"max", latency.max()}}}}},
          {"fps_ratio", rerun_fps > 0 ? s.fps / rerun_fps : 0.0}};
}
#else
nlohmann::json stream_live(const Args&) {
  throw std::runtime_error("bench stream: the live part needs the jobs library (a build with the video stack and datasets)");
}
#endif

}  // namespace trecvit::bench

#include "datasets/ssf_generator.h"
#include "blocks/file_safety.h"

#include <ATen/CPUGeneratorImpl.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "datasets/annotations.h"
#include "datasets/fashion_mnist.h"
#include "datasets/transforms.h"
#include "video_io/writer.h"

namespace trecvit::data {
namespace fs = std::filesystem;
namespace {

// An item's pose over the clip: centre (normalised to [-1, 1]), half-size, angle, opacity.
struct Pose {
  double cx, cy, half, angle, alpha;
};

// Pose at progress u in [0, 1] for the forward member of pair `pair`; odd templates play the
// same trajectory backwards, which is what makes each pair separable only by temporal order.
Pose pose_at(int64_t pair, double u, const double* r) {
  Pose p{r[0], r[1], 0.38 + 0.08 * r[2], 0.0, 1.0};
  switch (pair) {
    case 0: p.cx = -0.55 + 1.1 * u; break;                  // left -> right
    case 1: p.cy = 0.55 - 1.1 * u; break;                   // up (image y grows downwards)
    case 2: p.half *= 0.45 + 0.9 * u; break;                // approaching: growing
    case 3: p.angle = (1.6 + 0.8 * r[3]) * u; break;        // clockwise
    case 4: p.alpha = u; break;                             // appearing
  }
  return p;
}

torch::Tensor place(const torch::Tensor& item, const std::vector<Pose>& poses, int64_t size) {
  const int64_t T = poses.size();
  auto theta = torch::empty({T, 2, 3}, torch::kFloat);
  auto a = theta.accessor<float, 3>();
  for (int64_t t = 0; t < T; ++t) {
    const auto& p = poses[t];
    const double c = std::cos(p.angle) / p.half, s = std::sin(p.angle) / p.half;
    // input = R(-angle) (output - centre) / half
    a[t][0][0] = c, a[t][0][1] = s, a[t][0][2] = -(c * p.cx + s * p.cy);
    a[t][1][0] = -s, a[t][1][1] = c, a[t][1][2] = -(-s * p.cx + c * p.cy);
  }
  namespace F = torch::nn::functional;
  auto grid = F::affine_grid(theta, {T, 1, size, size}, /*align_corners=*/false);
  auto src = (item.to(torch::kFloat) / 255).view({1, 1, 28, 28}).expand({T, 1, 28, 28});
  auto mask = F::grid_sample(src, grid, F::GridSampleFuncOptions().align_corners(false).padding_mode(torch::kZeros));
  auto alpha = torch::empty({T, 1, 1, 1});
  for (int64_t t = 0; t < T; ++t) alpha[t] = poses[t].alpha;
  return (mask * alpha).squeeze(1);  // [T, size, size] coverage in [0, 1]
}

torch::Tensor tint(std::mt19937_64& rng, double lo, double hi) {
  return torch::tensor({uniform(rng, lo, hi), uniform(rng, lo, hi), uniform(rng, lo, hi)}, torch::kFloat);
}

std::string clip_label(const std::string& tmpl, const std::string& thing) {
  std::string out = tmpl;
  out.replace(out.find("[something]"), 11, thing);
  out[0] = static_cast<char>(std::tolower(out[0]));
  return out;
}

}  // namespace

const std::vector<std::string>& ssf_templates() {
  static const std::vector<std::string> t = {
      "Moving [something] from left to right", "Moving [something] from right to left",
      "Moving [something] up",                 "Moving [something] down",
      "Approaching [something]",               "Moving [something] away",
      "Rotating [something] clockwise",        "Rotating [something] counterclockwise",
      "[something] appearing",                 "[something] disappearing"};
  return t;
}

torch::Tensor render_ssf_clip(const torch::Tensor& item, const std::vector<torch::Tensor>& distractors,
                              int64_t template_index, const SSFOptions& o, uint64_t clip_seed) {
  std::mt19937_64 rng(clip_seed);
  const int64_t T = o.frames, S = o.size;
  double r[4];
  for (double& x : r) x = uniform(rng, 0, 1);
  r[0] = uniform(rng, -0.3, 0.3), r[1] = uniform(rng, -0.3, 0.3);  // where the item sits
  const int64_t pair = template_index / 2;
  const bool reverse = template_index % 2 == 1;
  std::vector<Pose> poses;
  for (int64_t t = 0; t < T; ++t) {
    const double u = T > 1 ? double(t) / double(T - 1) : 1.0;
    poses.push_back(pose_at(pair, reverse ? 1 - u : u, r));
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(clip_seed);
  auto frames = torch::full({T, S, S, 3}, uniform(rng, 15, 60), torch::kFloat);
  frames += torch::randn({T, S, S, 3}, gen) * o.noise;
  for (auto& d : distractors) {
    Pose p{uniform(rng, -0.7, 0.7), uniform(rng, -0.7, 0.7), uniform(rng, 0.2, 0.35), uniform(rng, -0.5, 0.5), 1};
    auto m = place(d, std::vector<Pose>(T, p), S).unsqueeze(3);
    frames = frames * (1 - m) + m * tint(rng, 60, 160);
  }
  auto m = place(item, poses, S).unsqueeze(3);
  frames = frames * (1 - m) + m * tint(rng, 150, 255);
  return frames.round().clamp(0, 255).to(torch::kByte);
}

SSFReport generate_ssf(const SSFOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  if (o.out_dir.empty()) throw DatasetError("ssf: no output directory");
  if (o.frames < 2 || o.size < 16 || o.train_clips < 1 || o.validation_clips < 0)
    throw DatasetError("ssf: need frames >= 2, size >= 16 and at least one training clip");
  const fs::path root(o.out_dir), videos = root / "videos";
  fs::create_directories(videos);
  const std::string mnist = o.mnist_dir.empty() ? kFashionMnistDir : o.mnist_dir;
  const FashionMnist train_items = load_fashion_mnist(mnist, "train"), test_items = load_fashion_mnist(mnist, "test");
  const auto& templates = ssf_templates();
  const int64_t total = o.train_clips + o.validation_clips;
  std::vector<nlohmann::json> entries(total);
  std::atomic<int64_t> next{0}, written{0}, reused{0};
  std::atomic<bool> stopped{false};
  auto clip_done = [&] {
    if (o.on_clip && !o.on_clip()) {
      stopped = true;
      next = total;
    }
  };
  std::mutex error_mutex;
  std::string error;
  auto worker = [&] {
    for (int64_t k; (k = next++) < total;) {
      const bool train = k < o.train_clips;
      const auto& items = train ? train_items : test_items;
      const uint64_t seed = o.seed * 1000003ULL + static_cast<uint64_t>(k);
      std::mt19937_64 rng(seed ^ 0x5bd1e995ULL);
      const int64_t tmpl = k % static_cast<int64_t>(templates.size());
      const int64_t index = static_cast<int64_t>(rng() % uint64_t(items.images.size(0)));
      const int64_t cls = items.labels[index].item<int64_t>();
      std::vector<torch::Tensor> distractors;
      for (int64_t d = 0; d < o.distractors; ++d)
        distractors.push_back(items.images[static_cast<int64_t>(rng() % uint64_t(items.images.size(0)))]);
      const std::string id = std::to_string(k + 1);
      const std::string thing = FashionMnist::class_names()[cls];
      entries[k] = {{"id", id}, {"label", clip_label(templates[tmpl], thing)}, {"template", templates[tmpl]},
                    {"placeholders", {thing}}};
      const fs::path final_path = videos / (id + ".webm");
      if (path_exists(final_path)) {
        ++reused;
        clip_done();
        continue;
      }
      try {
        auto clip = render_ssf_clip(items.images[index], distractors, tmpl, o, seed);
        const fs::path tmp = videos / (id + ".tmp.webm");
        {
          video::VideoWriter w(tmp.string(), 12.0, static_cast<int>(o.size), static_cast<int>(o.size));
          for (int64_t t = 0; t < o.frames; ++t) w.write(clip[t]);
          w.close();
        }
        fs::rename(tmp, final_path);
        ++written;
        clip_done();
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (error.empty()) error = final_path.string() + ": " + e.what();
        next = total;  // stop the other workers too
      }
    }
  };
  const int threads = o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  const int saved_threads = at::get_num_threads();
  at::set_num_threads(1);  // parallel over clips, not inside the tiny per-clip ops
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  at::set_num_threads(saved_threads);
  if (!error.empty()) throw DatasetError("ssf: " + error);
  SSFReport rep;
  rep.written = written;
  rep.reused = reused;
  rep.stopped = stopped;
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (stopped) {
    rep.seconds = seconds();
    return rep;
  }
  // Annotations last, each written whole then renamed: a partial dataset never looks complete.
  auto write_json = [&](const std::string& name, const nlohmann::json& j) {
    const fs::path tmp = root / (name + ".tmp");
    std::ofstream(tmp) << j.dump(1) << "\n";
    fs::rename(tmp, root / name);
  };
  nlohmann::json labels = nlohmann::json::object();
  for (size_t i = 0; i < templates.size(); ++i) labels[ssv2_strip_brackets(templates[i])] = std::to_string(i);
  write_json("labels.json", labels);
  write_json("train.json", nlohmann::json(std::vector<nlohmann::json>(entries.begin(), entries.begin() + o.train_clips)));
  write_json("validation.json", nlohmann::json(std::vector<nlohmann::json>(entries.begin() + o.train_clips, entries.end())));
  rep.seconds = seconds();
  return rep;
}

}  // namespace trecvit::data

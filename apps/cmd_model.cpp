// info, init, import, export, predict, synth-clip.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "blocks/runtime.h"
#include "models/accounting.h"
#include "models/checkpoint.h"
#include "models/flax_io.h"
#include "models/inference.h"
#ifdef TRECVIT_WITH_VIDEO
#include "video_io/error.h"
#include "video_io/video_reader.h"
extern "C" {
#include <libavutil/log.h>
}
#endif

namespace trecvit::cli {
namespace {

std::vector<double> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

void print_info(const TRecViTConfig& config, bool json) {
  TRecViT model(config);
  const auto a = account(*model);
  const auto rt = runtime_info();
  if (json) {
    nlohmann::json j;
    j["config"] = config_to_json(config);
    j["params_total"] = a.params_total;
    j["params_backbone"] = a.params_backbone;
    j["params_by_component"] = a.params_by_component;
    j["flops_per_frame"] = a.flops_per_frame;
    j["flops_by_component"] = a.flops_by_component;
    j["state_bytes_per_stream"] = a.state_bytes_per_stream;
    for (auto& [layer, m] : a.mixers)
      j["channel_mixers"][layer] = {{"params_total", m.params_total},   {"params_active", m.params_active},
                                    {"flops_router", m.flops_router},   {"flops_experts", m.flops_experts},
                                    {"state_bytes", m.state_bytes}};
    j["runtime"] = {{"threads", rt.threads}, {"blas", rt.blas}, {"blas_path", rt.blas_path},
                    {"blas_threads", rt.blas_threads}, {"allocator", rt.allocator}, {"omp_wait_policy", rt.omp_wait_policy},
                    {"torch_version", rt.torch_version}, {"cuda", rt.cuda}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  fmt::print("model {}: {}x{} px, patch {}, {} tokens/frame (+CLS), width {}, depth {}, heads {}, lru {}\n",
             config.name, config.image_height, config.image_width, config.patch_size, config.num_patches(),
             config.width, config.depth, config.num_heads, config.lru_width);
  fmt::print("parameters: {} total, {} backbone (without the class head)\n", a.params_total, a.params_backbone);
  for (auto& [k, v] : a.params_by_component) fmt::print("  {:<18} {:>14}\n", k, v);
  fmt::print("FLOPs per frame: {:.3f} GFLOP\n", a.flops_per_frame / 1e9);
  for (auto& [k, v] : a.flops_by_component) fmt::print("  {:<18} {:>14.3f} GFLOP\n", k, v / 1e9);
  fmt::print("channel mixers, per token: parameters total / active, FLOPs router (query, key scores, top-k) + "
             "experts, state\n");
  for (size_t i = 0; i < a.mixers.size(); ++i) {
    const auto& m = a.mixers.at("layer" + std::to_string(i));
    auto layer = model->layers[i]->as<TRecViTLayerImpl>();
    fmt::print("  layer {:<3} {:<9} {:>13} / {:>11} params  {:>11} + {:>9} FLOPs  {} B state\n", i,
               layer->mixer->type(), m.params_total, m.params_active, m.flops_router, m.flops_experts, m.state_bytes);
  }
  fmt::print("streaming state per stream: {} bytes ({:.2f} MiB), constant in the number of frames\n",
             a.state_bytes_per_stream, a.state_bytes_per_stream / 1048576.0);
  fmt::print("runtime: LibTorch {}, {} threads (OpenMP wait policy {}), BLAS {} ({}), {}\n", rt.torch_version,
             rt.threads, rt.omp_wait_policy.empty() ? "default" : rt.omp_wait_policy, rt.blas, rt.blas_path,
             rt.allocator);
}

void print_prediction(const Prediction& p, bool json) {
  if (json) {
    nlohmann::json j;
    j["logits"] = to_vec(p.logits);
    if (p.per_frame.defined()) {
      j["per_frame"] = nlohmann::json::array();
      for (int64_t t = 0; t < p.per_frame.size(0); ++t) j["per_frame"].push_back(to_vec(p.per_frame[t]));
    }
    std::cout << j.dump() << "\n";
    return;
  }
  auto top = [](const torch::Tensor& logits) {
    auto probs = torch::softmax(logits.to(torch::kDouble), 0);
    const int64_t k = std::min<int64_t>(3, logits.size(0));
    auto [vals, idx] = probs.topk(k);
    std::string s;
    for (int64_t i = 0; i < k; ++i) s += fmt::format("  class {:>4} p={:.3f}", idx[i].item<int64_t>(), vals[i].item<double>());
    return s;
  };
  if (p.per_frame.defined())
    for (int64_t t = 0; t < p.per_frame.size(0); ++t) fmt::print("frame {:>4}:{}\n", t, top(p.per_frame[t]));
  fmt::print("clip:      {}\n", top(p.logits));
}

// A .npy array as stored, or a video file decoded whole at the model's image size (short
// side resized, centre crop).
torch::Tensor read_clip(const std::string& input, const TRecViTConfig& config) {
  const bool npy = input.size() >= 4 && input.compare(input.size() - 4, 4, ".npy") == 0;
  if (npy) return read_npy(input);
#ifdef TRECVIT_WITH_VIDEO
  constexpr int64_t kMaxFrames = 4096;  // ~600 MB at 224 px: beyond that, trim the video first
  video::set_ffmpeg_log_level(AV_LOG_FATAL);
  video::VideoReader reader(input);
  if (reader.size() > kMaxFrames)
    throw std::runtime_error(fmt::format("{}: {} frames; predict decodes whole clips of at most {} (cut it with ffmpeg -t)",
                                         input, reader.size(), kMaxFrames));
  return reader.all(video::model_input_size(config.image_height, config.image_width));
#else
  throw std::runtime_error(input + ": not a .npy file, and this build has no video support (TRECVIT_WITH_VIDEO=OFF)");
#endif
}

}  // namespace

void add_model_commands(CLI::App& app, Global& g) {
  {
    auto* cmd = app.add_subcommand("info", "parameters, FLOPs, streaming state and runtime of a config or checkpoint");
    static std::string config, checkpoint;
    static bool json = false;
    cmd->add_option("--config", config, "model config JSON")->check(CLI::ExistingFile);
    cmd->add_option("--checkpoint", checkpoint, "checkpoint (its embedded config)")->check(CLI::ExistingFile);
    cmd->add_flag("--json", json, "print one JSON object");
    cmd->callback([] {
      if (config.empty() == checkpoint.empty()) throw CLI::ValidationError("info: give exactly one of --config, --checkpoint");
      print_info(config.empty() ? read_checkpoint_config(checkpoint) : load_config(config), json);
    });
  }
  {
    auto* cmd = app.add_subcommand("init", "write a freshly initialised checkpoint for a config");
    static std::string config, out;
    static uint64_t seed = 0;
    cmd->add_option("--config", config, "model config JSON")->required()->check(CLI::ExistingFile);
    cmd->add_option("--out", out, "checkpoint to write")->required();
    cmd->add_option("--seed", seed, "initialisation seed");
    cmd->callback([] {
      torch::manual_seed(seed);
      TRecViT model(load_config(config));
      save_checkpoint(*model, out);
      fmt::print("wrote {}\n", out);
    });
  }
  {
    auto* cmd = app.add_subcommand("import", "convert a released TRecViT .npz into a trecvit checkpoint");
    static std::string npz, out, config;
    cmd->add_option("--npz", npz, "released .npz (e.g. trecvit_B_k400.npz)")->required()->check(CLI::ExistingFile);
    cmd->add_option("--out", out, "checkpoint to write")->required();
    cmd->add_option("--config", config, "config to use instead of inferring it from the shapes")->check(CLI::ExistingFile);
    cmd->callback([] {
      auto model = config.empty() ? import_npz(npz) : import_npz(npz, load_config(config));
      save_checkpoint(*model, out);
      const auto& c = model->config();
      fmt::print("imported {} -> {}: width {}, depth {}, heads {}, mlp {}, lru {}x{} heads, conv {}, patch {}, {}x{} px, {} classes\n",
                 npz, out, c.width, c.depth, c.num_heads, c.mlp_dim, c.lru_width, c.lru_heads, c.conv_width,
                 c.patch_size, c.image_height, c.image_width, c.num_classes);
    });
  }
  {
    auto* cmd = app.add_subcommand("export", "write a checkpoint in the released TRecViT .npz layout");
    static std::string checkpoint, npz;
    cmd->add_option("--checkpoint", checkpoint, "trecvit checkpoint")->required()->check(CLI::ExistingFile);
    cmd->add_option("--npz", npz, ".npz to write")->required();
    cmd->callback([] {
      auto model = load_checkpoint(checkpoint);
      export_npz(*model, npz);
      fmt::print("exported {} -> {}\n", checkpoint, npz);
    });
  }
  {
    auto* cmd = app.add_subcommand("predict", "classify a clip; --per-frame streams it through the causal path");
    static std::string checkpoint, input;
    static bool per_frame = false, json = false;
    cmd->add_option("--checkpoint", checkpoint, "trecvit checkpoint")->required()->check(CLI::ExistingFile);
    cmd->add_option("input", input, "clip: .npy uint8 array [T, H, W, 3], or a video file")->required()->check(CLI::ExistingFile);
    cmd->add_flag("--per-frame", per_frame, "print the streaming logits after every frame");
    cmd->add_flag("--json", json, "print {\"logits\": [...], \"per_frame\": [[...], ...]}");
    cmd->callback([] {
      auto model = load_checkpoint(checkpoint);
      auto frames = read_clip(input, model->config());
      if (frames.dim() != 4 || frames.size(3) != 3)
        throw std::runtime_error(input + ": expected an array [T, H, W, 3], got shape " + c10::str(frames.sizes()));
      if (frames.scalar_type() != torch::kByte && !frames.is_floating_point())
        throw std::runtime_error(input + ": expected uint8 frames (or float in [0, 1])");
      print_prediction(predict_clip(*model, frames, per_frame), json);
    });
  }
  {
    auto* cmd = app.add_subcommand("synth-clip", "write a synthetic moving-square clip as .npy (for demos and tests)");
    static std::string out;
    static int64_t frames = 16, size = 32;
    static uint64_t seed = 0;
    cmd->add_option("--out", out, ".npy to write")->required();
    cmd->add_option("--frames", frames, "number of frames")->check(CLI::PositiveNumber);
    cmd->add_option("--size", size, "height = width in pixels")->check(CLI::PositiveNumber);
    cmd->add_option("--seed", seed, "noise seed");
    cmd->callback([] {
      write_npy(out, synthetic_clip(frames, size, size, seed));
      fmt::print("wrote {} ({} frames, {}x{})\n", out, frames, size, size);
    });
  }
}

}  // namespace trecvit::cli

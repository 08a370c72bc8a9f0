#pragma once
// TRecViT configuration: JSON in configs/, every field validated, errors name the field.
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "blocks/channel_mixer.h"

namespace trecvit {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TRecViTConfig {
  std::string name = "custom";
  int64_t image_height = 224, image_width = 224;
  int64_t patch_size = 16;
  int64_t num_frames = 32;  // the clip length the model is trained/evaluated on
  int64_t width = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  int64_t mlp_dim = 3072;
  int64_t lru_width = 1536;  // state_multiplier 2
  int64_t lru_heads = 12;    // blocks of the RG-LRU gates (= num_heads in the release)
  int64_t conv_width = 4;
  double min_rad = 0.5;
  int64_t rep_size = 3072;   // pre_logits width: 3072 for every released size
  int64_t num_classes = 400;
  std::string readout = "mean";  // "mean" over frames (released) or "last" frame
  ChannelMixerOptions channel_mixer;                    // default for every layer
  std::map<int64_t, ChannelMixerOptions> layer_mixers;  // per-layer overrides

  int64_t grid_h() const { return image_height / patch_size; }
  int64_t grid_w() const { return image_width / patch_size; }
  int64_t num_patches() const { return grid_h() * grid_w(); }
  int64_t num_tokens() const { return num_patches() + 1; }  // + CLS
  ChannelMixerOptions mixer_for_layer(int64_t layer) const;

  // Throws ConfigError naming the first invalid field.
  void validate() const;
  double estimated_parameters() const;  // from the sizes alone, before anything is allocated
};

TRecViTConfig config_from_json(const nlohmann::json& j, const std::string& source = "config");
nlohmann::json config_to_json(const TRecViTConfig& c);
// The scalar fields' table rows (image_size, channel_mixer, layer_channel_mixers have their own
// shapes), for the generated docs.
std::vector<FieldInfo> config_fields();
// Refuses (ConfigError naming `what`) a forward of batch x frames clips whose weights and
// activations cannot fit in this machine's memory, before anything is allocated.
void check_activation_memory(const TRecViTConfig& config, int64_t batch, int64_t frames, const std::string& what);
TRecViTConfig load_config(const std::string& path);

}  // namespace trecvit

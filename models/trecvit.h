#pragma once
// The TRecViT video classifier (google-deepmind/trecvit), offline and causal streaming.
//
// frames [B, T, H, W, 3] (uint8, or float in [0, 1])
//   -> per-frame patches (kernel = stride = (1, P, P)) + learned spatial position embedding
//   -> zero-initialised CLS token prepended per frame (no position embedding)
//   -> depth x TRecViTLayer -> LayerNorm (encoder_norm) on the CLS tokens
//   -> z_t = tanh(pre_logits(cls_t)) -> mean over frames (or last frame) -> cls_head
// The head is affine, so the running mean of z_t gives exact per-frame streaming logits.
#include <torch/torch.h>

#include <map>
#include <vector>

#include "blocks/tensor_pool.h"
#include "blocks/trecvit_layer.h"
#include "models/config.h"

namespace trecvit {

// Everything a batch of independent streams carries between calls to step().
// Its size is fixed at creation: it never grows with the number of frames seen. step() updates
// its tensors in place, and a copy shares them: clone() for an independent fork.
struct StreamState {
  std::vector<RecurrentState> layers;  // per layer, rows = B * num_tokens
  torch::Tensor frames_seen;           // [B] int64
  torch::Tensor z_sum;                 // [B, rep_size], running sum of tanh(pre_logits)
  // The step's working buffers, reused from the second step on (no system allocation once the
  // caller has let go of the previous step's outputs). Shared by copies of the state.
  std::shared_ptr<TensorPool> pool;
  int64_t batch() const { return frames_seen.size(0); }
  int64_t bytes() const;
  StreamState clone() const;  // deep copy with a pool of its own
};

class TRecViTImpl : public torch::nn::Cloneable<TRecViTImpl> {
 public:
  explicit TRecViTImpl(const TRecViTConfig& config);
  void reset() override;

  // Clip logits [B, num_classes].
  torch::Tensor forward(const torch::Tensor& frames);
  // Logits after each frame [B, T, num_classes] (what streaming reports), computed offline.
  torch::Tensor forward_per_frame(const torch::Tensor& frames);
  // z_t = tanh(pre_logits(LN(cls_t))) for every frame: [B, T, rep_size].
  torch::Tensor frame_features(const torch::Tensor& frames);

  // Streaming: a fresh state for `batch` streams, then step() with 1 or more new frames
  // [B, t, H, W, 3]; returns the logits after each new frame [B, t, num_classes].
  StreamState init_stream(int64_t batch);
  torch::Tensor step(StreamState& state, const torch::Tensor& frames);
  void reset_stream(StreamState& state, int64_t stream) const;
  // Advances only the listed streams (int64 [b], distinct, any order; undefined: all, in order)
  // by frames [b, t, H, W, 3]; every other stream's state is untouched. Returns the frame
  // representations z_t [b, t, rep_size]; the state's running sum and count include them, so
  // head(z_sum / frames_seen) is the mean readout and head(z_t) the last-frame one.
  torch::Tensor advance(StreamState& state, const torch::Tensor& frames, const torch::Tensor& streams = {});
  // cls_head: logits from a clip or frame representation (affine, so it commutes with means).
  torch::Tensor head(const torch::Tensor& z) { return readout(z); }

  // Patch tokens with CLS in the token-major layout [B, N+1, T, D].
  torch::Tensor tokenize(const torch::Tensor& frames);

  const TRecViTConfig& config() const { return config_; }
  // The names of the outputs (empty: unnamed). Checkpoints carry them; training sets them from
  // the dataset. Throws std::invalid_argument unless empty or num_classes names.
  const std::vector<std::string>& class_names() const { return class_names_; }
  void set_class_names(std::vector<std::string> names);
  // "mean" or "last": how forward() reads out a clip (the weights do not depend on it).
  void set_readout(const std::string& readout);

  // Sum of the channel mixers' auxiliary losses (MoE balancing, sigma-MoE entropy) from the last
  // training-mode forward: a scalar for the training code to add to its loss (0 when none).
  torch::Tensor aux_loss();
  // Routing statistics of the sparse mixers per layer: start (and reset) collection, run an
  // evaluation set, read the summaries; collection off again with false.
  void collect_routing_stats(bool on);
  std::map<int64_t, RoutingSummary> routing_stats();
  // Parameters whose gradients are row-sparse (sparse_grad tables): step them with SparseRowAdam.
  std::vector<torch::Tensor> sparse_grad_parameters();

  torch::nn::Linear embedding{nullptr};  // flattened (1, P, P) conv over (kh, kw, c)
  torch::Tensor pos_embedding;           // [1, N, D]
  torch::Tensor cls;                     // [1, 1, D]
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm encoder_norm{nullptr};
  torch::nn::Linear pre_logits{nullptr}, cls_head{nullptr};

 private:
  torch::Tensor encode(torch::Tensor x, StreamState* state, const torch::Tensor& reset_rows);
  torch::Tensor encode_stream(StreamState& state, const torch::Tensor& frames);  // z; sum, count unchanged
  torch::Tensor readout(const torch::Tensor& z_cumsum_mean_or_last);
  TRecViTConfig config_;
  std::vector<std::string> class_names_;
};
TORCH_MODULE(TRecViT);

}  // namespace trecvit

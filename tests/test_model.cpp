// Model-level properties: causality, exact streaming for every prefix and chunk size,
// constant state, per-stream reset, gradients, training, and the released parameter counts.
#include <c10/core/CPUAllocator.h>

#include "models/accounting.h"
#include "models/trecvit.h"
#include "tests/test_util.h"

using namespace trecvit;
using trecvit::test::max_abs_diff;
using trecvit::test::tiny_config;

namespace {

torch::Tensor random_clip(int64_t B, int64_t T, const TRecViTConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {B, T, c.image_height, c.image_width, 3}, torch::kByte);
}

}  // namespace

TEST(TRecViT, OutputShapesAndUint8EqualsFloatInput) {
  auto c = tiny_config();
  torch::manual_seed(0);
  TRecViT model(c);
  auto clip = random_clip(2, 5, c, 1);
  auto logits = model->forward(clip);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, c.num_classes}));
  auto as_float = model->forward(clip.to(torch::kFloat) / 255);
  EXPECT_LT(max_abs_diff(logits, as_float), 1e-6);
  EXPECT_EQ(model->forward_per_frame(clip).sizes(), (std::vector<int64_t>{2, 5, c.num_classes}));
}

TEST(TRecViT, ClipLogitsAreTheLastPerFrameLogits) {
  auto c = tiny_config();
  TRecViT model(c);
  auto clip = random_clip(1, 6, c, 2);
  EXPECT_LT(max_abs_diff(model->forward_per_frame(clip).select(1, 5), model->forward(clip)), 1e-6);
}

TEST(TRecViT, CausalChangingLaterFramesLeavesEarlierOutputs) {
  auto c = tiny_config();
  torch::manual_seed(0);
  TRecViT model(c);
  auto clip = random_clip(2, 8, c, 3);
  auto base = model->forward_per_frame(clip);
  for (int64_t t : {0, 3, 6}) {
    auto changed = clip.clone();
    changed.narrow(1, t + 1, 8 - t - 1).random_(0, 256);
    auto out = model->forward_per_frame(changed);
    EXPECT_LT(max_abs_diff(out.narrow(1, 0, t + 1), base.narrow(1, 0, t + 1)), 1e-6) << "t=" << t;
    EXPECT_GT(max_abs_diff(out.narrow(1, t + 1, 1), base.narrow(1, t + 1, 1)), 1e-4) << "frame t+1 must matter";
  }
}

TEST(TRecViT, StreamingEqualsOfflineForEveryPrefixAndChunkSize) {
  for (std::string readout : {"mean", "last"}) {
    auto c = tiny_config();
    c.readout = readout;
    torch::manual_seed(0);
    TRecViT model(c);
    model->eval();
    torch::NoGradGuard ng;
    const int64_t T = 9;
    auto clip = random_clip(2, T, c, 4);
    auto offline = model->forward_per_frame(clip);  // logits after each prefix [0, t]
    for (int64_t chunk = 1; chunk <= T; ++chunk) {
      auto state = model->init_stream(2);
      const int64_t bytes = state.bytes();
      std::vector<torch::Tensor> outs;
      for (int64_t t = 0; t < T; t += chunk) outs.push_back(model->step(state, clip.narrow(1, t, std::min(chunk, T - t))));
      EXPECT_LE(max_abs_diff(torch::cat(outs, 1), offline), 1e-5) << readout << " chunk " << chunk;
      EXPECT_EQ(state.bytes(), bytes) << "state must not grow with t";
    }
  }
}

TEST(TRecViT, PerStreamResetRestartsOnlyThatStream) {
  auto c = tiny_config();
  torch::manual_seed(0);
  TRecViT model(c);
  model->eval();
  torch::NoGradGuard ng;
  auto clip = random_clip(2, 6, c, 5);
  auto state = model->init_stream(2);
  model->step(state, clip.narrow(1, 0, 3));
  model->reset_stream(state, 1);
  auto out = model->step(state, clip.narrow(1, 3, 3));
  // Stream 0 continues its 6-frame clip; stream 1 starts afresh at frame 3.
  auto full0 = model->forward_per_frame(clip.narrow(0, 0, 1)).narrow(1, 3, 3);
  auto fresh1 = model->forward_per_frame(clip.narrow(0, 1, 1).narrow(1, 3, 3));
  EXPECT_LE(max_abs_diff(out.narrow(0, 0, 1), full0), 1e-5);
  EXPECT_LE(max_abs_diff(out.narrow(0, 1, 1), fresh1), 1e-5);
  EXPECT_THROW(model->reset_stream(state, 2), c10::Error);
}

TEST(TRecViT, AdvancingSomeStreamsEqualsEachStreamAlone) {
  torch::manual_seed(4);
  TRecViT model(tiny_config());
  model->eval();
  torch::NoGradGuard ng;
  const auto& c = model->config();
  const int64_t S = 3, T = 6;
  auto clips = torch::randint(0, 256, {S, T, c.image_height, c.image_width, 3}, torch::kByte);
  // Alone: each stream stepped by itself, one frame at a time.
  std::vector<torch::Tensor> alone;
  for (int64_t s = 0; s < S; ++s) {
    auto st = model->init_stream(1);
    std::vector<torch::Tensor> rows;
    for (int64_t t = 0; t < T; ++t) rows.push_back(model->step(st, clips.narrow(0, s, 1).narrow(1, t, 1))[0][0]);
    alone.push_back(torch::stack(rows));
  }
  // Together: irregular subsets in changing order, as frames arrive from sources at different rates.
  auto st = model->init_stream(S);
  std::vector<int64_t> next(S, 0);
  const std::vector<std::vector<int64_t>> arrivals = {{0, 1, 2}, {2}, {1, 0}, {2, 0}, {0}, {0, 1, 2}, {1, 2},
                                                      {0, 1}, {2, 1}, {1}, {0, 2}, {2}, {1}};
  for (const auto& who : arrivals) {
    std::vector<int64_t> live;
    for (int64_t s : who)
      if (next[s] < T) live.push_back(s);
    if (live.empty()) continue;
    auto idx = torch::tensor(live, torch::kLong);
    std::vector<torch::Tensor> frames;
    for (int64_t s : live) frames.push_back(clips[s].narrow(0, next[s], 1));
    auto before = st.z_sum.clone();
    auto z = model->advance(st, torch::stack(frames), idx);
    ASSERT_EQ(z.sizes(), (std::vector<int64_t>{static_cast<int64_t>(live.size()), 1, c.rep_size}));
    for (size_t r = 0; r < live.size(); ++r) {
      const int64_t s = live[r];
      auto mean = model->head(st.z_sum[s] / st.frames_seen[s].item<double>());
      EXPECT_LT(max_abs_diff(mean, alone[s][next[s]]), 1e-5) << "stream " << s << " frame " << next[s];
      ++next[s];
    }
    for (int64_t s = 0; s < S; ++s)
      if (std::find(live.begin(), live.end(), s) == live.end()) EXPECT_TRUE(st.z_sum[s].equal(before[s])) << "untouched " << s;
  }
  for (int64_t s = 0; s < S; ++s) EXPECT_EQ(next[s], T);
  EXPECT_THROW(model->advance(st, clips.narrow(1, 0, 1).narrow(0, 0, 2), torch::tensor({1, 1}, torch::kLong)), c10::Error);
}

TEST(TRecViT, StreamingStepAllocatesNoTensorBufferAfterTheFirstFrame) {
  for (std::string readout : {"mean", "last"}) {
    auto c = tiny_config();
    c.readout = readout;
    torch::manual_seed(0);
    TRecViT model(c);
    model->eval();
    torch::NoGradGuard ng;
    const int64_t T = 6;
    auto clip = random_clip(2, T, c, 7);
    auto offline = model->forward_per_frame(clip);
    auto streamed = torch::empty_like(offline);
    auto state = model->init_stream(2);
    int64_t after_first = 0;
    for (int64_t t = 0; t < T; ++t) {
      auto frame = clip.narrow(1, t, 1);  // a view: no buffer of its own
      streamed.narrow(1, t, 1).copy_(model->step(state, frame));  // the step's output is let go here
      if (t == 0) after_first = cpu_tensor_allocations();
    }
    EXPECT_EQ(cpu_tensor_allocations(), after_first) << readout << ": frames 2.." << T << " must reuse the first's buffers";
    const auto stats = state.pool->stats();
    EXPECT_GT(stats.hits, 0);
    EXPECT_EQ(stats.in_use_bytes, 0) << "nothing the step made is still held";
    EXPECT_LE(max_abs_diff(streamed, offline), 1e-5) << readout;
    // The state is updated in place, so a fork is a clone, not a copy.
    auto fork = state.clone();
    auto next = random_clip(2, 1, c, 8);
    EXPECT_TRUE(model->step(state, next).equal(model->step(fork, next))) << "a clone continues as the original";
    model->step(state, next);
    EXPECT_FALSE(state.layers[0].h.equal(fork.layers[0].h)) << "stepping one leaves the other alone";
  }
}

TEST(TensorPool, ReusesFreedBuffersAndLetsTensorsOutliveIt) {
  torch::Tensor kept;
  {
    TensorPool pool;
    const int64_t start = cpu_tensor_allocations();
    void* first = nullptr;
    {
      TensorPool::Scope scope(&pool);
      first = torch::ones({1000}).data_ptr();
    }
    EXPECT_EQ(cpu_tensor_allocations(), start + 1);
    {
      TensorPool::Scope scope(&pool);
      auto again = torch::zeros({1000});
      EXPECT_EQ(again.data_ptr(), first) << "the freed buffer is reused";
      kept = torch::full({1000}, 3.0f);  // the cached one is in use: a second buffer
      TensorPool::Scope off(nullptr);
      auto outside = torch::ones({1000});  // no pool: counted below as a system allocation
    }
    EXPECT_EQ(cpu_tensor_allocations(), start + 3);
    const auto stats = pool.stats();
    EXPECT_EQ(stats.hits, 1);
    EXPECT_EQ(stats.misses, 2);
    EXPECT_EQ(stats.in_use_bytes, 4000);  // kept
    EXPECT_EQ(stats.cached_bytes, 4000);  // again's buffer
    pool.trim();
    EXPECT_EQ(pool.stats().cached_bytes, 0);
    // raw_allocate (oneDNN's route) works inside a scope and returns to the pool, and outside one.
    c10::Allocator* cpu = c10::GetCPUAllocator();
    {
      TensorPool::Scope scope(&pool);
      void* raw = cpu->raw_allocate(4000);
      static_cast<float*>(raw)[999] = 1.0f;
      cpu->raw_deallocate(raw);
    }
    EXPECT_EQ(pool.stats().cached_bytes, 4000);
    void* raw = cpu->raw_allocate(64);
    cpu->raw_deallocate(raw);
  }
  EXPECT_EQ(kept.sum().item<float>(), 3000.0f) << "a tensor outlives its pool";
  kept = torch::Tensor();
  TensorPool tiny(/*max_cached_bytes=*/100);
  {
    TensorPool::Scope scope(&tiny);
    torch::ones({1000});
  }
  EXPECT_EQ(tiny.stats().cached_bytes, 0) << "over the cap: freed, not cached";
  EXPECT_EQ(tiny.stats().misses, 1);
}

TEST(TRecViT, FiniteDifferenceGradientsInDouble) {
  auto c = tiny_config();
  c.depth = 1;
  torch::manual_seed(0);
  TRecViT model(c);
  model->to(torch::kDouble);
  auto clip = random_clip(1, 3, c, 6).to(torch::kDouble) / 255;
  auto w = torch::randn({1, c.num_classes}, torch::kDouble);
  auto loss = [&] { return (model->forward(clip) * w).sum(); };
  auto layer = model->layers[0]->as<TRecViTLayerImpl>();
  std::vector<std::pair<std::string, torch::Tensor>> params = {
      {"a_param", layer->recurrent_block->rg_lru->a_param},
      {"input_gate_w", layer->recurrent_block->rg_lru->input_gate_w},
      {"conv w", layer->recurrent_block->conv_1d->w},
      {"linear_x", layer->recurrent_block->linear_x->weight},
      {"temporal scale", layer->temporal_pre_norm->scale},
      {"query", layer->attention->query->weight},
      {"pos_embedding", model->pos_embedding},
      {"embedding", model->embedding->weight}};
  std::vector<torch::Tensor> tensors;
  for (auto& p : params) tensors.push_back(p.second);
  auto grads = torch::autograd::grad({loss()}, tensors);
  for (size_t i = 0; i < params.size(); ++i)
    trecvit::test::expect_grad_matches(loss, params[i].second, grads[i], 4, 1e-5, params[i].first);
}

TEST(TRecViT, TinyModelOverfitsATinyBatch) {
  auto c = tiny_config();
  torch::manual_seed(0);
  TRecViT model(c);
  auto clip = random_clip(4, 4, c, 7);
  auto labels = torch::tensor({0, 1, 2, 3}, torch::kLong);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(clip), labels);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  EXPECT_LT(last, first / 10) << "loss " << first << " -> " << last;
}

TEST(TRecViT, ParameterCountsMatchTheReleasedShapes) {
  // Counts implied by the shapes of google-deepmind/trecvit's released checkpoints, 400 classes.
  struct Case {
    const char* name;
    int64_t total, backbone;
  };
  for (auto cs : {Case{"small", 37154704, 35925504}, Case{"base", 136778128, 135548928}}) {
    auto c = load_config(std::string(TRECVIT_CONFIG_DIR) + "/" + cs.name + ".json");
    TRecViT model(c);
    auto a = account(*model);
    EXPECT_EQ(a.params_total, cs.total) << cs.name;
    EXPECT_EQ(a.params_backbone, cs.backbone) << cs.name;
  }
}

TEST(TRecViT, WrongFrameSizeIsAClearError) {
  auto c = tiny_config();
  TRecViT model(c);
  try {
    model->forward(torch::zeros({1, 2, 16, 16, 3}, torch::kByte));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("built for 32x32"), std::string::npos) << e.what();
  }
}

// PEER: gradients in double, chunking, the k = 1 MLP equivalence, sparse == dense table
// gradients, exact streaming with PEER in the middle layer, bounded memory at a million experts,
// config errors, accounting and the CLI.
#include <fstream>
#include <nlohmann/json.hpp>

#include "blocks/mlp.h"
#include "blocks/peer.h"
#include "models/accounting.h"
#include "models/checkpoint.h"
#include "models/flax_io.h"
#include "models/trecvit.h"
#include "tests/test_grad_util.h"

using namespace trecvit;
using trecvit::test::max_abs_diff;

namespace {

TRecViTConfig tiny_peer_config() { return load_config(std::string(TRECVIT_CONFIG_DIR) + "/tiny-peer.json"); }

void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard ng;
  auto a = from.parameters(), b = to.parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
}

// Resident-set figures of this process from /proc/self/status, in bytes.
int64_t status_bytes(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1)) * 1024;
  return -1;
}

}  // namespace

TEST(PEER, GradientsMatchFiniteDifferencesInDouble) {
  struct Case {
    std::string act, norm;
    bool sparse;
  };
  for (auto c : {Case{"gelu", "batch", false}, Case{"relu", "layer", true}, Case{"gelu", "none", true}}) {
    torch::manual_seed(1);
    PEER peer(PEEROptions(6, 16).heads(2).topk(3).key_dim(4).activation(c.act).query_norm(c.norm).sparse_grad(c.sparse)
                  .chunk_tokens(2));
    peer->to(torch::kDouble);
    auto x = torch::randn({5, 6}, torch::kDouble).requires_grad_(true);
    trecvit::test::check_gradients([&] { return peer(x); },
                                   {{"query", peer->router->query_proj->weight},
                                    {"sub_keys", peer->router->sub_keys},
                                    {"up", peer->up},
                                    {"down", peer->down},
                                    {"x", x}},
                                   8, c.act + "/" + c.norm);
  }
}

TEST(PEER, ChunkedEqualsUnchunked) {
  torch::manual_seed(2);
  PEER a(PEEROptions(16, 144).heads(3).topk(5).key_dim(6).chunk_tokens(4));
  PEER b(PEEROptions(16, 144).heads(3).topk(5).key_dim(6).chunk_tokens(100000));
  copy_parameters(*a, *b);
  auto x = torch::randn({2, 19, 16});
  auto ya = a(x), yb = b(x);
  EXPECT_EQ(ya.sizes(), x.sizes());
  EXPECT_LT(max_abs_diff(ya, yb), 1e-6);
  auto G = torch::randn_like(ya);
  auto ga = torch::autograd::grad({ya}, {a->up, a->router->sub_keys}, {G});
  auto gb = torch::autograd::grad({yb}, {b->up, b->router->sub_keys}, {G});
  EXPECT_LT(max_abs_diff(ga[0], gb[0]), 1e-6);
  EXPECT_LT(max_abs_diff(ga[1], gb[1]), 1e-6);
}

TEST(PEER, SparseTableGradientsEqualDense) {
  torch::manual_seed(3);
  PEER dense(PEEROptions(8, 64).heads(2).topk(4).key_dim(4));
  PEER sparse(PEEROptions(8, 64).heads(2).topk(4).key_dim(4).sparse_grad(true));
  copy_parameters(*dense, *sparse);
  auto x = torch::randn({9, 8});
  auto G = torch::randn({9, 8});
  auto gd = torch::autograd::grad({dense(x)}, {dense->up, dense->down}, {G});
  auto gs = torch::autograd::grad({sparse(x)}, {sparse->up, sparse->down}, {G});
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(gs[i].is_sparse());
    EXPECT_TRUE(gs[i].is_coalesced());
    EXPECT_LT(max_abs_diff(gs[i].to_dense(), gd[i]), 1e-6);
    // Exactly the touched rows are stored.
    EXPECT_EQ(gs[i]._indices().size(1), (gd[i].abs().sum(1) > 0).sum().item<int64_t>());
  }
  EXPECT_EQ(sparse->sparse_grad_parameters().size(), 2u);
  EXPECT_TRUE(dense->sparse_grad_parameters().empty());
}

TEST(PEER, TopOneIsAnMLPWithOneHiddenNeuronPerHead) {
  // A LayerNorm query with zero gain makes each head's query its bias: every token retrieves the
  // same expert per head, so PEER(k = 1) must equal the MLP whose h hidden neurons are those.
  torch::manual_seed(4);
  const int64_t D = 8, h = 3;
  PEER peer(PEEROptions(D, 64).heads(h).topk(1).key_dim(6).query_norm("layer"));
  {
    torch::NoGradGuard ng;
    peer->router->ln_weight.zero_();
    peer->router->ln_bias.normal_();
  }
  auto x = torch::randn({11, D}, torch::requires_grad());
  auto ids = peer->router(x).ids.view({11, h});
  ASSERT_TRUE(torch::equal(ids, ids[0].expand({11, h}))) << "the routing must not depend on the token";
  // The experts are the brute-force argmax of bias . key over all 64.
  auto q = peer->router->ln_bias.detach().view({h, 2, 3});
  auto& keys = peer->router->sub_keys;
  for (int64_t hd = 0; hd < h; ++hd) {
    auto s = (keys[hd][0].mv(q[hd][0]).unsqueeze(1) + keys[hd][1].mv(q[hd][1]).unsqueeze(0)).reshape(-1);
    EXPECT_EQ(ids[0][hd].item<int64_t>(), s.argmax().item<int64_t>());
  }
  MLP mlp(MLPOptions(D, h));
  {
    torch::NoGradGuard ng;
    mlp->fc1->weight.copy_(peer->up.index_select(0, ids[0]));
    mlp->fc2->weight.copy_(peer->down.index_select(0, ids[0]).t());
    mlp->fc1->bias.zero_();
    mlp->fc2->bias.zero_();
  }
  auto y_peer = peer(x), y_mlp = mlp(x);
  EXPECT_LT(max_abs_diff(y_peer, y_mlp), 1e-6);
  auto G = torch::randn({D, 11}).t();
  auto gx_peer = torch::autograd::grad({y_peer}, {x}, {G})[0];
  auto gx_mlp = torch::autograd::grad({y_mlp}, {x}, {G})[0];
  EXPECT_LT(max_abs_diff(gx_peer, gx_mlp), 1e-5);
}

TEST(PEER, StreamingEqualsOfflineWithPEERInTheMiddleLayer) {
  // Eval mode (BatchNorm on running statistics); the LayerNorm query is causal-safe in training too.
  for (std::string norm : {"batch", "layer"}) {
    auto c = tiny_peer_config();
    c.layer_mixers[1].set("query_norm", norm);
    torch::manual_seed(5);
    TRecViT model(c);
    ASSERT_EQ(model->layers[1]->as<TRecViTLayerImpl>()->mixer->type(), "peer");
    if (norm == "batch") model->eval();
    torch::NoGradGuard ng;
    const int64_t T = 7;
    auto clip = torch::randint(0, 256, {2, T, c.image_height, c.image_width, 3}, torch::kByte);
    auto offline = model->forward_per_frame(clip);
    for (int64_t chunk : {1, 3, 7}) {
      auto state = model->init_stream(2);
      std::vector<torch::Tensor> outs;
      for (int64_t t = 0; t < T; t += chunk) outs.push_back(model->step(state, clip.narrow(1, t, std::min(chunk, T - t))));
      EXPECT_LE(max_abs_diff(torch::cat(outs, 1), offline), 1e-5) << norm << " chunk " << chunk;
    }
  }
}

TEST(PEER, MemoryStaysBoundedAtAMillionExperts) {
  // N = 1024^2, D = 256: the tables alone are 2 GiB. A forward+backward of 4096 tokens with
  // row-sparse table gradients must stay within train_working_bytes() of extra resident memory
  // (no [tokens, h, k, D] tensors, no dense N x D gradients), which is itself bounded.
  torch::manual_seed(6);
  const int64_t D = 256, M = 4096;
  PEER peer(PEEROptions(D, 1024 * 1024).heads(8).topk(16).key_dim(128).sparse_grad(true));
  auto x = torch::randn({M, D}, torch::requires_grad());
  auto G = torch::randn({M, D});
  std::ofstream("/proc/self/clear_refs") << "5";  // restart the peak (VmHWM) from the current RSS
  const int64_t before = status_bytes("VmRSS");
  peer(x).backward(G);
  const int64_t peak = status_bytes("VmHWM") - before;
  const int64_t promise = peer->train_working_bytes(M);
  ASSERT_GT(before, int64_t(2) << 30) << "the tables must be resident";
  EXPECT_LE(peak, promise) << "peak extra RSS " << peak / 1048576 << " MiB";
  EXPECT_LE(promise, int64_t(1536) << 20) << "the design promises at most 1.5 GiB here";
  std::cout << "[ memory ] peak extra RSS " << peak / 1048576 << " MiB, promised <= " << promise / 1048576
            << " MiB\n";
  ASSERT_TRUE(peer->up.grad().is_sparse());
  const int64_t rows = peer->up.grad()._indices().size(1);
  EXPECT_GT(rows, 100000);  // many experts used: routing is not collapsed
  EXPECT_LE(rows, M * 8 * 16);
  EXPECT_TRUE(x.grad().isfinite().all().item<bool>());
}

TEST(PEER, ConfigsLoadAndBadValuesNameTheField) {
  auto tiny = tiny_peer_config();
  EXPECT_EQ(tiny.mixer_for_layer(1).type, "peer");
  EXPECT_EQ(tiny.mixer_for_layer(0).type, "mlp");
  auto small = load_config(std::string(TRECVIT_CONFIG_DIR) + "/small-peer.json");
  auto m = small.mixer_for_layer(small.depth / 2);
  EXPECT_EQ(m.type, "peer");
  EXPECT_EQ(m.get<int64_t>("num_experts"), 1024 * 1024);
  EXPECT_EQ(m.get<int64_t>("heads"), 8);
  EXPECT_EQ(m.get<int64_t>("topk"), 16);
  EXPECT_EQ(config_from_json(config_to_json(tiny)).mixer_for_layer(1).get<int64_t>("key_dim"), 8);  // round trip

  auto base = config_to_json(tiny);
  struct Case {
    nlohmann::json mixer;
    std::string needle;
  };
  std::vector<Case> cases = {
      {{{"type", "peer"}, {"num_experts", 1000}}, "layer_channel_mixers.1.num_experts"},
      {{{"type", "peer"}, {"key_dim", 7}}, "layer_channel_mixers.1.key_dim"},
      {{{"type", "peer"}, {"num_experts", 64}, {"topk", 9}}, "layer_channel_mixers.1.topk"},
      {{{"type", "peer"}, {"topk", 4}, {"half_topk", 2}}, "layer_channel_mixers.1.half_topk"},
      {{{"type", "peer"}, {"activation", "tanh"}}, "layer_channel_mixers.1.activation"},
      {{{"type", "peer"}, {"query_norm", "group"}}, "layer_channel_mixers.1.query_norm"},
      {{{"type", "peer"}, {"hidden", 64}}, "layer_channel_mixers.1.hidden"},
      {{{"type", "peer"}, {"heads", 0}}, "layer_channel_mixers.1.heads"},
      {{{"type", "peer"}, {"sparse_grad", 1}}, "layer_channel_mixers.1.sparse_grad"},
      {{{"type", "pkm"}, {"activation", "relu"}}, "layer_channel_mixers.1.activation"},
      {{{"type", "moe"}, {"num_experts", 4}, {"topk", 5}}, "layer_channel_mixers.1.topk"},
      {{{"type", "moe"}, {"aux_weight", -1}}, "layer_channel_mixers.1.aux_weight"},
      {{{"type", "sigma_moe"}, {"num_experts", 8}, {"expert_dropout", 1.5}}, "layer_channel_mixers.1.expert_dropout"},
      {{{"type", "sigma_moe"}}, "layer_channel_mixers.1.topk"},  // default E = mlp_dim / 128 = 1 < topk 4
      {{{"type", "mixer"}}, "layer_channel_mixers.1.type"}};
  for (auto& cs : cases) {
    auto j = base;
    j["layer_channel_mixers"]["1"] = cs.mixer;
    try {
      config_from_json(j, "cfg.json");
      ADD_FAILURE() << "expected an error naming " << cs.needle << " for " << cs.mixer.dump();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + cs.needle + "'"), std::string::npos) << e.what();
    }
  }
  auto j = base;
  j["channel_mixer"] = {{"type", "peer"}, {"num_experts", 50}};
  EXPECT_THROW(config_from_json(j), ConfigError);
  auto bad = ChannelMixerOptions("peer").set("num_experts", 50);
  EXPECT_THROW(make_channel_mixer(bad, 8), c10::Error);
}

TEST(PEER, CheckpointRoundTripAndNpzExportRefusal) {
  torch::manual_seed(9);
  TRecViT model(tiny_peer_config());
  model->eval();
  const std::string dir = trecvit::test::temp_dir();
  save_checkpoint(*model, dir + "/m.ckpt");
  auto back = load_checkpoint(dir + "/m.ckpt");
  back->eval();
  auto clip = torch::randint(0, 256, {1, 3, 32, 32, 3}, torch::kByte);
  torch::NoGradGuard ng;
  EXPECT_LT(max_abs_diff(back->forward(clip), model->forward(clip)), 1e-6);
  try {
    export_npz(*model, dir + "/m.npz");
    ADD_FAILURE() << "export of a PEER layer must fail";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'peer' channel mixer"), std::string::npos) << e.what();
  }
}

TEST(PEER, AccountingCountsTheRouter) {
  PEER peer(PEEROptions(32, 256).heads(2).topk(4).key_dim(8));  // n = 16
  const auto c = peer->cost();
  const int64_t N = 256, D = 32, h = 2, k = 4, dk = 8, n = 16;
  const int64_t router_params = D * h * dk + h * n * dk + 2 * h * dk;  // query, sub-keys, BatchNorm affine
  EXPECT_EQ(c.params_total, 2 * N * D + router_params);
  EXPECT_EQ(c.params_active, 2 * h * k * D + router_params);
  EXPECT_EQ(c.flops_router, 2 * D * h * dk + 2 * h * n * dk + h * (2 * n + k * k));
  EXPECT_EQ(c.flops_experts, 4 * h * k * D);
  int64_t numel = 0;
  for (auto& p : peer->parameters()) numel += p.numel();
  EXPECT_EQ(numel, c.params_total);

  TRecViT model(tiny_peer_config());
  auto a = account(*model);
  EXPECT_EQ(a.mixers.at("layer1").params_total, c.params_total);
  EXPECT_EQ(a.mixers.at("layer0").flops_router, 0);
}

TEST(PEER, InfoPrintsEveryMixerAndBenchRuns) {
  const std::string bin = TRECVIT_BIN;
  std::string out;
  ASSERT_EQ(trecvit::test::run_command(bin + " info --config " + TRECVIT_CONFIG_DIR + "/tiny-peer.json", &out), 0)
      << out;
  EXPECT_NE(out.find("layer 1   peer"), std::string::npos) << out;
  EXPECT_NE(out.find("layer 2   mlp"), std::string::npos) << out;
  ASSERT_EQ(trecvit::test::run_command("(" + bin + " --threads 1 bench peer --quick --repeats 1 --json 2>/dev/null)", &out), 0)
      << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["benchmark"], "peer");
  EXPECT_FALSE(j["results"].empty());
}

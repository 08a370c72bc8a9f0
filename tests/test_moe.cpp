// MoE and sigma-MoE (known answers, gradients in double, auxiliary losses), routing statistics,
// the model's aux-loss/routing accessors, and SparseRowAdam's update semantics.
#include "blocks/moe.h"
#include "blocks/peer.h"
#include "blocks/routing_stats.h"
#include "blocks/sigma_moe.h"
#include "blocks/sparse_row_adam.h"
#include "models/trecvit.h"
#include "tests/test_grad_util.h"

using namespace trecvit;
using trecvit::test::max_abs_diff;

namespace {

// The expert MLP e on one token, written out: W2_e act(W1_e x).
torch::Tensor expert(const torch::Tensor& w1, const torch::Tensor& w2, int64_t e, const torch::Tensor& x, bool relu) {
  auto h = x.matmul(w1[e]);
  return (relu ? torch::relu(h) : torch::gelu(h, "tanh")).matmul(w2[e]);
}

}  // namespace

TEST(MoE, KnownAnswerTokenByToken) {
  torch::manual_seed(1);
  MoE moe(MoEOptions(6, 5, 4).topk(2));
  auto x = torch::randn({7, 6});
  auto y = moe(x);
  auto probs = torch::softmax(x.mm(moe->router), -1);
  for (int64_t m = 0; m < 7; ++m) {
    auto [p, ids] = probs[m].topk(2);
    auto g = p / p.sum();  // renormalised over the two
    auto expect = g[0] * expert(moe->w1, moe->w2, ids[0].item<int64_t>(), x[m], false) +
                  g[1] * expert(moe->w1, moe->w2, ids[1].item<int64_t>(), x[m], false);
    EXPECT_LT(max_abs_diff(y[m], expect), 1e-5) << "token " << m;
  }
}

TEST(MoE, SwitchLossKnownAnswers) {
  torch::manual_seed(2);
  MoE moe(MoEOptions(4, 8, 3).topk(1).aux_weight(0.01));
  auto x = torch::randn({20, 4});
  moe->train();
  moe(x);
  // alpha * E * sum_e f_e P_e, computed here from its definition.
  auto probs = torch::softmax(x.mm(moe->router), -1);
  auto f = torch::bincount(probs.argmax(1), {}, 8).to(torch::kFloat) / 20;
  EXPECT_NEAR(moe->aux_loss().item<double>(), (0.01 * 8 * (f * probs.mean(0)).sum()).item<double>(), 1e-7);
  {
    torch::NoGradGuard ng;
    moe->router.zero_();  // uniform router: P_e = 1/E and sum f = 1, so the loss is alpha
  }
  moe(x);
  EXPECT_NEAR(moe->aux_loss().item<double>(), 0.01, 1e-7);
  moe->eval();
  moe(x);
  EXPECT_FALSE(moe->aux_loss().defined());
}

TEST(MoE, GradientsMatchFiniteDifferencesInDouble) {
  for (int64_t k : {1, 2}) {
    torch::manual_seed(3);
    MoE moe(MoEOptions(5, 4, 3).topk(k));
    moe->to(torch::kDouble);
    auto x = torch::randn({6, 5}, torch::kDouble).requires_grad_(true);
    trecvit::test::check_gradients([&] { return moe(x); },
                                   {{"router", moe->router}, {"w1", moe->w1}, {"w2", moe->w2}, {"x", x}}, 8,
                                   "k=" + std::to_string(k));
    // The balancing loss's gradient reaches the router through P.
    auto aux = [&] { return moe(x), moe->aux_loss(); };
    auto g = torch::autograd::grad({aux()}, {moe->router})[0];
    trecvit::test::expect_grad_matches(aux, moe->router, g, 6, 1e-5, "aux router");
  }
}

TEST(SigmaMoE, KnownAnswerAndEntropyRegulariser) {
  torch::manual_seed(4);
  SigmaMoE moe(SigmaMoEOptions(6, 8, 4).topk(3).aux_weight(1e-3));
  auto x = torch::randn({5, 6});
  moe->eval();
  auto y = moe(x);
  auto sel = torch::sigmoid(x.mm(moe->router));
  for (int64_t m = 0; m < 5; ++m) {
    auto [s, ids] = sel[m].topk(3);
    auto expect = torch::zeros({6});
    for (int64_t j = 0; j < 3; ++j) expect += s[j] * expert(moe->w1, moe->w2, ids[j].item<int64_t>(), x[m], true);
    EXPECT_LT(max_abs_diff(y[m], expect), 1e-5) << "token " << m;  // no renormalisation
  }
  moe->train();
  {
    torch::NoGradGuard ng;
    moe->router.zero_();  // mean softmax uniform: sum p log p = -log E
  }
  moe(x);
  EXPECT_NEAR(moe->aux_loss().item<double>(), -1e-3 * std::log(8.0), 1e-8);
}

TEST(SigmaMoE, GradientsMatchFiniteDifferencesInDouble) {
  torch::manual_seed(5);
  SigmaMoE moe(SigmaMoEOptions(5, 6, 3).topk(2));
  moe->to(torch::kDouble);
  auto x = torch::randn({6, 5}, torch::kDouble).requires_grad_(true);
  trecvit::test::check_gradients([&] { return moe(x); },
                                 {{"router", moe->router}, {"w1", moe->w1}, {"w2", moe->w2}, {"x", x}}, 8, "sigma");
  auto aux = [&] { return moe(x), moe->aux_loss(); };
  auto g = torch::autograd::grad({aux()}, {moe->router})[0];
  trecvit::test::expect_grad_matches(aux, moe->router, g, 6, 1e-5, "entropy router");
}

TEST(SigmaMoE, ExpertDropoutOnlyInTraining) {
  torch::manual_seed(6);
  SigmaMoE moe(SigmaMoEOptions(6, 8, 4).topk(2).expert_dropout(0.99));
  SigmaMoE plain(SigmaMoEOptions(6, 8, 4).topk(2));
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < moe->parameters().size(); ++i) plain->parameters()[i].copy_(moe->parameters()[i]);
  }
  auto x = torch::randn({200, 6});
  moe->eval();
  EXPECT_LT(max_abs_diff(moe(x), plain(x)), 1e-7);  // no dropout in eval
  moe->train();
  auto y = moe(x);
  // With p = 0.99 most tokens keep no expert: their output is exactly zero.
  const int64_t zero_rows = (y.abs().sum(1) == 0).sum().item<int64_t>();
  EXPECT_GT(zero_rows, 150);
  EXPECT_LT(zero_rows, 200);
}

TEST(RoutingStats, KnownAnswers) {
  RoutingStats s(4);
  s.add(torch::tensor({0, 1}), torch::tensor({1.0, 1.0}), 1);  // disabled: ignored
  s.enable(true);
  EXPECT_EQ(s.summary().tokens, 0);
  s.add(torch::tensor({0, 1, 2, 3}), torch::tensor({0.5, 0.5, 0.5, 0.5}), 2);
  EXPECT_EQ(s.summary().experts_used, 4);
  EXPECT_NEAR(s.summary().unevenness, 0.0, 1e-12);  // even use
  s.reset();
  s.add(torch::tensor({2, 2}), torch::tensor({1.0, 1.0}), 2);
  auto one = s.summary();
  EXPECT_EQ(one.tokens, 2);
  EXPECT_DOUBLE_EQ(one.usage_fraction, 0.25);
  EXPECT_NEAR(one.unevenness, std::log(4.0), 1e-12);  // everything on one expert
}

TEST(Model, AuxLossesAndRoutingStatsPerLayer) {
  auto c = trecvit::test::tiny_config();
  c.depth = 3;
  auto moe = ChannelMixerOptions("moe").set("num_experts", 4);
  auto sigma = ChannelMixerOptions("sigma_moe").set("num_experts", 4).set("expert_size", 16).set("topk", 2);
  auto peer = ChannelMixerOptions("peer").set("num_experts", 64).set("heads", 2).set("topk", 2).set("key_dim", 4);
  c.layer_mixers = {{0, moe}, {1, sigma}, {2, peer}};
  torch::manual_seed(7);
  TRecViT model(c);
  auto clip = torch::randint(0, 256, {2, 3, c.image_height, c.image_width, 3}, torch::kByte);
  model->train();
  model->forward(clip);
  auto mixer = [&](int i) { return model->layers[i]->as<TRecViTLayerImpl>()->mixer; };
  auto total = model->aux_loss();
  EXPECT_NEAR(total.item<double>(), (mixer(0)->aux_loss() + mixer(1)->aux_loss()).item<double>(), 1e-9);
  EXPECT_TRUE(total.requires_grad());
  model->eval();
  model->collect_routing_stats(true);
  model->forward(clip);
  EXPECT_EQ(model->aux_loss().item<double>(), 0.0);
  auto stats = model->routing_stats();
  ASSERT_EQ(stats.size(), 3u);
  const int64_t tokens = 2 * 3 * c.num_tokens();
  for (auto& [layer, s] : stats) {
    EXPECT_EQ(s.tokens, tokens) << layer;
    EXPECT_GT(s.usage_fraction, 0) << layer;
    EXPECT_LE(s.usage_fraction, 1) << layer;
    EXPECT_GE(s.unevenness, -1e-12) << layer;
    EXPECT_LE(s.unevenness, std::log(double(s.num_experts)) + 1e-12) << layer;
  }
  EXPECT_EQ(stats[2].num_experts, 64);
  model->collect_routing_stats(false);
  model->forward(clip);
  EXPECT_EQ(model->routing_stats()[2].tokens, 0);
}

TEST(SparseRowAdam, DenseGradientsAreAdamWAndSparseOnesTouchOnlyTheirRows) {
  torch::manual_seed(8);
  auto p0 = torch::randn({6, 3});
  auto dense = p0.clone().requires_grad_(true), ref = p0.clone().requires_grad_(true);
  SparseRowAdam ours({dense}, SparseRowAdamOptions().lr(0.1).weight_decay(0.05));
  torch::optim::AdamW adamw({ref}, torch::optim::AdamWOptions(0.1).weight_decay(0.05));
  for (int step = 0; step < 3; ++step) {
    auto g = torch::randn({6, 3});
    dense.mutable_grad() = g.clone();
    ref.mutable_grad() = g.clone();
    ours.step();
    adamw.step();
  }
  EXPECT_LT(max_abs_diff(dense, ref), 1e-6);

  // Sparse: step 1 on rows {1, 4} equals AdamW on those rows; the others do not move at all.
  auto sp = p0.clone().requires_grad_(true), ref2 = p0.clone().requires_grad_(true);
  SparseRowAdam lazy({sp}, SparseRowAdamOptions().lr(0.1).weight_decay(0.05));
  torch::optim::AdamW adamw2({ref2}, torch::optim::AdamWOptions(0.1).weight_decay(0.05));
  auto rows = torch::tensor({1, 4});
  auto vals = torch::randn({2, 3});
  sp.mutable_grad() = torch::sparse_coo_tensor(rows.view({1, 2}), vals, {6, 3});
  ref2.mutable_grad() = torch::zeros({6, 3}).index_copy(0, rows, vals);
  lazy.step();
  adamw2.step();
  EXPECT_LT(max_abs_diff(sp.index_select(0, rows), ref2.index_select(0, rows)), 1e-6);
  auto others = torch::tensor({0, 2, 3, 5});
  EXPECT_TRUE(torch::equal(sp.detach().index_select(0, others), p0.index_select(0, others)));  // no decay either
  // Step 2 touches row 0 only: row 1 keeps its value (dense AdamW would move it by momentum).
  auto row1 = sp.detach()[1].clone();
  sp.mutable_grad() = torch::sparse_coo_tensor(torch::tensor({{0}}), torch::randn({1, 3}), {6, 3});
  lazy.step();
  EXPECT_TRUE(torch::equal(sp.detach()[1], row1));
  EXPECT_FALSE(torch::equal(sp.detach()[0], p0[0]));
}

TEST(SparseRowAdam, TrainsAPEERWithSparseTables) {
  torch::manual_seed(9);
  PEER peer(PEEROptions(8, 64).heads(2).topk(4).key_dim(4).query_norm("layer").sparse_grad(true));
  auto x = torch::randn({32, 8});
  auto target = torch::randn({32, 8}) * 0.5;
  SparseRowAdam tables(peer->sparse_grad_parameters(), SparseRowAdamOptions().lr(3e-2));
  torch::optim::Adam rest(parameters_except(peer->parameters(), peer->sparse_grad_parameters()),
                          torch::optim::AdamOptions(3e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    tables.zero_grad();
    rest.zero_grad();
    auto loss = (peer(x) - target).pow(2).mean();
    loss.backward();
    tables.step();
    rest.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first / 3) << first << " -> " << last;
}

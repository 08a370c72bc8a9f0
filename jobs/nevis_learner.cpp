#include "jobs/nevis_learner.h"

#include "models/accounting.h"
#include "models/pretrained.h"

namespace trecvit {

TRecViT nevis_fresh_model(TRecViTConfig config, int64_t classes, uint64_t seed) {
  torch::manual_seed(seed);
  config.num_classes = classes;
  return TRecViT(config);
}

TRecViT nevis_with_new_head(TRecViTImpl& from, int64_t classes, uint64_t seed) {
  torch::manual_seed(seed);
  return with_new_head(from, classes);
}

int64_t nevis_forward_flops_per_image(TRecViTImpl& model) { return account(model).flops_per_frame; }
int64_t nevis_train_flops_per_image(TRecViTImpl& model) { return 3 * nevis_forward_flops_per_image(model); }

TRecViT nevis_train(TRecViTImpl& init, const data::NevisDataset& ds, const data::NevisSplit& split,
                    const NevisTrainSpec& spec, NevisTrial& trial,
                    const std::function<void(const StepStats&)>& on_log, const CancelToken* cancel) {
  TRecViT model(std::dynamic_pointer_cast<TRecViTImpl>(init.clone()));
  TrainOptions o = spec.options;
  o.lr = trial.lr;
  o.label_smoothing = trial.label_smoothing;
  o.out_dir.clear();  // an event is redone whole on resume: no checkpoints inside it
  if (o.warmup_steps >= o.steps) o.warmup_steps = o.steps / 10;
  torch::manual_seed(o.seed);
  const int64_t world = spec.group ? spec.group->world() : 1;
  NevisBatchSource source(split, ds.num_classes, ds.multi_label, model->config().image_height, spec.batch_size,
                          spec.crop, o.seed, spec.group ? spec.group->rank() : 0, world);
  if (spec.group) dist::broadcast_module(*spec.group, *model);
  Trainer trainer(model, o, source);
  std::unique_ptr<dist::GradientReducer> reducer;
  if (spec.group) {
    reducer = std::make_unique<dist::GradientReducer>(spec.group, model->parameters());
    trainer.set_step_sync(reducer.get());
  }
  trainer.run(on_log, cancel);
  trial.steps = trainer.global_step();
  trial.stopped = trial.steps < o.steps;
  trial.flops = nevis_train_flops_per_image(*model) * trial.steps * spec.batch_size * world * o.accumulate;
  return trainer.eval_model();
}

double nevis_knn_score(TRecViTImpl& model, const data::NevisDataset& ds, const data::NevisSplit& train,
                       const data::NevisSplit& dev, int64_t k, int64_t max_train, int64_t max_dev, int64_t batch,
                       int64_t* flops, dist::Group* group) {
  auto memory = torch::nn::functional::normalize(nevis_embeddings(model, train, batch, max_train, group),
                                                 torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto queries = torch::nn::functional::normalize(nevis_embeddings(model, dev, batch, max_dev, group),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(1));
  if (flops) *flops = nevis_forward_flops_per_image(model) * (memory.size(0) + queries.size(0));
  if (memory.size(0) == 0 || queries.size(0) == 0) return 0;
  const int64_t kk = std::min(k, memory.size(0)), n = queries.size(0), C = ds.num_classes;
  auto neighbours = std::get<1>(torch::mm(queries, memory.t()).topk(kk, 1));  // [n, kk]
  torch::Tensor memory_targets;
  if (ds.multi_label) {
    memory_targets = nevis_multi_hot(train, C).narrow(0, 0, memory.size(0));
  } else {
    std::vector<int64_t> labels(train.labels.begin(), train.labels.begin() + memory.size(0));
    memory_targets = torch::one_hot(torch::tensor(labels, torch::kLong), C).to(torch::kFloat);
  }
  auto votes = memory_targets.index_select(0, neighbours.reshape(-1)).reshape({n, kk, C}).mean(1);  // [n, C]
  if (ds.multi_label)
    return mean_average_precision(votes, nevis_multi_hot(dev, C).narrow(0, 0, n));
  std::vector<int64_t> truth(dev.labels.begin(), dev.labels.begin() + n);
  return (votes.argmax(1) == torch::tensor(truth, torch::kLong)).to(torch::kDouble).mean().item<double>();
}

}  // namespace trecvit

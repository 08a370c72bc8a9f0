#include "models/pretrained.h"

#include "models/checkpoint.h"
#include "models/flax_io.h"
#include "models/npz.h"

namespace trecvit {

TRecViT load_pretrained(const std::string& path) {
  const bool npz = path.size() >= 4 && path.compare(path.size() - 4, 4, ".npz") == 0;
  try {
    return npz ? import_npz(path) : load_checkpoint(path);
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": neither a trecvit checkpoint nor a released TRecViT .npz (" + e.what() + ")");
  }
}

TRecViT with_new_head(TRecViTImpl& from, int64_t classes) {
  TRecViTConfig cfg = from.config();
  cfg.num_classes = classes;
  TRecViT model(cfg);
  torch::NoGradGuard ng;
  auto params = from.named_parameters(), buffers = from.named_buffers();
  for (auto& p : model->named_parameters())
    if (p.key().rfind("cls_head.", 0) != 0) p.value().copy_(params[p.key()]);
  for (auto& b : model->named_buffers())
    if (b.key().rfind("cls_head.", 0) != 0) b.value().copy_(buffers[b.key()]);
  return model;
}

std::string backbone_difference(const TRecViTConfig& a, const TRecViTConfig& b) {
  auto ja = config_to_json(a), jb = config_to_json(b);
  for (auto key : {"name", "num_classes", "readout", "num_frames"}) ja.erase(key), jb.erase(key);
  for (auto& [key, value] : ja.items())
    if (!jb.contains(key) || jb[key] != value)
      return "'" + key + "' is " + value.dump() + " there, " + jb.value(key, nlohmann::json()).dump() + " here";
  return "";
}

}  // namespace trecvit

#include "models/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <set>

namespace trecvit {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct Opened {
  torch::serialize::InputArchive archive;
  TRecViTConfig config;
};

void open_archive(const std::string& path, Opened& o) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw CheckpointError("checkpoint " + path + ": no such file");
  try {
    o.archive.load_from(path);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + path + ": not a readable trecvit checkpoint (" +
                          first_line(e.what_without_backtrace()) + ")");
  }
  c10::IValue format, config;
  if (!o.archive.try_read("trecvit_format", format) || !format.isInt())
    throw CheckpointError("checkpoint " + path + ": missing 'trecvit_format' (not a trecvit checkpoint)");
  if (format.toInt() != kCheckpointFormat)
    throw CheckpointError("checkpoint " + path + ": format " + std::to_string(format.toInt()) +
                          " is not supported (this build reads format " + std::to_string(kCheckpointFormat) + ")");
  if (!o.archive.try_read("config", config) || !config.isString())
    throw CheckpointError("checkpoint " + path + ": missing 'config'");
  try {
    o.config = config_from_json(nlohmann::json::parse(config.toStringRef()), "checkpoint " + path + " config");
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError("checkpoint " + path + ": embedded config is not valid JSON: " + e.what());
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace

void write_model(torch::serialize::OutputArchive& archive, TRecViTImpl& model) {
  archive.write("trecvit_format", c10::IValue(kCheckpointFormat));
  archive.write("config", c10::IValue(config_to_json(model.config()).dump()));
  for (auto& p : model.named_parameters()) archive.write("param/" + p.key(), p.value().detach().cpu());
  for (auto& b : model.named_buffers()) archive.write("buffer/" + b.key(), b.value().detach().cpu(), true);
  if (!model.class_names().empty())
    archive.write("class_names", c10::IValue(nlohmann::json(model.class_names()).dump()));
}

void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  auto fail = [&](const std::string& why) {
    std::remove(tmp.c_str());
    throw CheckpointError("checkpoint " + path + ": " + why);
  };
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    fail("write failed (" + first_line(e.what_without_backtrace()) + ")");
  }
  const int fd = open(tmp.c_str(), O_RDONLY);
  if (fd < 0 || fsync(fd) != 0) {
    if (fd >= 0) close(fd);
    fail("cannot sync the written file");
  }
  close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot move the written file into place");
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  if (const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY); dfd >= 0) {
    fsync(dfd);  // make the rename itself durable
    close(dfd);
  }
}

void save_checkpoint(TRecViTImpl& model, const std::string& path) {
  torch::serialize::OutputArchive archive;
  write_model(archive, model);
  save_archive_atomically(archive, path);
}

torch::serialize::InputArchive open_checkpoint(const std::string& path, TRecViTConfig* config) {
  Opened o;
  open_archive(path, o);
  if (config) *config = o.config;
  return std::move(o.archive);
}

TRecViTConfig read_checkpoint_config(const std::string& path) {
  Opened o;
  open_archive(path, o);
  return o.config;
}

namespace {

void read_weights(Opened& o, TRecViTImpl& model, const std::string& path) {
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& key, torch::Tensor& dst) {
    torch::Tensor t;
    if (!o.archive.try_read(key, t)) throw CheckpointError("checkpoint " + path + ": missing tensor '" + key + "'");
    if (t.sizes() != dst.sizes())
      throw CheckpointError("checkpoint " + path + ": tensor '" + key + "' has shape " + c10::str(t.sizes()) +
                            ", the config needs " + c10::str(dst.sizes()));
    dst.copy_(t);
  };
  std::set<std::string> expected = {"trecvit_format", "config", "class_names"};
  c10::IValue names;
  if (o.archive.try_read("class_names", names)) {
    try {
      if (!names.isString()) throw std::invalid_argument("not a string");
      model.set_class_names(nlohmann::json::parse(names.toStringRef()).get<std::vector<std::string>>());
    } catch (const std::exception& e) {
      throw CheckpointError("checkpoint " + path + ": corrupt class names: " + e.what());
    }
  }
  for (auto& p : model.named_parameters()) {
    load("param/" + p.key(), p.value());
    expected.insert("param/" + p.key());
  }
  for (auto& b : model.named_buffers()) {
    load("buffer/" + b.key(), b.value());
    expected.insert("buffer/" + b.key());
  }
  for (const auto& key : o.archive.keys())
    if (!expected.count(key) && key.rfind("train", 0) != 0) throw CheckpointError("checkpoint " + path + ": unexpected tensor '" + key + "'");
}

}  // namespace

TRecViT load_checkpoint(const std::string& path) {
  Opened o;
  open_archive(path, o);
  TRecViT model(o.config);
  read_weights(o, *model, path);
  return model;
}

void load_weights(TRecViTImpl& model, const std::string& path) {
  Opened o;
  open_archive(path, o);
  if (config_to_json(o.config) != config_to_json(model.config()))
    throw CheckpointError("checkpoint " + path + ": written for another model config (" + config_to_json(o.config).dump() +
                          "); this model uses " + config_to_json(model.config()).dump());
  read_weights(o, model, path);
}

}  // namespace trecvit

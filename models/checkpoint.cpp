#include "models/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "blocks/file_safety.h"

namespace trecvit {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct Opened {
  torch::serialize::InputArchive archive;
  TRecViTConfig config;
};

// LibTorch writes a CRC-32 of every record (each tensor's bytes, the pickled structure) into the
// checkpoint's zip directory but does not check them when it reads; libzip does, as it reads each
// record to its end. A flipped bit anywhere in the data is an error here, not a silent load.
void verify_records(const std::string& path) {
  int err = 0;
  std::unique_ptr<zip_t, decltype(&zip_discard)> z(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err), zip_discard);
  if (!z) {
    zip_error_t e;
    zip_error_init_with_code(&e, err);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    throw CheckpointError("checkpoint " + path + ": not a readable trecvit checkpoint (" + why + ")");
  }
  std::vector<char> buf(1 << 20);
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* name = zip_get_name(z.get(), i, 0);
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> f(zip_fopen_index(z.get(), i, 0), zip_fclose);
    zip_int64_t got = f ? 0 : -1;
    while (f && (got = zip_fread(f.get(), buf.data(), buf.size())) > 0) {
    }
    if (got < 0)
      throw CheckpointError("checkpoint " + path + ": record '" + (name ? name : "?") + "' is damaged (" +
                            (f ? zip_file_strerror(f.get()) : zip_strerror(z.get())) +
                            "): the file changed after it was written");
  }
}

void open_archive(const std::string& path, Opened& o) {
  if (const auto why = unreadable_reason(path); !why.empty()) throw CheckpointError("checkpoint " + path + ": " + why);
  verify_records(path);
  try {
    o.archive.load_from(path);
  } catch (const c10::Error& e) {
    throw CheckpointError("checkpoint " + path + ": not a readable trecvit checkpoint (" +
                          first_line(e.what_without_backtrace()) + ")");
  } catch (const std::exception& e) {  // LibTorch's own map lookups inside a damaged archive
    throw CheckpointError("checkpoint " + path + ": not a readable trecvit checkpoint (" + first_line(e.what()) + ")");
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
    throw CheckpointError("checkpoint " + path + ": embedded config is not valid JSON: " + plain_json_error(e));
  } catch (const ConfigError& e) {
    throw CheckpointError(e.what());
  }
}

}  // namespace

void write_model(torch::serialize::OutputArchive& archive, TRecViTImpl& model) {
  archive.write("trecvit_format", c10::IValue(kCheckpointFormat));
  archive.write("trecvit_version", c10::IValue(std::string(TRECVIT_VERSION)));
  archive.write("config", c10::IValue(config_to_json(model.config()).dump()));
  for (auto& p : model.named_parameters()) archive.write("param/" + p.key(), p.value().detach().cpu());
  for (auto& b : model.named_buffers()) archive.write("buffer/" + b.key(), b.value().detach().cpu(), true);
  if (!model.class_names().empty())
    archive.write("class_names", c10::IValue(nlohmann::json(model.class_names()).dump()));
}

void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::string& path) {
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  remove_stale_temporaries(dir);  // what a killed writer left here
  const std::string tmp = temporary_path(path);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw CheckpointError("checkpoint " + path + ": cannot be written (" + std::strerror(errno) + ")");
  auto fail = [&](const std::string& why) {
    close(fd);
    std::remove(tmp.c_str());
    throw CheckpointError("checkpoint " + path + ": " + why);
  };
  // LibTorch's zip writer aborts the process when a write fails (its destructor throws again
  // while the first error unwinds), so the writer is always told the bytes went out; the first
  // failure is kept and reported once serialisation is over.
  int write_errno = 0;
  try {
    archive.save_to([&](const void* data, size_t n) -> size_t {
      for (size_t done = 0; done < n && write_errno == 0;) {
        const ssize_t w = ::write(fd, static_cast<const char*>(data) + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) write_errno = w < 0 ? errno : EIO;
        else done += static_cast<size_t>(w);
      }
      return n;
    });
  } catch (const c10::Error& e) {
    fail("write failed (" + first_line(e.what_without_backtrace()) + ")");
  }
  if (write_errno != 0) fail(std::string("write failed (") + std::strerror(write_errno) + "); nothing was replaced");
  if (fsync(fd) != 0) fail(std::string("cannot sync the written file (") + std::strerror(errno) + ")");
  if (close(fd) != 0) {
    std::remove(tmp.c_str());
    throw CheckpointError("checkpoint " + path + ": write failed (" + std::strerror(errno) + ")");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw CheckpointError("checkpoint " + path + ": cannot move the written file into place");
  }
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
  std::set<std::string> expected = {"trecvit_format", "trecvit_version", "config", "class_names"};
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

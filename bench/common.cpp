#include "bench/common.h"

#include "models/config_locator.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

namespace trecvit::bench {

TRecViTConfig bench_config(const std::string& name, int64_t image_size) {
  auto c = load_config(find_config(name));
  if (image_size > 0) c.image_height = c.image_width = image_size;
  c.validate();
  return c;
}

nlohmann::json run_self_json(const std::string& env, const std::string& arguments) {
  const std::string cmd = env + (env.empty() ? "" : " ") + "/proc/" + std::to_string(getpid()) + "/exe --threads " +
                          std::to_string(at::get_num_threads()) + " " + arguments;
  std::string text;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  const int status = pclose(p);
  try {
    if (status == 0) return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error&) {
  }
  throw std::runtime_error("child failed (status " + std::to_string(status) + "): " + cmd);
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

}  // namespace trecvit::bench

#include "apps/stream_window.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <string>

#ifdef TRECVIT_WITH_HIGHGUI
#include <opencv2/highgui.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace trecvit::cli {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool tcp_reachable(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* a = res; a && !ok; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    // At most 2 s: a display that drops packets must not stall the start for minutes.
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = poll(&p, 1, 2000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

// Qt, OpenCV's GUI back end here, aborts the process when it cannot reach the display, so
// look for the X server or Wayland compositor first. "" when one is reachable.
std::string display_problem() {
  const std::string wayland = env("WAYLAND_DISPLAY");
  if (!wayland.empty() && (wayland[0] == '/' ? exists(wayland) : exists(env("XDG_RUNTIME_DIR") + "/" + wayland))) return "";
  const std::string x = env("DISPLAY");
  if (x.empty()) return "no display (DISPLAY and WAYLAND_DISPLAY are unset)";
  const size_t colon = x.rfind(':');
  if (colon == std::string::npos) return "DISPLAY=" + x + " is not of the form [host]:N";
  const std::string host = x.substr(0, colon);
  const int n = std::atoi(x.c_str() + colon + 1);
  const bool local = host.empty() || host == "unix";
  if (local ? exists("/tmp/.X11-unix/X" + std::to_string(n)) : tcp_reachable(host, 6000 + n)) return "";
  return "the X display " + x + " cannot be reached";
}

}  // namespace

StreamWindows::StreamWindows(const std::vector<std::string>& sources) {
#ifdef TRECVIT_WITH_HIGHGUI
  const std::string problem = display_problem();
  if (!problem.empty()) throw std::runtime_error("--show: " + problem + "; use --write-video OUT instead");
  for (size_t i = 0; i < sources.size(); ++i) {
    names_.push_back("trecvit " + std::to_string(i) + ": " + sources[i]);
    try {
      cv::namedWindow(names_.back(), cv::WINDOW_NORMAL);
    } catch (const cv::Exception& e) {
      throw std::runtime_error("--show: OpenCV cannot open a window (" + std::string(e.what()) + "); use --write-video OUT instead");
    }
  }
#else
  (void)sources;
  throw std::runtime_error("--show: this build has no OpenCV highgui; use --write-video OUT instead");
#endif
}

StreamWindows::~StreamWindows() {
#ifdef TRECVIT_WITH_HIGHGUI
  try {
    cv::destroyAllWindows();
  } catch (const cv::Exception&) {
  }
#endif
}

void StreamWindows::show(size_t source, const torch::Tensor& rgb) {
#ifdef TRECVIT_WITH_HIGHGUI
  auto c = rgb.contiguous();
  cv::Mat m(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_8UC3, c.data_ptr<uint8_t>()), bgr;
  cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
  cv::imshow(names_.at(source), bgr);
  cv::waitKey(1);  // lets highgui draw
#else
  (void)source;
  (void)rgb;
#endif
}

}  // namespace trecvit::cli

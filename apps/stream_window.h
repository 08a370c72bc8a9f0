#pragma once
// `stream --show`: one OpenCV highgui window per source. Constructing it fails with a clear
// error when there is no display or the OpenCV build has no GUI back end.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace trecvit::cli {

class StreamWindows {
 public:
  explicit StreamWindows(const std::vector<std::string>& sources);
  ~StreamWindows();
  void show(size_t source, const torch::Tensor& rgb);  // uint8 [h, w, 3]

 private:
  std::vector<std::string> names_;
};

}  // namespace trecvit::cli

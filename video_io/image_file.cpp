#include "video_io/image_file.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "video_io/error.h"

namespace trecvit::video {

void write_rgb_image(const std::string& path, const uint8_t* rgb, int width, int height) {
  const cv::Mat view(height, width, CV_8UC3, const_cast<uint8_t*>(rgb));
  cv::Mat bgr;
  cv::cvtColor(view, bgr, cv::COLOR_RGB2BGR);  // OpenCV's codecs take BGR
  bool ok = false;
  std::string why = "unsupported extension or unwritable path";
  try {
    ok = cv::imwrite(path, bgr);
  } catch (const cv::Exception& e) {
    why = e.what();
  }
  if (!ok) throw VideoError(ErrorKind::kWriteFailed, path, "cannot write the image: " + why);
}

}  // namespace trecvit::video

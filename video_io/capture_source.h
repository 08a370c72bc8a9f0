#pragma once
// The backends behind Capture: each opens its source and hands out decoded frames as AVFrames,
// so one FrameConverter turns every kind of source into the same RGB24 at the same size.
#include <atomic>
#include <memory>
#include <string>

#include "video_io/capture.h"
#include "video_io/ffmpeg_raii.h"

namespace trecvit::video {

class CaptureSource {
 public:
  virtual ~CaptureSource() = default;
  // (Re)opens the source; throws VideoError naming it.
  virtual void open() = 0;
  virtual void close() = 0;
  // The next decoded frame (owned by the source, valid until the next call), or nullptr at the
  // end of the stream or on a failure (problem() says which).
  virtual const AVFrame* read() = 0;
  virtual double seconds(const AVFrame* frame) const = 0;  // the source's time of a frame, -1: none
  virtual double fps() const = 0;
  virtual int rotation() const = 0;  // clockwise degrees applied for display
  const std::string& problem() const { return problem_; }

 protected:
  std::string problem_;
};

// Files and URLs through video_io's Input and Decoder; every blocking open and read gives up
// after options.io_timeout, and at once when `stop` is set.
std::unique_ptr<CaptureSource> make_ffmpeg_source(const std::string& source, const CaptureOptions& options,
                                                  const std::atomic<bool>& stop);
// A camera index or V4L2 device through OpenCV videoio (BUFFERSIZE 1: the newest frame).
std::unique_ptr<CaptureSource> make_camera_source(const std::string& device, int index, const CaptureOptions& options);

// The input protocols this FFmpeg build has ("file", "http", "rtsp", ...).
std::vector<std::string> ffmpeg_input_protocols();

}  // namespace trecvit::video

#pragma once
// Saves one RGB24 frame as an image (format from the extension: .png, .ppm, .jpg, ...).
#include <cstdint>
#include <string>

namespace trecvit::video {

// Throws VideoError(kWriteFailed) naming the path.
void write_rgb_image(const std::string& path, const uint8_t* rgb, int width, int height);

}  // namespace trecvit::video

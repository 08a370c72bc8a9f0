// Loads a config (a path or name on the command line, else "tiny", found through
// trecvit::find_config), builds a TRecViT and streams one random frame through it.
#include <torch/torch.h>

#include <iostream>

#include "models/config.h"
#include "models/config_locator.h"
#include "models/trecvit.h"

int main(int argc, char** argv) {
  try {
    const std::string path = trecvit::find_config(argc > 1 ? argv[1] : "tiny");
    const trecvit::TRecViTConfig config = trecvit::load_config(path);
    trecvit::TRecViT model(config);
    model->eval();
    torch::NoGradGuard no_grad;

    auto state = model->init_stream(1);
    const auto frame = torch::randint(0, 256, {1, 1, config.image_height, config.image_width, 3}, torch::kByte);
    auto logits = model->step(state, frame);

    std::cout << "config " << path << ": logits " << logits.sizes() << "\n";
    if (logits.dim() != 3 || logits.size(2) != config.num_classes) return 1;
    std::cout << "OK\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "consumer: " << e.what() << "\n";
    return 1;
  }
}

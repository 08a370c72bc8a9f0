#include "blocks/channel_mixer.h"

#include "blocks/mlp.h"

namespace trecvit {

std::shared_ptr<ChannelMixerImpl> make_channel_mixer(const ChannelMixerOptions& options, int64_t dim) {
  if (options.type == "mlp") {
    TORCH_CHECK(options.hidden > 0, "channel_mixer.hidden must be > 0 for an mlp mixer");
    return std::make_shared<MLPImpl>(MLPOptions(dim, options.hidden));
  }
  TORCH_CHECK(false, "channel_mixer.type: unknown mixer '", options.type, "' (known: mlp)");
}

}  // namespace trecvit

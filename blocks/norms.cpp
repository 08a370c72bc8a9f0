#include "blocks/norms.h"

namespace trecvit {

RMSNormImpl::RMSNormImpl(const RMSNormOptions& options_) : options(options_) { reset(); }

void RMSNormImpl::reset() { scale = register_parameter("scale", torch::zeros({options.dim()})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto var = x.square().mean(-1, /*keepdim=*/true);
  return x * torch::rsqrt(var + options.eps()) * (scale + 1);
}

}  // namespace trecvit

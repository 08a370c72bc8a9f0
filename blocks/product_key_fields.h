#pragma once
// The option-table rows and relation checks of TRECVIT_PRODUCT_KEY_ARGS, shared by the
// product-key mixers (PEER, PKM) so each field is described once.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "blocks/channel_mixer.h"
#include "blocks/option_fields.h"

namespace trecvit {

template <class O>
std::vector<Field<O>> product_key_fields() {
  return {
      TRECVIT_ARG_FIELD(O, heads, "retrieval heads h", Check::at_least(1)),
      TRECVIT_ARG_FIELD(O, topk, "experts k retrieved per head", Check::at_least(1)),
      TRECVIT_ARG_FIELD(O, half_topk, "top-k' kept per sub-key half (>= topk; 0: topk)", Check::at_least(0)),
      TRECVIT_ARG_FIELD(O, key_dim, "query width d_k per head (even: two sub-key halves)", Check::at_least(2)),
      TRECVIT_ARG_FIELD(O, query_norm, "query normalisation (batch: batch statistics; layer: causal-safe)",
                        Check::one_of({"batch", "layer", "none"})),
      TRECVIT_ARG_FIELD(O, chunk_tokens, "tokens per sub-key scoring chunk (0: automatic)", Check::at_least(0)),
  };
}

// half_topk 0 means "topk": resolved explicitly so configs and reports show the value in force.
template <class O>
void product_key_finish(O& o, const nlohmann::json&, const MixerContext&) {
  if (o.half_topk() == 0) o.half_topk(o.topk());
}

// {field, reason} of the first violated relation of N = num_keys product keys ({} when none).
template <class O>
std::pair<std::string, std::string> product_key_check(const O& o, int64_t num_keys) {
  auto str = [](int64_t v) { return std::to_string(v); };
  const int64_t n = std::llround(std::sqrt(double(num_keys)));
  if (n * n != num_keys) return {"num_experts", "must be a perfect square n^2 (product keys), got " + str(num_keys)};
  if (o.topk() > n)
    return {"topk", "must be <= sqrt(num_experts) = " + str(n) + " (top-k per sub-key half), got " + str(o.topk())};
  if (o.half_topk() < o.topk())
    return {"half_topk", "must be >= topk (" + str(o.topk()) + "): a smaller per-half top-k misses experts of the "
                         "exact top-k, got " + str(o.half_topk())};
  if (o.half_topk() > n) return {"half_topk", "must be <= sqrt(num_experts) = " + str(n) + ", got " + str(o.half_topk())};
  if (o.key_dim() % 2) return {"key_dim", "must be even and > 0 (two sub-key halves), got " + str(o.key_dim())};
  return {};
}

}  // namespace trecvit

#pragma once
// The parts of `trecvit bench stream` (--set parts=history,batched,live).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/harness.h"

namespace trecvit::bench {

std::vector<int64_t> parse_int_list(const std::string& s);  // "1,4,16"
nlohmann::json stream_history(const Args& args);  // cost per frame as the history grows
nlohmann::json stream_batched(const Args& args);  // B streams in one step vs B steps
nlohmann::json stream_live(const Args& args);     // end to end from a loopback server (needs the jobs library)

}  // namespace trecvit::bench

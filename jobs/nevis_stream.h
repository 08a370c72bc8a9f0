#pragma once
// NEVIS stream definitions as data: {"name": ..., "events": [{"dataset": ..., "year": ...}, ...]}.
// The built-in ones (configs/nevis/streams/: full, short, tiny, debug from dm_nevis's
// streams/nevis_stream.py, and debian, the stream `data nevis-build` writes) are found by name.
#include <string>
#include <vector>

namespace trecvit {

struct NevisEvent {
  std::string dataset;  // folder under the data root ('/' read as '_')
  int64_t year = 0;
  std::string stream_name;  // the paper's name for it, for reports
};

struct NevisStream {
  std::string name, source;  // source: the file it was read from
  std::vector<NevisEvent> events;
};

const std::vector<std::string>& builtin_nevis_streams();  // full, short, tiny, debug, debian
// A built-in name or a JSON file. Throws ConfigError naming the file and the bad field.
NevisStream load_nevis_stream(const std::string& name_or_path);
// The events of years < stop_year (dm_nevis's development stream), or all with `final`.
std::vector<NevisEvent> nevis_events(const NevisStream& stream, int64_t stop_year, bool final);

}  // namespace trecvit

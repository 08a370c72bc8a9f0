#pragma once
// `trecvit nevis report RUN [RUN ...]`: one self-contained HTML page (inline SVG) with each
// run's accuracy (or mAP) per event and its accuracy against cumulative training FLOPs, one
// line per run, and the table of every event.
#include <string>
#include <vector>

namespace trecvit {

// Reads RUN/events.jsonl and RUN/summary.json of each run; throws std::runtime_error naming a
// run folder that holds neither. Returns the HTML.
std::string nevis_report_html(const std::vector<std::string>& runs);

}  // namespace trecvit

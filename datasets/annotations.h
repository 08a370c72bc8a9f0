#pragma once
// Dataset annotation formats -> lists of (video file, label).
//   Something-Something v2: labels.json + {train,validation,test}.json (or the older
//     something-something-v2-*.json names); class = labels[template without '[' ']'];
//     videos <id>.webm in one folder.
//   Kinetics 400/600/700: CSV label,youtube_id,time_start,time_end,split[,is_cc] (quoted labels);
//     clips {youtube_id}_{start:06d}_{end:06d}.mp4 in <split>/<label>/ (spaces or '_') or flat.
//   Folder: <root>/<class>/<video>;  CSV list: path,label (label = index or class name).
// Malformed annotations are errors naming the file and the entry; rows whose video is missing
// are listed in `missing` and skipped, never silently.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace trecvit::data {

struct DatasetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct VideoItem {
  std::string path;    // video file
  int64_t label = -1;  // -1: unlabelled (test splits)
  std::string id;      // SSv2 id, youtube id, or the relative path
};

struct DatasetSplit {
  std::string format, split;
  std::vector<VideoItem> items;
  std::vector<std::string> class_names;
  std::vector<std::string> missing;  // annotated entries without a video file
};

DatasetSplit load_ssv2(const std::string& root, const std::string& split, const std::string& videos_dir = "");
DatasetSplit load_kinetics(const std::string& root, const std::string& split, const std::string& csv_path = "");
DatasetSplit load_folder(const std::string& root);
DatasetSplit load_csv_list(const std::string& csv_path);
// Dispatch by name through the format registry (datasets/formats.h): "ssv2", "kinetics",
// "folder", "csv" (csv: root is the CSV file), and any registered format.
DatasetSplit load_dataset(const std::string& format, const std::string& root, const std::string& split);

// RFC 4180 fields of one CSV record (quotes, doubled quotes, commas inside quotes).
std::vector<std::string> parse_csv_line(const std::string& line, const std::string& where);
// "Moving [something] from left to right" -> "Moving something from left to right".
std::string ssv2_strip_brackets(const std::string& tmpl);

// For horizontal-flip augmentation on direction-sensitive classes: label -> the label of its
// mirror image, found by swapping the words left/right and clockwise/counterclockwise
// (anticlockwise) in the class name ("Moving something from left to right" <-> "... from right
// to left"). Classes whose mirrored name is not a class map to themselves.
std::vector<int64_t> mirror_label_map(const std::vector<std::string>& class_names);

}  // namespace trecvit::data

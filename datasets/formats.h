#pragma once
// The dataset-format registry: each format is a name, a loader for (root, split), its usual
// splits and a line of help. `--format` choices, `data inspect`'s default splits and the
// "known: ..." errors all read it. A new format is one file (its loader) plus one line in
// formats.cpp, or register_dataset_format() from user code.
#include <functional>
#include <string>
#include <vector>

#include "datasets/annotations.h"

namespace trecvit::data {

struct DatasetFormat {
  std::string name, help;
  std::function<DatasetSplit(const std::string& root, const std::string& split)> load;
  // The splits `data inspect` looks at by default ({""}: the whole root is one split).
  std::function<std::vector<std::string>(const std::string& root)> default_splits;
};

// Adds (or replaces, by name) a format.
void register_dataset_format(DatasetFormat format);
std::vector<DatasetFormat> dataset_formats();
std::vector<std::string> dataset_format_names();
// Throws DatasetError naming the unknown format and the known ones.
DatasetFormat dataset_format(const std::string& name);

}  // namespace trecvit::data

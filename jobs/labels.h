#pragma once
// Class names for a model's outputs, from the label files users have: one name per line, a
// JSON list, a JSON object {"name": index} (Something-Something v2's labels.json; the
// index may be a number or a string), or a Kinetics annotation CSV (header "label,...": its
// distinct labels, sorted, as the Kinetics loader numbers them).
#include <string>
#include <vector>

namespace trecvit {

// Throws std::runtime_error naming the file when it cannot be read, is malformed, or does not
// hold exactly `num_classes` names (indices 0 .. num_classes - 1, each once).
std::vector<std::string> load_class_names(const std::string& path, int64_t num_classes);
// "class 0", "class 1", ...: the names when no label file is given.
std::vector<std::string> default_class_names(int64_t num_classes);

}  // namespace trecvit

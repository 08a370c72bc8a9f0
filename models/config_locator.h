#pragma once
// Finds a model config by path or by name, so the same name works from the source tree, a build
// tree and an installed tree.
#include <string>
#include <vector>

namespace trecvit {

// The directories searched for a config name, in order: $TRECVIT_CONFIG_DIR (when set),
// <exe dir>/../share/trecvit/configs (installed), <exe dir>/../../configs (build tree:
// build/apps/trecvit, build/tests/X), ./configs. <exe dir> is that of /proc/self/exe.
std::vector<std::string> config_search_path();

// name_or_path itself when it is an existing file; otherwise the first <dir>/<name> over
// config_search_path(), with ".json" appended to a name without an extension. Throws
// ConfigError (models/config.h) naming the config and every directory searched.
std::string find_config(const std::string& name_or_path);

}  // namespace trecvit

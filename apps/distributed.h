#pragma once
// The command line's side of data parallelism: joining the group when torchrun's variables say
// so, quiet progress on the ranks other than 0, and `trecvit launch`.
#include <memory>
#include <string>

#include "apps/commands.h"
#include "apps/progress.h"
#include "train/distributed.h"

namespace trecvit::cli {

// The group of this process when WORLD_SIZE > 1 (null otherwise). `supported`: whether
// `command` runs data-parallel; when it does not, WORLD_SIZE > 1 is an error saying so.
std::shared_ptr<dist::Group> join_group(const Global& g, const std::string& command, bool supported = true);
// Rank 0's progress as usual; the other data-parallel ranks report only their problems.
ProgressSink rank_printer(const Global& g, const std::shared_ptr<dist::Group>& group, bool problems_only = false);
// Threads per process when --threads is not given: the cores shared among LOCAL_WORLD_SIZE ranks.
int default_threads();

void add_launch_command(CLI::App& app, Global& g);

}  // namespace trecvit::cli

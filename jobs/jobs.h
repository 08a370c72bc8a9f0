#pragma once
// The end-to-end jobs: each takes an options struct, a ProgressSink and a CancelToken, and
// returns a result struct (to_json()). None prints, exits or installs a signal handler (FFmpeg's
// own log lines are FFmpeg's: quiet them with video::set_ffmpeg_log_level).
#include "jobs/compare_job.h"
#include "jobs/data_jobs.h"
#include "jobs/demo_job.h"
#include "jobs/eval_job.h"
#include "jobs/progress.h"
#include "jobs/stream_job.h"
#include "jobs/train_job.h"

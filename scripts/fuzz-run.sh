#!/usr/bin/env bash
# Runs a libFuzzer target over a seed corpus and reports its counts.
# Usage: fuzz-run.sh FUZZER CORPUS_DIR [SECONDS] [RUNS]
#   CTest: a fixed seed and number of runs (deterministic), SECONDS as a cap.
#   By hand, longer: fuzz-run.sh FUZZER CORPUS 3600 -1   (-1: no run limit)
# Crashing inputs are kept in $TRECVIT_FUZZ_ARTIFACTS (default /tmp/trecvit_fuzz_artifacts) so
# they can be replayed: FUZZER FILE.
set -euo pipefail
fuzzer="$(realpath "$1")"
corpus="$(realpath "$2")"
seconds="${3:-20}"
runs="${4:--1}"
artifacts="${TRECVIT_FUZZ_ARTIFACTS:-/tmp/trecvit_fuzz_artifacts}"
mkdir -p "$artifacts"
log="$(mktemp /tmp/trecvit_fuzz_log_XXXXXX)"
trap 'rm -f "$log"' EXIT
rc=0
"$fuzzer" -seed=1 -runs="$runs" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  grep -m1 -A12 "ERROR:\|uncaught exception\|deadly signal" "$log" || true
  tail -n 20 "$log"
  echo "fuzz-run.sh: $(basename "$fuzzer") failed (exit $rc)" >&2
  exit "$rc"
fi
grep -E "^(INFO: seed|#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)" "$log"

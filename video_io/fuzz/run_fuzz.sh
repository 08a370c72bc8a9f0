#!/usr/bin/env bash
# Runs the video_io libFuzzer target from seed videos generated with the ffmpeg CLI.
# Usage: run_fuzz.sh FUZZER [SECONDS] [RUNS]
#   CTest: a fixed seed and number of runs (deterministic), SECONDS as a cap.
#   By hand, longer: run_fuzz.sh FUZZER 3600 -1   (-1: no run limit)
set -euo pipefail
fuzzer="$(realpath "$1")"
seconds="${2:-20}"
runs="${3:--1}"
dir="$(mktemp -d /tmp/trecvit_fuzz_XXXXXX)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/corpus"
gen() { ffmpeg -nostdin -v error -y -f lavfi -i "$1" "${@:2}"; }
gen testsrc2=size=48x32:rate=12 -frames:v 6 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 3 "$dir/corpus/vp9.webm"
gen testsrc2=size=48x32:rate=25 -frames:v 6 -c:v libx264 -preset veryfast -g 3 -bf 2 "$dir/corpus/h264.mp4"
gen testsrc2=size=48x32:rate=25 -frames:v 4 -c:v libvpx "$dir/corpus/vp8.webm"
gen testsrc=size=33x17:rate=25 -frames:v 3 -c:v ffv1 -pix_fmt gray "$dir/corpus/grey.mkv"
ffmpeg -nostdin -v error -y -i "$dir/corpus/h264.mp4" -c copy -metadata:s:v:0 rotate=90 "$dir/corpus/rot.mp4"
ffmpeg -nostdin -v error -f lavfi -i anoisesrc=d=0.02:seed=7 -f u8 "$dir/corpus/random.bin"  # fixed noise bytes
cd "$dir"
rc=0
# Crashing inputs are kept (the temp dir is not) so they can be replayed: FUZZER FILE.
artifacts="${TRECVIT_FUZZ_ARTIFACTS:-/tmp/trecvit_fuzz_artifacts}"
mkdir -p "$artifacts"
"$fuzzer" -seed=1 -runs="$runs" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" corpus >log 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  grep -m1 -A12 "ERROR:" log || true
  tail -n 20 log
  echo "run_fuzz.sh: the fuzzer failed (exit $rc)" >&2
  exit "$rc"
fi
grep -E "^(INFO: seed|#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)" log

#!/usr/bin/env bash
# Runs the video_io libFuzzer target from seed videos generated with the ffmpeg CLI.
# Usage: run_fuzz.sh FUZZER [SECONDS] [RUNS]   (see scripts/fuzz-run.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
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
"$here/../../scripts/fuzz-run.sh" "$1" "$dir/corpus" "${2:-20}" "${3:--1}"

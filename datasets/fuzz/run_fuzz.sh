#!/usr/bin/env bash
# Runs the record/annotation libFuzzer target from small seeds of each input kind (the first
# byte chooses the reader: 0 Example, 1 TFRecord shard, 2 SSv2 labels NUL annotations,
# 3 Kinetics CSV, 4 path,label list).
# Usage: run_fuzz.sh FUZZER [SECONDS] [RUNS]   (see scripts/fuzz-run.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d /tmp/trecvit_fuzz_XXXXXX)"
trap 'rm -rf "$dir"' EXIT
c="$dir/corpus"
mkdir -p "$c"
printf '\x00\x0a\x0c\x0a\x0a\x0a\x05label\x12\x01\x1a\x01\x03' >"$c/example"
# A one-record shard: length 16, masked CRC-32C of the length, the Example, its CRC (zeros: the
# fuzzer finds its way from the damaged-record path too).
printf '\x01\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0a\x0e\x0a\x0c\x0a\x05label\x12\x03\x1a\x01\x03\x00\x00\x00\x00' >"$c/shard"
printf '\x02{"Pushing something": "0", "Moving something": "1"}\x00[{"id": "1", "template": "Pushing [something]"}, {"id": 2, "template": "Moving something"}]' >"$c/ssv2"
printf '\x03label,youtube_id,time_start,time_end,split\nabseiling,abc,0,10,train\n"a b",x_y,1.5,3,train\n' >"$c/kinetics"
printf '\x04path,label\na.mp4,0\nb.mp4,12\n' >"$c/list"
printf '\x04a.mp4,cat\n"b,c.mp4",dog\n' >"$c/names"
"$here/../../scripts/fuzz-run.sh" "$1" "$c" "${2:-20}" "${3:--1}"

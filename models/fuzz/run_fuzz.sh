#!/usr/bin/env bash
# Runs the weights libFuzzer target from seeds the trecvit binary writes: .npy clips, a .npz of
# released-layout weights and a small checkpoint (the first byte chooses the reader: 0 .npy,
# 1 .npz, 2 checkpoint).
# Usage: run_fuzz.sh FUZZER TRECVIT_BIN [SECONDS] [RUNS]   (see scripts/fuzz-run.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$2"
dir="$(mktemp -d /tmp/trecvit_fuzz_XXXXXX)"
trap 'rm -rf "$dir"' EXIT
c="$dir/corpus"
mkdir -p "$c"
cat >"$dir/micro.json" <<'JSON'
{"name": "micro", "image_size": 8, "patch_size": 4, "num_frames": 2, "width": 8, "depth": 1, "num_heads": 1,
 "mlp_dim": 8, "lru_width": 8, "lru_heads": 1, "conv_width": 2, "rep_size": 8, "num_classes": 2}
JSON
"$bin" synth-clip --out "$dir/clip.npy" --frames 2 --size 4 >/dev/null
"$bin" init --config "$dir/micro.json" --out "$dir/micro.pt" >/dev/null
"$bin" export --checkpoint "$dir/micro.pt" --npz "$dir/micro.npz" >/dev/null
prefix() { { printf "$1"; cat "$2"; } >"$3"; }
prefix '\x00' "$dir/clip.npy" "$c/npy"
prefix '\x01' "$dir/micro.npz" "$c/npz"
prefix '\x02' "$dir/micro.pt" "$c/checkpoint"
"$here/../../scripts/fuzz-run.sh" "$1" "$c" "${3:-20}" "${4:--1}"

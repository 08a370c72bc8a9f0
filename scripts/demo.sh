#!/usr/bin/env bash
# The main job: installs what is missing, builds, prints the model and runtime report, and
# streams a generated clip through a tiny model frame by frame (causal streaming path).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
bin=build/apps/trecvit
work="${TRECVIT_DEMO_DIR:-build/demo}"
mkdir -p "$work"
"$bin" info --config configs/tiny.json
"$bin" init --config configs/tiny.json --out "$work/tiny.ckpt" --seed 0
"$bin" synth-clip --frames 16 --size 32 --out "$work/clip.npy"
"$bin" predict --checkpoint "$work/tiny.ckpt" "$work/clip.npy" --per-frame

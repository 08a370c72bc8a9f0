#!/usr/bin/env bash
# The main job: installs what is missing, builds, then `trecvit demo`: generates the embedded
# default dataset (Something-Something-Fashion) if missing, trains a small TRecViT with a PEER
# middle layer on it (~5 minutes on 2 cores), evaluates on its validation split, and streams one
# validation video through the causal path printing per-frame top-3 predictions.
# Run again, it reuses the data and continues (or just re-evaluates) its earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Only the binary the demo runs: the tests and benchmarks are scripts/test.sh's business.
TRECVIT_BUILD_TARGETS=trecvit scripts/build.sh build
work="${TRECVIT_DEMO_DIR:-build/demo}"
build/apps/trecvit demo --data "$work/ssf" --out "$work/run" "$@"

#!/usr/bin/env bash
# Configures and builds trecvit-cpp (Release, Ninja and ccache when present).
# Usage: scripts/build.sh [BUILD_DIR] [extra cmake args...]   (default BUILD_DIR: build)
# TRECVIT_BUILD_TARGETS="trecvit ..." builds only those targets (default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
shift || true
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ "$#" -gt 0 ]; then
  cmake -S . -B "$build_dir" "$@"
fi
targets=()
# shellcheck disable=SC2206  # a space-separated list of target names
if [ -n "${TRECVIT_BUILD_TARGETS:-}" ]; then targets=(--target ${TRECVIT_BUILD_TARGETS}); fi
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"

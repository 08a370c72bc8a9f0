#!/usr/bin/env bash
# Installs the Debian 12 packages trecvit-cpp needs, only those missing.
# Usage: scripts/install-deps.sh [--no-video] [--bench]
#   --no-video: skip FFmpeg/OpenCV
#   --bench:    also the tools the comparison benchmarks use (eager PyTorch, perf); not needed to
#               build or test
set -euo pipefail

video=1
bench=0
for arg in "$@"; do
  case "$arg" in
    --no-video) video=0 ;;
    --bench) bench=1 ;;
    *) echo "install-deps.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

pkgs=(
  cmake g++ ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread     # OpenBLAS: without it LibTorch falls back to the 14x slower reference BLAS
  libjemalloc-dev                       # retaining allocator linked into the binaries
  nlohmann-json3-dev libcli11-dev libfmt-dev libzip-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev                           # Gloo's headers: LibTorch's c10d ProcessGroupGloo for data-parallel training
)
if [ "$video" = 1 ]; then
  pkgs+=(ffmpeg libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
         libopencv-videoio-dev libopencv-imgproc-dev libopencv-highgui-dev
         clang libclang-rt-14-dev   # the video_io libFuzzer target (skipped when absent)
         dataset-fashion-mnist
         libopencv-imgcodecs-dev        # PNG decoding of NEVIS records
         opencv-doc python3-sklearn     # digits.png and digits.csv.gz: the Debian-built NEVIS stream
         protobuf-compiler)             # protoc: the reference the tf.train.Example codec is tested against
fi
if [ "$bench" = 1 ]; then
  pkgs+=(python3-torch     # bench/eager: the same model in eager PyTorch on the same OpenBLAS
         linux-perf)       # the profiles in docs/BENCHMARKS.md
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

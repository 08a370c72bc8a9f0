#!/usr/bin/env bash
# Installs a built tree into a temporary prefix and uses it from the outside: examples/consumer
# builds against it with find_package(trecvit) and runs, trecvit.pc compiles and links the same
# program, and the installed binary runs with the installed configs.
# Usage: tests/install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build_dir=$(cd "$1" && pwd)
src_dir=$(cd "$2" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trecvit_install_XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
unset TRECVIT_CONFIG_DIR
cd "$tmp"  # no ./configs here: configs must come from the prefix

fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
run_quiet() { "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "$*"; }; }

run_quiet cmake --install "$build_dir" --prefix "$prefix"
for f in bin/trecvit lib/libtrecvit_models.a include/trecvit/models/config.h \
         include/trecvit/blocks/trecvit_layer.h share/trecvit/configs/tiny.json \
         lib/cmake/trecvit/trecvitConfig.cmake lib/cmake/trecvit/trecvitConfigVersion.cmake \
         lib/pkgconfig/trecvit.pc; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
# The package must not point back into the source/build tree, impose the PCH or jemalloc.
if grep -rlE -e "$src_dir|PRECOMPILE_HEADERS|jemalloc|malloc_conf" "$prefix/lib/cmake" "$prefix/lib/pkgconfig"; then
  fail "installed package refers to the build tree, the PCH or the allocator"
fi

# CMake consumer, configured against the prefix only, installed next to trecvit.
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
run_quiet cmake -S "$src_dir/examples/consumer" -B "$tmp/consumer" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_INSTALL_PREFIX="$prefix"
run_quiet cmake --build "$tmp/consumer"
run_quiet cmake --install "$tmp/consumer"
out=$("$prefix/bin/consumer") || fail "consumer (tiny by name): $out"
echo "$out"
grep -q '^OK$' <<<"$out" || fail "consumer printed no OK"
out=$("$prefix/bin/consumer" "$prefix/share/trecvit/configs/tiny-peer.json") || fail "consumer (path): $out"
grep -q '^OK$' <<<"$out" || fail "consumer with a path printed no OK"
if out=$("$prefix/bin/consumer" no-such-config 2>&1); then fail "consumer found no-such-config"; fi
grep -qF "$(realpath "$prefix")/share/trecvit/configs" <<<"$out" || fail "error names no installed configs dir: $out"

# pkg-config consumer: the same program from trecvit.pc's flags.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs trecvit) || fail "pkg-config --cflags --libs trecvit"
grep -q -- "-I$prefix/.*include/trecvit" <<<"$(pkg-config --cflags trecvit)" || fail "no include dir in: $flags"
# shellcheck disable=SC2086  # word splitting of the flags is intended
run_quiet c++ -std=c++17 -O1 $(pkg-config --cflags trecvit) "$src_dir/examples/consumer/main.cpp" \
  -o "$prefix/bin/consumer_pc" $(pkg-config --libs trecvit)
out=$("$prefix/bin/consumer_pc") || fail "pkg-config consumer: $out"
grep -q '^OK$' <<<"$out" || fail "pkg-config consumer printed no OK"

# The installed binary finds its installed configs by name.
out=$("$prefix/bin/trecvit" info --config tiny) || fail "trecvit info --config tiny: $out"
grep -q '^parameters:' <<<"$out" || fail "trecvit info printed no parameters: $out"
echo "install_test: OK ($prefix)"

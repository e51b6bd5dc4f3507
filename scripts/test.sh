#!/usr/bin/env bash
# Builds and runs every test (unit, pipeline, end-to-end) with ctest.
#   KT_BUILD_DIR=build (default)   KT_SANITIZE=ON for ASan + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${KT_BUILD_DIR:-build}
cmake -S . -B "$dir" -G Ninja -DKT_SANITIZE="${KT_SANITIZE:-OFF}" >/dev/null
ninja -C "$dir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$dir" && ctest --output-on-failure -j2 --timeout 600

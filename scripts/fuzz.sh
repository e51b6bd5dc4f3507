#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang and runs each for N seconds
# (default 60) on its committed seed corpus. Fails on any crash.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
CC=clang cmake -S . -B build-fuzz -G Ninja -DKT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build-fuzz $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
for f in tests/fuzz/fuzz_*.c; do
  n=$(basename "$f" .c)
  corpus=tests/fuzz/corpus/${n#fuzz_}
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "fuzzing $n for ${secs}s"
  ./build-fuzz/"$n" -max_total_time="$secs" -max_len=65536 -print_final_stats=1 "$work" 2>&1 | tail -n 12
  rm -rf "$work"
done

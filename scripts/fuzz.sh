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
  log=$(mktemp) art=$(mktemp -d)
  if ! ./build-fuzz/"$n" -max_total_time="$secs" -max_len=65536 -print_final_stats=1 \
         -artifact_prefix="$art/" "$work" > "$log" 2>&1; then
    # the whole report: the crash's stack, then the input that caused it
    grep -A60 -m1 "ERROR:\|runtime error" "$log" || tail -n 60 "$log"
    for a in "$art"/*; do echo "input $(basename "$a"):"; od -c "$a" | head -20; done
    exit 1
  fi
  tail -n 12 "$log"
  rm -rf "$work" "$log" "$art"
done

#!/usr/bin/env bash
# A/B of two kelemetry binaries on the end-to-end step of bench/run.sh:
# the runs alternate (A, B, A, B, ...) so that the machine's drift (±5-10 %
# over minutes here) hits both alike; each prints its rate and the
# server's CPU per event, and each binary's medians close. The session
# figures in docs/performance.md marked "A/B" come from this.
# Usage: bench/ab.sh BIN_A BIN_B [ROUNDS=4] [EVENTS=150000]
#        (BENCH_FLAGS adds kelemetry flags to both)
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(realpath "$1") b=$(realpath "$2")
rounds=${3:-4}
events=${4:-150000}
build=${BENCH_BUILD:-build-rel}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" bench_webhook >/dev/null
work=$(mktemp -d -t kt-ab.XXXXXX)
trap 'kill $KPID 2>/dev/null || true; rm -rf "$work"' EXIT
load="$work/load.jsonl"
python3 bench/gen_load.py --objects 5000 --events "$events" --batch 100 --out "$load"
. bench/lib.sh
ticks=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
  for bin in "$a" "$b"; do
    kt=$bin start_kt 18480
    rate=$("$build"/bench_webhook "$load" 18480 18490 --conns 4 |
           sed -n 's/^end to end.*: \([0-9]*\) events.*/\1/p')
    read -r u s < <(awk '{print $14, $15}' /proc/$KPID/stat)
    kill -INT $KPID; wait $KPID || true
    cpu=$(( (u + s) * 1000000 / ticks / events ))
    tag=$([ "$bin" = "$a" ] && echo A || echo B)
    echo "round $r $tag: $rate events/s, server CPU $cpu us/event"
    echo "$tag $rate $cpu" >> "$work/results"
  done
done
for tag in A B; do
  awk -v t="$tag" '$1 == t {print $2, $3}' "$work/results" | sort -n |
    awk -v t="$tag" '{r[NR]=$1; c[NR]=$2} END {
      m = int((NR + 1) / 2)
      print t ": median " r[m] " events/s; CPU per event (same run) " c[m] " us"}'
done

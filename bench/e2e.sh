#!/usr/bin/env bash
# The end-to-end step of bench/run.sh, repeated: each run starts a fresh
# kelemetry, sends the load at full speed and prints the rate, the
# server's CPU and the bytes it wrote per event; the median closes. This
# machine's timings vary by ±10 % from run to run: compare medians.
# Usage: bench/e2e.sh [EVENTS] [RUNS]   (BENCH_FLAGS adds kelemetry flags)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-60000}
runs=${2:-6}
build=${BENCH_BUILD:-build-rel}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" kelemetry bench_webhook >/dev/null
work=$(mktemp -d -t kt-e2e.XXXXXX)
trap 'kill $KPID 2>/dev/null || true; rm -rf "$work"' EXIT
load="$work/load.jsonl"
python3 bench/gen_load.py --objects 5000 --events "$events" --batch 100 --out "$load"
. bench/lib.sh
rates=()
for i in $(seq 1 "$runs"); do
  start_kt 18480
  rate=$("$build"/bench_webhook "$load" 18480 18490 --conns 4 |
         sed -n 's/^end to end.*: \([0-9]*\) events.*/\1/p')
  read -r u s < <(awk '{print $14, $15}' /proc/$KPID/stat)
  wchar=$(awk '/^wchar/{print $2}' /proc/$KPID/io) # every write(), WAL and checkpoints
  kill -INT $KPID; wait $KPID || true
  ticks=$(getconf CLK_TCK)
  echo "run $i: $rate events/s, server CPU $(( (u + s) * 1000000 / ticks / events )) us/event," \
       "written $(( wchar / events )) bytes/event"
  rates+=("$rate")
done
printf '%s\n' "${rates[@]}" | sort -n | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; print "median: " m " events/s over " NR " runs"}'

#!/usr/bin/env bash
# The soak benchmark of issue 7 (not a CI test): measure the peak rate of
# the webhook -> store pipeline on the bench load, then feed 80 % of it for
# SOAK_SECS (default 600) and sample the RSS and the store's size on disk
# every SAMPLE_SECS (default 30). The load repeats (same audit IDs): after
# the first pass every span is rewritten in place, so the store should stop
# growing, and the RSS should stay flat.
# Usage: bench/soak.sh [EVENTS]   (BENCH_FLAGS adds kelemetry flags)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-60000}
secs=${SOAK_SECS:-600}
step=${SAMPLE_SECS:-30}
build=${BENCH_BUILD:-build-rel}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" kelemetry bench_webhook >/dev/null
work=$(mktemp -d -t kt-soak.XXXXXX)
trap 'kill $KPID $BPID 2>/dev/null || true; rm -rf "$work"' EXIT
BPID=
load="$work/load.jsonl"
python3 bench/gen_load.py --objects 5000 --events "$events" --batch 100 --out "$load"

. bench/lib.sh

start_kt 18580
peak=$("$build"/bench_webhook "$load" 18580 18590 --conns 4 | sed -n 's/^end to end.*: \([0-9]*\) events.*/\1/p')
kill -INT $KPID; wait $KPID || true
rate=$((peak * 8 / 10))
reps=$(( (rate * secs) / events + 1 ))
echo "peak $peak events/s; soaking at $rate events/s for ${secs}s ($reps passes over $events events)"

start_kt 18580
"$build"/bench_webhook "$load" 18580 18590 --conns 4 --rate "$rate" --repeat "$reps" \
  > "$work/soak.out" &
BPID=$!
printf "%6s %10s %12s %12s %10s\n" t_s rss_MB store_MB spans_written refused
t=0
while [ $t -lt "$secs" ] && kill -0 $BPID 2>/dev/null; do
  sleep "$step"
  t=$((t + step))
  rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$KPID/status)
  store=$(du -sm "$work/data-18580" | cut -f1)
  m=$(curl -s http://127.0.0.1:18590/metrics)
  written=$(echo "$m" | awk '/^store_spans_written_total /{printf "%.0f", $2}')
  refused=$(echo "$m" | awk '/^audit_rejected_total/{s+=$2} END{printf "%.0f", s}')
  printf "%6d %10s %12s %12s %10s\n" "$t" "$rss" "$store" "$written" "$refused"
done
kill $BPID 2>/dev/null || true
wait $BPID 2>/dev/null || true
BPID=
kill -INT $KPID; wait $KPID || true

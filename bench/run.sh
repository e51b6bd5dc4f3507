#!/usr/bin/env bash
# The ingest benchmark of issue 2, in one run on the same cores:
#   1. generate realistic audit load (bench/gen_load.py),
#   2. the baselines: parse-only rate of the same bodies, in memory
#      (bench_parse) and over HTTP (bench_parse_server),
#   3. end to end: webhook -> queue -> consumers -> SQLite, at full speed,
#   4. the webhook's latency at half the end-to-end rate (paced),
#   5. RSS sampled over a long paced run (BENCH_SOAK_SECS, default 60).
# Usage: bench/run.sh [EVENTS] ; figures go to stdout.
# BENCH_FLAGS adds kelemetry flags (e.g. --audit-webhook-durable=false).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
soak=${BENCH_SOAK_SECS:-60}
build=${BENCH_BUILD:-build-rel}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" kelemetry bench_parse bench_parse_server bench_webhook >/dev/null
work=$(mktemp -d -t kt-bench.XXXXXX)
trap 'kill $KPID 2>/dev/null || true; rm -rf "$work"' EXIT
load="$work/load.jsonl"
python3 bench/gen_load.py --objects 5000 --events "$events" --batch 100 --out "$load"
echo "load: $events events, $(($(stat -c %s "$load") / events)) bytes/event, 100 per request, 5000 objects"

echo "== parse-only baseline (2 threads)"
"$build"/bench_parse "$load" 2

echo "== parse-only baseline over HTTP (the webhook's server, parse, 200; nothing else)"
for parser in cjson kt; do
  "$build"/bench_parse_server 18680 "$parser" &
  SPID=$!
  sleep 0.3
  echo "$parser: $("$build"/bench_webhook "$load" 18680 0 --conns 4 | sed -n 's/^acknowledged: \([0-9]*\) events.*/\1 events\/s/p')"
  kill -INT $SPID; wait $SPID || true
done

. bench/lib.sh

echo "== end to end, full speed"
start_kt 18480
out=$("$build"/bench_webhook "$load" 18480 18490 --conns 4)
echo "$out"
grep VmHWM /proc/$KPID/status
kill -INT $KPID; wait $KPID || true
rate=$(echo "$out" | sed -n 's/^end to end.*: \([0-9]*\) events.*/\1/p')

half=$((rate / 2))
echo "== webhook latency at half that rate ($half events/s)"
start_kt 18480
"$build"/bench_webhook "$load" 18480 18490 --conns 4 --rate "$half" | grep -E "latency|end to end"
kill -INT $KPID; wait $KPID || true

echo "== RSS over ${soak}s at half rate"
start_kt 18480
reps=$(( (half * soak) / events + 1 ))
("$build"/bench_webhook "$load" 18480 18490 --conns 4 --rate "$half" --repeat "$reps" >/dev/null) &
BPID=$!
for i in $(seq 1 6); do
  sleep $((soak / 6))
  echo "t=$((i * soak / 6))s rss=$(awk '/VmRSS/{print $2" "$3}' /proc/$KPID/status)"
done
wait $BPID || true
kill -INT $KPID; wait $KPID || true

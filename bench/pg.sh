#!/usr/bin/env bash
# End-to-end ingest into PostgreSQL beside the embedded SQLite store, in one
# run on the same cores with the same generated load (bench/gen_load.py):
#   1. webhook -> queue -> consumers -> SQLite (the default),
#   2. the same into PostgreSQL 15 on loopback (tests/lib/engines.py),
#   3. two kelemetry processes (2 webhook+consumer) sharing that
#      PostgreSQL, the load split between them.
# Then the store alone (bench_store) on both backends.
# Usage: bench/pg.sh [EVENTS] ; figures go to stdout.
# BENCH_FLAGS adds kelemetry flags (e.g. --audit-webhook-durable=false).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
build=${BENCH_BUILD:-build-rel}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$build" kelemetry bench_webhook bench_store >/dev/null
work=$(mktemp -d -t kt-bench-pg.XXXXXX)
KPID= ; K2PID=
trap 'kill $KPID $K2PID 2>/dev/null || true; kill $PGPID 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
load="$work/load.jsonl"
python3 bench/gen_load.py --objects 5000 --events "$events" --batch 100 --out "$load"
echo "load: $events events, 100 per request, 5000 objects"

# PostgreSQL from the tests' engine library, kept running in the background.
python3 - "$work" <<'PY' &
import os, signal, sys, time
sys.path.insert(0, "tests/lib")
import engines
pg = engines.Postgres().start()
open(os.path.join(sys.argv[1], "pgurl"), "w").write("postgresql://postgres@127.0.0.1:%d" % pg.port)
signal.signal(signal.SIGTERM, lambda *a: (pg.cleanup(), sys.exit(0)))
while True:
    time.sleep(1)
PY
PGPID=$!
for _ in $(seq 300); do [ -s "$work/pgurl" ] && break; sleep 0.1; done
pgurl=$(cat "$work/pgurl")
psql "$pgurl/postgres" -qtAc "CREATE DATABASE one" -c "CREATE DATABASE two"
base_flags=${BENCH_FLAGS:-}
secs() { sed -n 's/^end to end.*(\([0-9.]*\)s)$/\1/p'; }

. bench/lib.sh

echo "== end to end into SQLite (embedded)"
start_kt 18480
"$build"/bench_webhook "$load" 18480 18490 --conns 4 | grep -E "acknowledged|end to end"
kill -INT $KPID; wait $KPID || true

echo "== end to end into PostgreSQL (1 process)"
BENCH_FLAGS="$base_flags --storage-backend postgres --storage-postgres-dsn $pgurl/one"
start_kt 18480
"$build"/bench_webhook "$load" 18480 18490 --conns 4 | grep -E "acknowledged|end to end"
kill -INT $KPID; wait $KPID || true
echo "rows: $(psql "$pgurl/one" -qtAc 'SELECT count(*) FROM spans') spans"

echo "== end to end into PostgreSQL (2 processes, each half of the requests)"
awk 'NR % 2 == 1' "$load" >"$work/a.jsonl"
awk 'NR % 2 == 0' "$load" >"$work/b.jsonl"
BENCH_FLAGS="$base_flags --storage-backend postgres --storage-postgres-dsn $pgurl/two"
start_kt 18480; K2PID=$KPID
start_kt 18500
"$build"/bench_webhook "$work/a.jsonl" 18480 18490 --conns 2 >"$work/a.out" &
A=$!
"$build"/bench_webhook "$work/b.jsonl" 18500 18510 --conns 2 >"$work/b.out"
wait $A
ta=$(secs <"$work/a.out"); tb=$(secs <"$work/b.out")
python3 -c "t = max($ta, $tb); print('end to end, 2 processes: %.0f events/s (%.2fs)' % ($events / t, t))"
kill -INT $KPID $K2PID; wait $KPID || true; wait $K2PID || true
echo "rows: $(psql "$pgurl/two" -qtAc 'SELECT count(*) FROM spans') spans"

echo "== distributed: 2 webhook+consumer processes, --mq=redis (Redis Streams), PostgreSQL"
# As production runs it (tests/e2e/test_distributed.py): both webhooks put
# events in the streams, both consumers take partitions and store into one
# database. End to end = until every event is an audit span in PostgreSQL.
python3 - "$work" <<'PY' &
import os, signal, sys, time
sys.path.insert(0, "tests/lib")
import engines
r = engines.Redis().start()
open(os.path.join(sys.argv[1], "redis"), "w").write(r.addr)
signal.signal(signal.SIGTERM, lambda *a: (r.cleanup(), sys.exit(0)))
while True:
    time.sleep(1)
PY
RPID=$!
for _ in $(seq 300); do [ -s "$work/redis" ] && break; sleep 0.1; done
psql "$pgurl/postgres" -qtAc "CREATE DATABASE four"
BENCH_FLAGS="$base_flags --storage-backend postgres --storage-postgres-dsn $pgurl/four
  --mq redis --mq-redis-address $(cat "$work/redis") --span-cache ${BENCH_SPAN_CACHE:-redis}
  --span-cache-redis-address $(cat "$work/redis") --mq-redis-max-len 1000000"
start_kt 18480; K2PID=$KPID
start_kt 18500
t0=$(date +%s.%N)
"$build"/bench_webhook "$work/a.jsonl" 18480 0 --conns 2 >"$work/a.out" &
A=$!
"$build"/bench_webhook "$work/b.jsonl" 18500 0 --conns 2 >"$work/b.out"
wait $A
grep -h acknowledged "$work/a.out" "$work/b.out"
for _ in $(seq 1200); do
  n=$(psql "$pgurl/four" -qtAc "SELECT count(*) FROM spans WHERE service = 'audit'")
  [ "$n" -ge "$events" ] && break
  sleep 0.1
done
t1=$(date +%s.%N)
python3 -c "t = $t1 - $t0; print('end to end, 2 consumers on Redis Streams + PostgreSQL: %.0f events/s (%.2fs, %s audit spans)' % ($events / t, t, $n))"
kill -INT $KPID $K2PID; wait $KPID || true; wait $K2PID || true
kill $RPID; wait $RPID 2>/dev/null || true

echo "== the store alone (bench_store, 2 putting threads)"
"$build"/bench_store sqlite "$work/store.db" "$events" 2>/dev/null
psql "$pgurl/postgres" -qtAc "CREATE DATABASE three"
"$build"/bench_store postgres "$pgurl/three" "$events" 2>/dev/null

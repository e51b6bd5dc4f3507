# Shared by the bench scripts (sourced): starts a fresh kelemetry ($kt, or
# $build/kelemetry) on loopback ports $1 (webhook), $1+6 (query) and $1+10 (metrics),
# storing in $work/data-$1; its pid is in KPID. BENCH_FLAGS adds flags.
# Each start waits for the page cache's dirty pages to reach the disk
# (sync): the load file just generated (~800 MB for 150k events) or the
# previous run's database would otherwise be written back during the run,
# and the first run measured the kernel's writeback: 35-38k events/s where
# the next runs made 44-47k.
start_kt() {
  local p=$1
  rm -rf "$work/data-$p"
  sync
  "${kt:-$build/kelemetry}" --data-dir "$work/data-$p" --http-address 127.0.0.1 --http-port "$p" \
    --metrics-address 127.0.0.1 --metrics-port $((p + 10)) --query-port $((p + 6)) \
    --query-address 127.0.0.1 --log-level warn --storage-retention 0 ${BENCH_FLAGS:-} &
  KPID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((p + 10))/metrics" >/dev/null && break; sleep 0.05; done
}

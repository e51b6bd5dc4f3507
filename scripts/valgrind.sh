#!/usr/bin/env bash
# Runs the unit tests, the engine tests and every end-to-end test that
# starts kelemetry with the binary under valgrind memcheck: any invalid
# access, uninitialised read or definite leak fails. The end-to-end tests
# get KT_TEST_SCALE: the heavy ones (load, kill -9, several processes) cut
# their event counts and stretch their waits by it (tests/lib/ktest.py).
# Processes killed with -9 on purpose cannot report leaks; their restarts
# and every other process do.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-valgrind
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C "$dir"
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no"
# kelemetry under valgrind: one report per process in $logs/<pid>.log
# (empty when clean); fair scheduling so that no thread (a lease renewal)
# starves behind a busy one.
logs="$PWD/$dir/vg-logs"
rm -rf "$logs" && mkdir -p "$logs" && chmod 1777 "$logs" # test_faults runs it as nobody
wrap="$PWD/$dir/kelemetry-valgrind"
cat > "$wrap" <<WRAP
#!/bin/sh
exec $vg --fair-sched=yes --log-file=$logs/%p.log $PWD/$dir/kelemetry "\$@"
WRAP
chmod +x "$wrap"
cd "$dir"
# unit tests: valgrind around each binary
rm -f Testing/Temporary/LastDynamicAnalysis_*.log # a past run's defects are not this one's
ctest -R '^unit\.' --output-on-failure --timeout 900 \
  --overwrite MemoryCheckCommand=/usr/bin/valgrind \
  --overwrite MemoryCheckCommandOptions="--error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite" \
  -T memcheck 2>&1 | tail -n 15
# the memcheck step reports defects without failing: fail on any
if grep -q "Defects:" Testing/Temporary/LastDynamicAnalysis_*.log 2>/dev/null; then
  grep -h -A3 "Defects:" Testing/Temporary/LastDynamicAnalysis_*.log
  exit 1
fi
# the engine tests (real Redis, etcd, PostgreSQL): valgrind around each
# binary, inside the wrapper that starts the servers
export KT_SRC="$PWD/.." KT_DATA="$PWD/../tests/data/real"
for t in $(cd ../tests/engine && ls test_*.c | sed "s/\.c$//"); do
  echo "engine.$t under valgrind"
  python3 ../tests/lib/engines.py redis etcd postgres -- $vg "./$t" >"$t.vg.log" 2>&1 ||
    { tail -n 40 "$t.vg.log"; exit 1; }
done
# Every end-to-end test that runs kelemetry, with the binary under valgrind
# (test_fake_apiserver tests only the Python fake). ktest fails a test on
# its own processes' reports; the scan below also catches the one-shot runs
# (replay, scan, bad flags) a test starts itself. Two at a time: valgrind
# runs each process's threads on one core.
e2e_start=$(date +%s)
rc=0
KT_BIN_WRAP="$wrap" KT_VG_LOGS="$logs" KT_TEST_SCALE="${KT_TEST_SCALE:-10}" \
  ctest -R '^e2e\.' -E '^e2e\.test_fake_apiserver$' --output-on-failure -j2 || rc=$?
echo "end-to-end tests under valgrind: $(( $(date +%s) - e2e_start )) s"
bad=$(find "$logs" -name '*.log' -size +0 | sort)
if [ -n "$bad" ]; then
  for f in $bad; do echo "== valgrind report $f"; head -n 60 "$f"; done
  exit 1
fi
exit "$rc"

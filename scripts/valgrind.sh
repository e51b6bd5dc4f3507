#!/usr/bin/env bash
# Runs the unit tests, the engine tests, and the end-to-end tests that
# finish in reasonable time, under valgrind memcheck: any invalid access or definite leak fails.
# (The load, kill -9 and multi-process tests are left to the ASan run: under
# valgrind they are 30x slower.)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-valgrind
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C "$dir"
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no"
wrap="$PWD/$dir/kelemetry-valgrind"
cat > "$wrap" <<WRAP
#!/bin/sh
exec $vg $PWD/$dir/kelemetry "\$@"
WRAP
chmod +x "$wrap"
cd "$dir"
# unit tests: valgrind around each binary
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
# end-to-end tests with the binary under valgrind (ktest fails on any report)
KT_BIN_WRAP="$wrap" ctest -R 'e2e\.test_(replay|webhook|frontend|scan|kubeclient|security|otlp)$' \
  --output-on-failure --timeout 900

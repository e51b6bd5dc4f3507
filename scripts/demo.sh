#!/usr/bin/env bash
# Installs what is needed, builds, and starts kelemetry all-in-one with the
# bundled demo scenario (a Deployment's whole life, examples/) replayed as
# if it had just happened, so the UI shows a trace at once:
#   UI and Jaeger query API  http://localhost:16686
#   audit webhook            http://localhost:8080/audit/<cluster>
#   metrics                  http://localhost:9090/metrics
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build kelemetry
demo=$(mktemp -t kelemetry-demo.XXXXXX.jsonl)
start=$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ)
python3 examples/gen_deployment.py --start "$start" --out "$demo"
echo "demo: Deployment default/demo in cluster 'demo', starting $start"
exec ./build/kelemetry replay --serve --audit-default-cluster demo "$@" "$demo"

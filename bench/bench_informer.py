#!/usr/bin/env python3
"""Memory of the diff controller (issue 4): N watched objects held as their
last version. Serves N realistic Pods (bench/gen_load.py's shape: ~4 KB
with managedFields, ~3.5 KB once managedFields are dropped) from the fake
apiserver, starts kelemetry with the diff controller, waits until every
object is held, and reports the process RSS beside the JSON bytes of the
objects held (the diff_controller_object_bytes metric), and beside the RSS
of the same kelemetry watching an empty cluster (the baseline).

Usage: bench/bench_informer.py [N] [BUILD_DIR]   (defaults 50000, build-rel)
"""
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from fake_apiserver import FakeApiserver  # noqa: E402
from gen_load import pod  # noqa: E402
from ktest import Kelemetry  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
build = sys.argv[2] if len(sys.argv) > 2 else "build-rel"
os.environ["KT_BIN"] = os.path.join(ROOT, build, "kelemetry")
import ktest  # noqa: E402
ktest.BIN = os.environ["KT_BIN"]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(srv, want):
    kc = os.path.join(tempfile.mkdtemp(prefix="kt-bench-inf-"), "kubeconfig")
    srv.write_kubeconfig(kc)
    k = Kelemetry("--kube-config", kc, "--kube-target-cluster", "bench",
                  "--diff-controller-enable", "--diff-controller-leader-election-enable=false",
                  "--log-level", "warn", "--jaeger-query-enable=false").start()
    t0 = time.time()
    objects = 0
    while time.time() - t0 < 600:
        objects = k.metric('diff_controller_objects{cluster="bench"}') or 0
        if objects >= want:
            break
        time.sleep(0.5)
    synced = time.time() - t0
    time.sleep(2)  # let the list's transient buffers go
    rss = rss_kb(k.proc.pid)
    held = k.metric('diff_controller_object_bytes{cluster="bench"}') or 0
    k.stop()
    return objects, held, rss, synced


rnd = random.Random(1)
srv = FakeApiserver(garbage_collect=False).start()
base_objects, _, base_rss, _ = run(srv, 4)  # the namespaces the fake starts with
print("baseline: kelemetry watching an empty cluster: RSS %.1f MB" % (base_rss / 1024))
t = time.time()
for i in range(n):
    p = pod("app%d-7d9f8c6b5-%05d" % (i % 100, i), "ns-%d" % (i % 50), 1000 + i, 1,
            "node-%d" % (i % 20), rnd)
    for f in ("resourceVersion", "uid", "creationTimestamp"):
        p["metadata"].pop(f)
    srv._seed("pods", p["metadata"]["namespace"], p)
print("served %d pods (seeded in %.0f s)" % (n, time.time() - t))
objects, held, rss, synced = run(srv, n + 4)
print("held %d objects, %.1f MB of JSON; synced in %.0f s" % (objects, held / 1e6, synced))
print("RSS %.1f MB = %.2f x the JSON held; above the baseline: %.1f MB = %.2f x" % (
    rss / 1024, rss * 1024 / held, (rss - base_rss) / 1024, (rss - base_rss) * 1024 / held))
srv.stop()

"""Two kelemetry processes (separate data directories) sharing the span
cache and the trace cache on a real Redis, then on a real etcd
(tests/lib/engines.py). Audit batches for the same objects are spread over
both webhooks. Checked, reading both processes' SQLite files:

* every (object, window) has exactly one object span across both stores
  (a control run with --span-cache=local shows that without sharing both
  processes create it), and every audit span hangs under it (same trace
  id, parent = its span id);
* every acknowledged event is stored exactly once;
* a trace id handed out by one frontend's search is known to the other;
* the raw keys in the engine are /span/<object>/field=..,window=N and
  /trace/<decimal>;
* the engine restarted under load: processing stalls (kv_errors_total,
  503s from the small queue), then resumes, and nothing acknowledged is
  lost;
* the diff cache: a process running the diff controller against the fake
  apiserver writes watch diffs that another process, which only consumes
  the apiserver's audit events, attaches to its audit spans."""
import collections
import datetime
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
import engines  # noqa: E402
from fake_apiserver import FakeApiserver  # noqa: E402
from ktest import SRC, Kelemetry, Results, decode_tags, scaled, slow  # noqa: E402

R = Results()
work = tempfile.mkdtemp(prefix="kt-shared-")
load = os.path.join(work, "load.jsonl")


def make_load(objects, seed):
    subprocess.check_call([sys.executable, os.path.join(SRC, "bench", "gen_load.py"),
                           "--objects", str(objects), "--events", str(EVENTS), "--batch", "40",
                           "--seed", str(seed), "--out", load])
    b = [l.encode() for l in open(load, "rb").read().decode().splitlines()]
    return b, [[e["auditID"] for e in json.loads(x)["items"]] for x in b]


# Steady load: 40 objects updated again and again. Restart load: a new
# object in every event, so that the span cache must reach the engine
# after the restart too (the values it has seen are remembered in memory).
# (Fewer events under valgrind: KT_TEST_SCALE.)
EVENTS = scaled(1600, 640)
LOADS = {False: make_load(40, 1), True: make_load(EVENTS, 2)}
batches, ids = LOADS[False]
WINDOW_US = 30 * 60 * 1000000
BASE = 1767225600  # gen_load's first event: 2026-01-01T00:00:00Z
CLUSTER = "shared"




def post_all(procs, during=None):
    """Posts every batch, alternating processes; a refused batch (503) is
    sent again, as the apiserver does. Returns (acked indexes, 503 count).
    during(n_acked) runs once a quarter of the batches are acknowledged."""
    todo = list(range(len(batches)))
    acked, refused = set(), [0]
    lock = threading.Lock()
    fired = [during is None]

    def worker(w):
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            k = procs[(i + w) % len(procs)]
            try:
                st, _, _ = k.post_audit(batches[i], CLUSTER)
            except OSError:
                st = 0
            with lock:
                if st == 200:
                    acked.add(i)
                else:
                    refused[0] += st == 503
                    todo.append(i)
                fire = not fired[0] and len(acked) >= len(batches) // 4
                if fire:
                    fired[0] = True
            if fire:
                during()
            if st != 200:
                time.sleep(0.1)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return acked, refused[0]


def wait_idle(k, timeout=120):
    deadline, last, stable = time.time() + slow(timeout), -1, 0
    while time.time() < deadline and stable < 3:
        written = k.metric("store_spans_written_total")
        idle = k.metric("audit_queue_depth") == 0
        stable = stable + 1 if idle and written == last else 0
        last = written
        time.sleep(0.3)
    return stable >= 3


def spans(data_dirs):
    """(object spans by (object, window start), audit spans) over all stores."""
    objs = collections.defaultdict(list)
    audits = []
    for d in data_dirs:
        db = sqlite3.connect(os.path.join(d, "kelemetry.db"))
        for row in db.execute("select trace_id, span_id, cluster, grp, resource, namespace,"
                              " name, start_us from spans where service='object'"):
            objs[row[2:]].append((row[0], row[1]))
        for row in db.execute("select trace_id, parent_id, cluster, grp, resource, namespace,"
                              " name, start_us, body from spans where service='audit'"):
            audits.append(row)
        db.close()
    return objs, audits


def check_store(label, data_dirs, acked):
    objs, audits = spans(data_dirs)
    dup = [k for k, v in objs.items() if len(v) > 1]
    R.check(objs and not dup, "%s: one object span per (object, window) across both "
            "processes: %d of %d duplicated" % (label, len(dup), len(objs)))
    count = collections.Counter(decode_tags(a[8]).get("auditId") for a in audits)
    want = {a for i in acked for a in ids[i]}
    missing = [a for a in want if a not in count]
    R.check(not missing, "%s: no acknowledged event lost (%d missing of %d)"
            % (label, len(missing), len(want)))
    R.check(all(n == 1 for n in count.values()), "%s: no event stored twice" % label)
    orphans = 0
    for a in audits:
        window = a[7] // WINDOW_US * WINDOW_US
        o = objs.get(tuple(a[2:7]) + (window,))
        if not o or o[0] != (a[0], a[1]):
            orphans += 1
    R.check(orphans == 0, "%s: every audit span is under its object span "
            "(same trace id, parent): %d are not" % (label, orphans))


def trace_cache_shared(label, a, b):
    """A search on a hands out trace ids; b knows them."""
    q = urllib.parse.urlencode({
        "service": "tracing", "operation": CLUSTER, "limit": "5",
        "start": str((BASE - 3600) * 1000000), "end": str((BASE + 86400) * 1000000),
        "tags": json.dumps({"resource": "pods"})})
    st, _, body = a.get(a.query, "/api/traces?" + q)
    data = json.loads(body).get("data") or [] if st == 200 else []
    R.check(len(data) >= 1, "%s: search on the first frontend finds traces (%d)"
            % (label, st))
    known = 0
    for tr in data:
        st, _, body = b.get(b.query, "/api/traces/" + tr["traceID"])
        known += st == 200 or b"never issued" not in body
    R.check(data and known == len(data), "%s: the other frontend knows the %d trace ids "
            "(%d known)" % (label, len(data), known))


def raw_keys(eng, kind, prefix):
    if kind == "redis":
        out = eng.cli("--scan", "--pattern", prefix + "*")
    else:
        out = subprocess.run(["etcdctl", "--endpoints=" + eng.url, "get", prefix,
                              "--prefix", "--keys-only"], capture_output=True, text=True,
                             env=dict(os.environ, ETCDCTL_API="3"), timeout=30).stdout
    return [k for k in out.split("\n") if k.strip()]


def flags_for(kind, eng):
    if kind == "redis":
        return ["--span-cache", "redis", "--span-cache-redis-address", eng.addr,
                "--jaeger-trace-cache", "redis", "--jaeger-trace-cache-redis-address",
                eng.addr]
    return ["--span-cache", "etcd", "--span-cache-etcd-endpoints", eng.url,
            "--jaeger-trace-cache", "etcd", "--jaeger-trace-cache-etcd-endpoints", eng.url]


COMMON = ["--storage-retention", "0", "--audit-consumer-workers", "2"]


def run(kind, eng, restart):
    global batches, ids
    batches, ids = LOADS[restart]
    label = "%s%s" % (kind, " restarted" if restart else "")
    flags = flags_for(kind, eng) + COMMON
    if restart:  # a small queue, so that a stall shows as 503s
        flags += ["--audit-queue-limit", "200"]
    procs = [Kelemetry(*flags).start(), Kelemetry(*flags).start()]
    dirs = [p.dir for p in procs]
    try:
        during = (lambda: eng.restart(down_secs=2.0)) if restart else None
        acked, refused = post_all(procs, during)
        R.check(len(acked) == len(batches), "%s: every batch acknowledged in the end (%d/%d)"
                % (label, len(acked), len(batches)))
        R.check(all(wait_idle(p) for p in procs), "%s: both processes drained" % label)
        if restart:
            errs = sum(p.metric('kv_outages_total{backend="%s"}' % kind) for p in procs)
            R.check(errs >= 1, "%s: the outage was seen (kv_outages_total %d)" % (label, errs))
            R.check(refused > 0, "%s: the stalled processes refused with 503 (%d)"
                    % (label, refused))
            logs = "".join(p.logtext() for p in procs)
            R.check(logs.count("unavailable (") <= 2 * 2 and "is back after" in logs,
                    "%s: outage logged once per cache and process, and its end" % label)
        else:
            trace_cache_shared(label, procs[0], procs[1])
            keys = raw_keys(eng, kind, "/span/")
            pat = re.compile(r"^/span/%s/[^/]*/[a-z]+/[^/]*/[^/]+/field=[^,]+,window=\d+$"
                             % CLUSTER)
            R.check(keys and all(pat.match(k) for k in keys),
                    "%s: span keys are /span/<object>/field=..,window=N (%d, e.g. %s)"
                    % (label, len(keys), keys[:1]))
            tkeys = raw_keys(eng, kind, "/trace/")
            R.check(tkeys and all(re.match(r"^/trace/\d+$", k) for k in tkeys),
                    "%s: trace keys are /trace/<decimal> (%s)" % (label, tkeys[:1]))
    finally:
        for p in procs:
            rc = p.stop()
            R.check(rc == 0, "%s: clean exit (%s)" % (label, rc))
    failed = R.failed
    check_store(label, dirs, acked)
    if R.failed > failed:  # what the processes said about it
        for d in dirs:
            with open(os.path.join(d, "log"), errors="replace") as f:
                print("".join(l for l in f if " info " not in l)[-3000:])
    subprocess.run(["rm", "-rf"] + dirs)


# Control: without sharing, both processes create the object spans, so the
# "one object span" check above can fail.
procs = [Kelemetry(*COMMON).start(), Kelemetry(*COMMON).start()]
acked, _ = post_all(procs)
for p in procs:
    wait_idle(p)
    p.stop()
objs, _ = spans([p.dir for p in procs])
R.check(sum(len(v) > 1 for v in objs.values()) > 0,
        "control: with --span-cache=local both processes create object spans")
subprocess.run(["rm", "-rf"] + [p.dir for p in procs])

def scale_span(k, cluster):
    """The audit span of the Deployment's scale, from k's query API."""
    st, hdrs, _ = k.get(k.query, "/redirect?" + urllib.parse.urlencode(
        {"cluster": cluster, "resource": "deployments", "namespace": "default",
         "name": "web", "ts": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}))
    if st != 302:
        return None
    tid = hdrs.get("Location", "").rsplit("/", 1)[-1]
    st, _, body = k.get(k.query, "/api/traces/ff01000000%s" % tid[10:])
    data = json.loads(body).get("data") if st == 200 else None
    for sp in (data[0]["spans"] if data else []):
        if sp["operationName"].endswith(" scale"):
            return sp
    return None


def diff_cache_shared(kind, eng):
    """Informers in one process, audit consumer in another: the scale's
    audit span in the consumer carries the diff the informer's watch saw."""
    cluster = "fake"
    if kind == "redis":
        dflags = ["--diff-cache", "redis", "--diff-cache-redis-address", eng.addr]
    else:
        dflags = ["--diff-cache", "etcd", "--diff-cache-etcd-endpoints", eng.url]
    consumer = Kelemetry("--audit-default-cluster", cluster, "--storage-retention", "0",
                         "--diff-decorator-enable", *dflags)
    srv = FakeApiserver(tls=True, token="s3cret", bookmark_interval=0.5,
                        audit_webhook="http://127.0.0.1:%d/audit/%s" % (consumer.http, cluster))
    srv.start()
    informer = Kelemetry("--kube-target-cluster", cluster, "--diff-controller-enable",
                         "--diff-controller-leader-election-retry-period", "200ms",
                         "--storage-retention", "0", *dflags)
    kc = os.path.join(informer.dir, "kubeconfig")
    srv.write_kubeconfig(kc, context="fake")
    informer.flags += ["--kube-config", kc]
    try:
        consumer.start()
        informer.start()
        R.check(srv.wait_for_watchers(1, slow(20), resource="deployments"),
                "%s diff cache: the informer process watches deployments" % kind)
        srv.create({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "default"},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                             "template": {"metadata": {"labels": {"app": "web"}},
                                          "spec": {"containers": [{"name": "c",
                                                                   "image": "nginx:1"}]}}}})
        srv.patch("deployments", "default", "web", {"spec": {"replicas": 4}},
                  subresource="scale")
        deadline, sp = time.time() + slow(30), None
        while time.time() < deadline:
            sp = scale_span(consumer, cluster)
            if sp and any(t["key"] == "informer latency" for t in sp["tags"]):
                break
            time.sleep(0.3)
        # "informer latency" says the diff is the watch's (from the cache),
        # not one the consumer made from the audit bodies alone.
        logs = [f["value"] for lg in (sp or {}).get("logs", []) for f in lg["fields"]]
        R.check(sp and any(t["key"] == "informer latency" for t in sp["tags"]) and
                any("spec.replicas 2 -> 4" in v for v in logs),
                "%s diff cache: the consumer's scale span carries the informer's diff: %s"
                % (kind, logs[:3]))
        keys = raw_keys(eng, kind, "/diff/%s/apps/deployments/default/web/" % cluster)
        R.check(any(re.match(r"^/diff/fake/apps/deployments/default/web/newRv/\d+$", k)
                    for k in keys) and
                "/diff/fake/apps/deployments/default/web/creation" in keys,
                "%s diff cache: keys /diff/<object>/newRv/<rv> and /creation: %s"
                % (kind, keys))
    finally:
        for p in (informer, consumer):
            if p.proc:
                R.check(p.stop() == 0, "%s diff cache: clean exit" % kind)
        srv.cleanup()


with engines.Redis() as r:
    diff_cache_shared("redis", r)
with engines.Etcd() as e:
    diff_cache_shared("etcd", e)
with engines.Redis() as r:
    run("redis", r, restart=False)
with engines.Redis() as r:
    run("redis", r, restart=True)
with engines.Etcd() as e:
    run("etcd", e, restart=False)
with engines.Etcd() as e:
    run("etcd", e, restart=True)
subprocess.run(["rm", "-rf", work])
R.finish()

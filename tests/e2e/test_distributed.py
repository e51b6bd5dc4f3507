"""Distributed mode, as the production topology runs it (issue 5's
acceptance), against real Redis, etcd and PostgreSQL on loopback and the
fake apiserver:

  2 x webhook + consumer   --mq=redis, spans into PostgreSQL
  2 x informers            event informer (1 leader) + diff controller
                           (2 leaders, 1 writer) writing watch diffs to the
                           shared diff cache
  1 x frontend             query API over PostgreSQL, shared trace cache

Audit load for the same objects is spread over both webhooks. Then:
- exactly one object span per (object, window) across all processes,
  counted in PostgreSQL, and every acknowledged audit event stored once;
- complete traces through the frontend: the Deployment's tree holds its
  ReplicaSet and Pods, audit spans from both webhooks, the watch diff of
  the scale (written by an informer, attached by a consumer) and the
  Kubernetes Events (traced by the event-informer leader);
- kill -9 of a consumer under load: its pending stream entries are claimed
  by the other, nothing acknowledged is missing, nothing duplicated.
Run once with the caches on Redis and once on etcd."""
import copy
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
import engines  # noqa: E402
from fake_apiserver import FakeApiserver  # noqa: E402
from ktest import SRC, Kelemetry, Results, event_list, scaled, slow  # noqa: E402

R = Results()
CLUSTER = "prod"
TMP = tempfile.mkdtemp(prefix="kt-dist-")


def wait(pred, timeout=30.0, step=0.2):
    deadline = time.time() + slow(timeout)
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def strip(obj):
    o = copy.deepcopy(obj)
    md = o.setdefault("metadata", {})
    for f in ("resourceVersion", "uid", "selfLink", "managedFields", "creationTimestamp",
              "generation"):
        md.pop(f, None)
    o.pop("status", None)
    return o


def post_retry(procs, body, deadline):
    """POSTs one batch like the apiserver: on 503 or a dead webhook, again
    (to the next webhook) until accepted. Returns the process that took it."""
    data = json.dumps(body).encode()
    i = 0
    while time.time() < deadline:
        k = procs[i % len(procs)]
        i += 1
        try:
            st, _, _ = k.request(k.http, "POST", "/audit/" + CLUSTER, data,
                                 {"Content-Type": "application/json"})
        except OSError:
            st = 0
        if st == 200:
            return k
        time.sleep(0.05)
    raise RuntimeError("batch not accepted in time")


def synthetic_batches(n_objects, n_events, batch):
    out = os.path.join(TMP, "load.jsonl")
    subprocess.check_call([sys.executable, os.path.join(SRC, "bench", "gen_load.py"),
                           "--objects", str(n_objects), "--events", str(n_events),
                           "--batch", str(batch), "--out", out])
    with open(out) as f:
        return [json.loads(l) for l in f if l.strip()]


def run(cache):
    print("== caches on", cache, flush=True)
    redis, etcd, pg = engines.Redis().start(), engines.Etcd().start(), engines.Postgres().start()
    srv = FakeApiserver(token="t0k", bookmark_interval=0.5).start()
    kc = os.path.join(TMP, "kubeconfig-" + cache)
    srv.write_kubeconfig(kc, context="fake")
    where = {"redis": ["--%s-redis-address", redis.addr],
             "etcd": ["--%s-etcd-endpoints", etcd.url]}[cache]
    common = ["--storage-backend", "postgres", "--storage-postgres-dsn", pg.dsn,
              "--storage-retention", "0", "--mq", "redis", "--mq-redis-address", redis.addr,
              "--audit-default-cluster", CLUSTER, "--kube-target-cluster", CLUSTER,
              "--kube-config", kc, "--jaeger-cluster-names", CLUSTER,
              "--event-informer-leader-election-retry-period", "200ms",
              "--diff-controller-leader-election-retry-period", "200ms",
              "--diff-decorator-fetch-total-timeout", "5s"]
    for c in ("span-cache", "diff-cache", "jaeger-trace-cache"):
        common += ["--" + c, cache, where[0] % c, where[1]]
    webhooks = [Kelemetry(*common, "--jaeger-query-enable=false", "--diff-decorator-enable")
                for _ in range(2)]
    informers = [Kelemetry(*common, "--audit-webhook-enable=false",
                           "--audit-consumer-enable=false", "--jaeger-query-enable=false",
                           "--event-informer-enable", "--diff-controller-enable")
                 for _ in range(2)]
    frontend = Kelemetry(*common, "--audit-webhook-enable=false", "--audit-consumer-enable=false")
    procs = webhooks + informers + [frontend]
    try:
        for k in procs:
            k.start()
        check_topology(procs, informers)
        scenario(srv, webhooks, informers, frontend, pg)
    finally:
        for k in procs:
            k.stop()
            if k.proc and k.proc.returncode not in (0, -9):
                R.check(False, "a process exited with %s: %s" % (k.proc.returncode,
                                                                k.logtext()[-2000:]))
        srv.cleanup()
        for e in (redis, etcd, pg):
            e.cleanup()


def check_topology(procs, informers):
    def leaders(comp):
        return sum(k.metric('is_leader{component="%s"}' % comp) for k in informers)
    R.check(wait(lambda: leaders("event-informer") == 1), "one event-informer leader")
    R.check(wait(lambda: leaders("diff-controller") == 2), "two diff-controller leaders")


def scenario(srv, webhooks, informers, frontend, pg):
    # 1. Real objects through the apiserver: the informers watch them; the
    #    apiserver's audit events are spread over both webhooks.
    docs = json.load(open(os.path.join(SRC, "tests", "data", "real",
                                       "kspan-deployment-2-pods.json")))
    objects = [d["object"] for d in docs if d["object"]["kind"] != "Event"]
    events = [d["object"] for d in docs if d["object"]["kind"] == "Event"]
    for o in sorted(objects, key=lambda o: ["Deployment", "ReplicaSet", "Pod"].index(o["kind"])):
        srv.create(strip(o))
    dep = next(o for o in objects if o["kind"] == "Deployment")["metadata"]
    time.sleep(1.0)  # the diff controllers see the creations first
    srv.patch("deployments.apps", dep["namespace"], dep["name"], {"spec": {"replicas": 4}})
    now = datetime.datetime.utcnow().replace(microsecond=0)
    ts = (now + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for ev in events:
        e = strip(ev)
        e["firstTimestamp"] = e["lastTimestamp"] = ts
        if e.get("eventTime"):
            e["eventTime"] = ts.replace("Z", ".000000Z")
            e["firstTimestamp"] = e["lastTimestamp"] = None
        srv.create(e)
    audit = [a for a in srv.audit_events if a.get("stage") == "ResponseComplete"
             and a["objectRef"].get("resource") != "events"]
    deadline = time.time() + slow(60)
    used = set()
    for i, a in enumerate(audit):
        used.add(id(post_retry(webhooks[i % 2:] + webhooks[:i % 2], event_list([a]),
                               deadline)))
    R.check(len(used) == 2, "apiserver audit events went to both webhooks")
    R.check(wait(lambda: sum(k.metric('event_controller_events_total{cluster="%s",'
                                      'outcome="traced"}' % CLUSTER) for k in informers)
                 == len(events)), "the event-informer leader traced the %d Events" % len(events))

    # 2. Synthetic load for many objects over both webhooks; one consumer is
    #    killed (-9) in the middle.
    batches = synthetic_batches(300, scaled(6000, 1200), 40)  # fewer under valgrind
    acked = set()
    deadline = time.time() + slow(240)
    alive = list(webhooks)
    for i, b in enumerate(batches):
        if i == len(batches) // 2:
            webhooks[1].proc.send_signal(signal.SIGKILL)
            webhooks[1].proc.wait()
            alive = [webhooks[0]]
        post_retry(alive[i % len(alive):] + alive[:i % len(alive)], b, deadline)
        acked.update(e["auditID"] for e in b["items"])
    # The killed consumer's partitions and pending entries go to the other.
    # Audit span ids derive from the audit ID: one row per acknowledged
    # event, whichever consumer (or both, after the kill) wrote it.
    want = len(acked)
    synth = "FROM spans WHERE service = 'audit' AND namespace LIKE 'ns-%'"
    got = wait(lambda: int(pg.psql("SELECT count(*) " + synth)) >= want, 120, 1)
    R.check(got and int(pg.psql("SELECT count(*) " + synth)) == want,
            "every acknowledged event stored once: %s of %d" % (
                pg.psql("SELECT count(*) " + synth), want))
    dups = pg.psql("SELECT count(*) FROM (SELECT 1 FROM spans GROUP BY trace_id, span_id"
                   " HAVING count(*) > 1) d")
    R.check(dups == "0", "no span stored twice: %s" % dups)
    multi = pg.psql("SELECT count(*) FROM (SELECT 1 FROM spans WHERE service = 'object'"
                    " GROUP BY cluster, grp, resource, namespace, name, start_us"
                    " HAVING count(*) > 1) d")
    R.check(multi == "0", "exactly one object span per (object, window): %s more" % multi)
    objs = int(pg.psql("SELECT count(DISTINCT (namespace, name)) FROM spans"
                       " WHERE service = 'object' AND resource = 'pods' AND namespace LIKE 'ns-%'"))
    R.check(objs == 300, "an object span for each of the 300 objects: %d" % objs)
    R.check(webhooks[0].metric("audit_mq_claimed_total") > 0,
            "the live consumer claimed the dead one's pending entries")

    # 3. The frontend shows complete traces.
    check_trace(frontend, dep, events)


def check_trace(frontend, dep, events):
    k = frontend
    st, hdrs, _ = k.get(k.query, "/redirect?" + urllib.parse.urlencode(
        {"cluster": CLUSTER, "resource": "deployments", "namespace": dep["namespace"],
         "name": dep["name"], "ts": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}))
    R.check(st == 302, "frontend finds the Deployment: %s" % st)
    tid = hdrs.get("Location", "").rsplit("/", 1)[-1]
    spans = []

    state = {}

    def fetch():
        st, _, body = k.get(k.query, "/api/traces/ff01000000%s" % tid[10:])
        if st != 200:
            return None
        d = json.loads(body)["data"][0]
        spans[:] = d["spans"]
        tag = lambda s, key: next((t["value"] for t in s["tags"] if t["key"] == key), None)
        state["kinds"] = sorted({tag(s, "resource") for s in spans} - {None})
        state["diff"] = any("spec.replicas" in str(f["value"]) for s in spans
                            for lg in s.get("logs", []) for f in lg["fields"])
        state["events"] = len({ev["reason"] for ev in events} &
                              {s["operationName"] for s in spans})
        state["apiservers"] = len({tag(s, "apiserver") for s in spans} - {None})
        return ({"deployments", "replicasets", "pods"} <= set(state["kinds"]) and
                state["diff"] and state["events"] == len({ev["reason"] for ev in events}))
    R.check(wait(fetch, 30, 1), "the Deployment's tree: its ReplicaSet and Pods, the scale's "
            "watch diff and the Kubernetes Events (%d spans: %s)" % (len(spans), state))


for cache in ("redis", "etcd"):
    run(cache)
R.finish()

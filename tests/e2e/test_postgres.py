"""The span store on a real PostgreSQL (tests/lib/engines.py):

1. `kelemetry replay` of the demo scenario into PostgreSQL, then a query
   server on the same database, answers exactly what the same replay into
   the embedded SQLite store answers (services, operations, searches in
   several display modes, span for span).
2. PostgreSQL stopped and started while audit batches are posted: every
   batch is eventually answered 200 (503s and stalls are retried, as the
   apiserver does), searches during the outage answer 503 with a JSON
   message, and afterwards every event is one audit span, no span is
   duplicated, one object span per (object, window), no crash, bounded
   memory."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
import engines  # noqa: E402
from ktest import BIN, SRC, Kelemetry, Results, slow  # noqa: E402

R = Results()
tmp = tempfile.mkdtemp(prefix="kt-pg-")
demo = os.path.join(SRC, "examples", "demo-deployment.jsonl")
T0 = 1767225600 * 10**6  # 2026-01-01T00:00:00Z: the demo's day


def replay(*flags):
    p = subprocess.run([BIN, "replay", "--storage-retention", "0", "--progress=false",
                        "--audit-default-cluster", "demo"] + list(flags) + [demo],
                       capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def get_json(k, path):
    st, _, body = k.get(k.query, path)
    try:
        return st, json.loads(body)
    except ValueError:
        return st, body


def normal(trace):
    """A trace without its ids (the trace id is random, and so are the ids
    of the spans the frontend makes up): each span by what it shows, its
    parent by its parent's label."""
    def label(s):
        return (trace["processes"][s["processID"]]["serviceName"], s["operationName"],
                s["startTime"], s["duration"])
    by_id = {s["spanID"]: s for s in trace["spans"]}
    spans = []
    for s in trace["spans"]:
        spans.append((label(s), sorted((t["key"], str(t["value"])) for t in s["tags"]),
                      sorted(label(by_id[r["spanID"]]) for r in s["references"]
                             if r["spanID"] in by_id),
                      sorted(json.dumps(l, sort_keys=True) for l in s["logs"])))
    return sorted(spans)


SEARCHES = [
    ("tracing", {"resource": "deployments"}),
    ("tracing [full tree]", {"resource": "deployments", "name": "demo"}),
    ("tracing [ancestors]", {"resource": "pods"}),
    ("tree [owned objects]", {"resource": "replicasets"}),
]


def answers(k):
    out = {}
    out["services"] = get_json(k, "/api/services")
    out["operations"] = get_json(k, "/api/services/%s/operations" % urllib.parse.quote("tracing"))
    for svc, tags in SEARCHES:
        st, d = get_json(k, "/api/traces?" + urllib.parse.urlencode(
            {"service": svc, "operation": "demo", "limit": "20",
             "start": str(T0 - 3600 * 10**6), "end": str(T0 + 3 * 3600 * 10**6),
             "tags": json.dumps(tags)}))
        out[svc] = (st, sorted(normal(t) for t in d["data"]) if st == 200 else d)
    return out


with engines.Postgres() as pg:
    pgflags = ["--storage-backend", "postgres", "--storage-postgres-dsn", pg.dsn]
    # 1. the same replay into both stores answers the same
    rc, out, err = replay("--data-dir", os.path.join(tmp, "sqlite"))
    R.check(rc == 0 and "73 accepted" in out, "replay into SQLite: %s %s" % (out, err[-300:]))
    rc, out, err = replay("--data-dir", os.path.join(tmp, "unused"), *pgflags)
    R.check(rc == 0 and "73 accepted" in out, "replay into PostgreSQL: %s %s" % (out, err[-300:]))
    n_pg = int(pg.psql("SELECT count(*) FROM spans"))
    R.check(n_pg > 60, "spans in PostgreSQL: %d" % n_pg)
    R.check(pg.psql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'spans'::regclass"
                    " AND pg_get_expr((SELECT relpartbound FROM pg_class WHERE oid = inhrelid),"
                    " inhrelid) LIKE '%%%d%%'" % T0) == "1",
            "a partition made for the replayed day")
    # replaying again is idempotent
    rc, out, err = replay("--data-dir", os.path.join(tmp, "unused"), *pgflags)
    R.check(rc == 0 and int(pg.psql("SELECT count(*) FROM spans")) == n_pg,
            "a second replay adds no row")
    with Kelemetry("--storage-retention", "0", data_dir=os.path.join(tmp, "sqlite")) as ks, \
            Kelemetry("--storage-retention", "0", *pgflags) as kp:
        a, b = answers(ks), answers(kp)
        for key in a:
            R.check(a[key] == b[key], "same answer for %s:\n sqlite %s\n pg     %s" %
                    (key, str(a[key])[:300], str(b[key])[:300]))
        R.check(a["tracing [full tree]"][0] == 200 and len(a["tracing [full tree]"][1]) == 1 and
                len(a["tracing [full tree]"][1][0]) >= 11, "the full tree has the whole demo")

    # 2. PostgreSQL stopped and started under load
    load = os.path.join(tmp, "load.jsonl")
    subprocess.check_call([sys.executable, os.path.join(SRC, "bench", "gen_load.py"),
                           "--objects", "40", "--events", "600", "--batch", "10",
                           "--out", load])
    bodies = open(load, "rb").read().splitlines()
    ids = set()
    for b in bodies:
        ids.update(e["auditID"] for e in json.loads(b)["items"])
    pg.psql("TRUNCATE spans, kv")
    with Kelemetry("--storage-retention", "0", "--audit-queue-limit", "200", *pgflags) as k:
        acked, codes, lock = [0], {}, threading.Lock()
        # The posters hold back while the server is stopped and the probes
        # below run: a request in flight when it stops is held until it is
        # back, and two held ones would take both webhook threads.
        gate, paused, inflight = threading.Condition(lock), [False], [0]

        def post(part):
            for b in part:
                time.sleep(0.05)  # paced, so that the outage lands mid-load
                deadline = time.time() + 90
                while time.time() < deadline:
                    with gate:
                        gate.wait_for(lambda: not paused[0])
                        inflight[0] += 1
                    try:
                        st, _, _ = k.post_audit(b, "load")
                    except OSError:  # a stalled request timed out: retried
                        st = -1
                    with gate:
                        inflight[0] -= 1
                        gate.notify_all()
                    with lock:
                        codes[st] = codes.get(st, 0) + 1
                    if st == 200:
                        with lock:
                            acked[0] += 1
                        break
                    time.sleep(0.2)

        threads = [threading.Thread(target=post, args=(bodies[i::2],), daemon=True)
                   for i in range(2)]
        for t in threads:
            t.start()
        while acked[0] < len(bodies) // 4:
            time.sleep(0.01)
        tid = None
        for _ in range(100):  # a trace id handed out before the outage
            st, d = get_json(k, "/api/traces?service=tracing&operation=load&start=%d&end=%d"
                             "&limit=1" % (T0, T0 + 3600 * 10**6))
            if st == 200 and d.get("data"):
                tid = d["data"][0]["traceID"]
                break
            time.sleep(0.05)
        with gate:
            paused[0] = True
            gate.wait_for(lambda: inflight[0] == 0, slow(30))
        pg.stop()
        at_stop = acked[0]
        st, d = get_json(k, "/api/traces/%s" % tid)
        R.check(tid and st == 503, "a trace fetched during the outage: 503, not 404: %s %s"
                % (st, str(d)[:200]))
        # Requests in flight when it went down wait for their commit; once
        # the writer has seen the outage, new ones are refused at once.
        # A request the writer has not yet failed on is held (answered once
        # the server is back); poll with short timeouts until one is refused.
        st, body = 0, b""
        for _ in range(20):
            req = urllib.request.Request(
                "http://127.0.0.1:%d/audit/load" % k.http, data=bodies[0], method="POST",
                headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=slow(0.5)) as r:
                    st, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                st, body = e.code, e.read()
            except OSError:
                st = 0
            if st == 503:
                break
        R.check(st == 503 and b"unreachable" in body and
                k.metric('audit_rejected_total{reason="store_unavailable"}') > 0,
                "a request during the outage: 503 store_unavailable at once: %s %s"
                % (st, body[:200]))
        st, d = get_json(k, "/api/traces?service=tracing&operation=load&start=%d&end=%d"
                         % (T0, T0 + 3600 * 10**6))
        R.check(st == 503 and "store" in d["errors"][0]["msg"],
                "a search during the outage: 503 with a message: %d %s" % (st, str(d)[:200]))
        with gate:  # the load goes on during the outage: refused, retried
            paused[0] = False
            gate.notify_all()
        time.sleep(2)
        pg.start()
        for t in threads:
            t.join()
        R.check(acked[0] == len(bodies), "every batch answered 200 in the end: %d/%d %s" %
                (acked[0], len(bodies), codes))
        R.check(at_stop < len(bodies), "the outage came under load (%d/%d acked)" %
                (at_stop, len(bodies)))
        print("outage at %d/%d batches; answers %s" % (at_stop, len(bodies), codes))
        deadline = time.time() + slow(60)
        while time.time() < deadline and \
                int(pg.psql("SELECT count(*) FROM spans WHERE service = 'audit'")) < len(ids):
            time.sleep(0.2)
        k.wait_ingested("load", len(ids))
        R.check(int(pg.psql("SELECT count(*) FROM spans WHERE service = 'audit'")) == len(ids),
                "one audit span per event: %s of %d" %
                (pg.psql("SELECT count(*) FROM spans WHERE service = 'audit'"), len(ids)))
        R.check(pg.psql("SELECT count(*) FROM (SELECT 1 FROM spans GROUP BY trace_id, span_id"
                        " HAVING count(*) > 1) d") == "0", "no span duplicated")
        R.check(pg.psql("SELECT count(*) FROM (SELECT 1 FROM spans WHERE service = 'object'"
                        " GROUP BY cluster, grp, resource, namespace, name, start_us"
                        " HAVING count(*) > 1) d") == "0", "one object span per (object, window)")
        R.check(pg.psql("SELECT count(*) FROM kv WHERE ns = 'inbox'") == "0",
                "the inbox is empty again")
        R.check(k.metric('store_errors_total{backend="postgres",op="write"}') +
                k.metric('store_errors_total{backend="postgres",op="connect"}') > 0,
                "the outage is counted")

        hwm = int([l.split()[1] for l in open("/proc/%d/status" % k.proc.pid)
                   if l.startswith("VmHWM")][0])
        R.check(hwm < 400 * 1024, "peak RSS bounded: %d kB" % hwm)
        R.check(k.proc.poll() is None, "still running")

subprocess.run(["rm", "-rf", tmp])
R.finish()

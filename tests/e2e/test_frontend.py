"""The query API on the demo scenario: the equivalents of kelemetry's own
e2e tests (deployment, ancestors), all 16 display modes well formed for the
Jaeger UI, the trace-id mode switch, searches with the UI's exact
parameters, and 4xx (never 5xx) for bad input."""
import datetime
import time
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, SRC, Kelemetry, Results  # noqa: E402

R = Results()
start = datetime.datetime.utcnow() - datetime.timedelta(minutes=10)
demo = tempfile.mktemp(suffix=".jsonl")
subprocess.check_call([sys.executable, os.path.join(SRC, "examples", "gen_deployment.py"),
                       "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--out", demo])
now = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def get_json(k, path):
    st, hdrs, body = k.get(k.query, path)
    try:
        return st, hdrs, json.loads(body)
    except ValueError:
        return st, hdrs, body


def root_and_children(trace):
    ids = {s["spanID"] for s in trace["spans"]}
    roots = [s for s in trace["spans"] if not s["references"]]
    kids = {}
    for s in trace["spans"]:
        for r in s["references"]:
            kids.setdefault(r["spanID"], []).append(s)
    return roots, kids, ids


def fields(log):
    return {f["key"]: f["value"] for f in log["fields"]}


def tags(span):
    return {t["key"]: t["value"] for t in span["tags"]}


def well_formed(trace):
    roots, kids, ids = root_and_children(trace)
    ok = len(roots) == 1 and trace["traceID"]
    for s in trace["spans"]:
        ok = ok and s["processID"] in trace["processes"]
        ok = ok and isinstance(s["startTime"], int) and isinstance(s["duration"], int)
        ok = ok and s["startTime"] > 0
        for r in s["references"]:
            ok = ok and r["spanID"] in ids and r["traceID"] == trace["traceID"]
    return bool(ok)


with Kelemetry("--audit-default-cluster", "tracetest") as k:
    st, _, body = k.post_audit(open(demo, "rb").read().replace(b"\n", b",").rstrip(b",").join(
        [b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[', b"]}"]), "tracetest")
    R.check(st == 200, "demo posted: %s" % body[:200])
    # Let the consumer finish: the traced count stops moving.
    k.wait_ingested("tracetest", 66)

    st, hdrs, _ = k.get(k.query, "/redirect?" + urllib.parse.urlencode(
        {"cluster": "tracetest", "resource": "deployments", "namespace": "default",
         "name": "demo", "ts": now}))
    loc = hdrs.get("Location", "")
    R.check(st == 302 and loc.startswith("/trace/ff20000000"), "redirect 302: %d %s" % (st, loc))
    tid = loc.rsplit("/", 1)[-1]

    # kelemetry's e2e "deployment" test, mode 21000000 (tracing, full tree)
    st, _, d = get_json(k, "/api/traces/ff21000000" + tid[10:])
    R.check(st == 200 and len(d["data"]) == 1, "trace by id: %d" % st)
    tr = d["data"][0]
    roots, kids, _ = root_and_children(tr)
    R.check(len(roots) == 1, "one root")
    root = roots[0]
    rt = tags(root)
    R.check(rt.get("resource") == "deployments" and rt.get("name") == "demo", "root is the Deployment")
    logs = [fields(l) for l in root["logs"]]
    deletes = [l for l in logs if l.get("audit", "").endswith(" delete")]
    R.check(len(deletes) == 1 and json.loads(deletes[0]["snapshot"])["metadata"]["name"] == "demo",
            "delete carries the snapshot")
    R.check(any(l.get("audit") == "system:serviceaccount:kube-system:deployment-controller update status"
                for l in logs), "controller's update status")
    diffs = [l[key] for l in logs for key in l if key in ("diff", "verbose diff")]
    all_diffs = [f["value"] for s in tr["spans"] for l in s["logs"] for f in l["fields"]
                 if f["key"] in ("diff", "verbose diff")]
    R.check(any("status.observedGeneration 1 -> 2" in x for x in diffs), "observedGeneration 1 -> 2")
    R.check(not any("metadata.managedFields" in x for x in all_diffs), "no managedFields in diffs")
    rkids = kids.get(root["spanID"], [])
    R.check(len(rkids) == 2 and all(tr["processes"][s["processID"]]["serviceName"] == "replicasets"
                                   for s in rkids), "root has exactly the 2 ReplicaSets: %s" %
            [s["operationName"] for s in rkids])
    pods = [s for s in tr["spans"] if tr["processes"][s["processID"]]["serviceName"] == "pods"]
    R.check(len(pods) >= 4, "pods under the ReplicaSets: %d" % len(pods))
    R.check(tr["processes"][root["processID"]]["serviceName"] == "tracetest deployments",
            "root service is '<cluster> <resource>'")
    R.check(root["operationName"].startswith("demo / "), "root operation: %s" % root["operationName"])

    # All 16 modes re-render the same search and are well formed.
    st, _, svcs = get_json(k, "/api/services")
    modes = svcs["data"]
    R.check(len(modes) == 16 and modes[0] == "tracing", "16 modes, default first")
    for m in ["00", "10", "20", "30", "01", "11", "21", "31", "02", "12", "22", "32",
              "04", "14", "24", "34"]:
        st, _, d = get_json(k, "/api/traces/ff%s000000%s" % (m, tid[10:]))
        R.check(st == 200 and well_formed(d["data"][0]), "mode %s000000 well formed" % m)

    # kelemetry's e2e "ancestors" test: searched by the first ReplicaSet.
    rs = sorted(rkids, key=lambda s: s["startTime"])[0]["operationName"]
    st, _, d = get_json(k, "/api/traces?" + urllib.parse.urlencode(
        {"service": "tracing [ancestors]", "operation": "tracetest", "limit": "20",
         "start": str(int((time.time() - 3600) * 1e6)), "end": str(int(time.time() * 1e6)),
         "lookback": "1h", "tags": json.dumps({"resource": "replicasets", "name": rs})}))
    R.check(st == 200 and len(d["data"]) == 1, "ancestors search: one trace")
    tr = d["data"][0]
    roots, kids, _ = root_and_children(tr)
    R.check(tags(roots[0]).get("resource") == "deployments", "ancestors root is the Deployment")
    R.check(len(kids.get(roots[0]["spanID"], [])) == 1, "ancestors root has exactly 1 child")
    R.check(tr["traceID"].startswith("ff22000000"), "mode in the trace id")

    # The UI's search, exactly as it sends it (bare keys for empty fields).
    st, _, d = get_json(k, "/api/traces?end=%d&limit=20&lookback=1h&maxDuration&minDuration"
                        "&service=tracing&start=%d&tags=%s" % (
                            int(time.time() * 1e6), int((time.time() - 3600) * 1e6),
                            urllib.parse.quote(json.dumps({"resource": "deployments"}))))
    R.check(st == 200 and len(d["data"]) >= 1, "UI search finds the Deployment")
    st, _, d = get_json(k, "/api/v3/services")
    R.check(st == 200 and d["services"][0] == "tracing", "v3 services")
    st, _, d = get_json(k, "/api/v3/operations?service=tracing")
    R.check(st == 200 and {"name": "tracetest", "spanKind": ""} in d["operations"], "v3 operations")
    st, _, d = get_json(k, "/api/v3/trace-summaries?" + urllib.parse.urlencode(
        {"query.serviceName": "tracing", "query.operationName": "tracetest",
         "query.startTimeMin": (datetime.datetime.utcnow() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "query.startTimeMax": now, "query.searchDepth": "20",
         "query.attributes": json.dumps({"resource": "deployments"})}))
    R.check(st == 200 and len(d["summaries"]) >= 1 and len(d["summaries"][0]["traceId"]) == 32,
            "v3 trace summaries")

    # /extensions/api/v1/trace: one trace as Jaeger JSON, logs filtered.
    hour_ago = (datetime.datetime.utcnow() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    st, _, d = get_json(k, "/extensions/api/v1/trace?" + urllib.parse.urlencode(
        {"cluster": "tracetest", "resource": "deployments", "namespace": "default",
         "name": "demo", "start": hour_ago, "end": now, "span_type": "audit"}))
    R.check(st == 200 and well_formed(d) and d["traceID"].startswith("ff20000000"),
            "extension trace: %d" % st)
    R.check(all(any(f["key"] == "audit" for f in l["fields"])
                for s in d["spans"] for l in s["logs"]) and
            sum(len(s["logs"]) for s in d["spans"]) >= 10, "span_type keeps audit logs only")
    st, _, d = get_json(k, "/extensions/api/v1/trace?cluster=tracetest&resource=deployments")
    R.check(st == 400, "extension trace without name: %d" % st)

    # A life straddling a window boundary (00:30): both windows merged, every
    # linked object found exactly once (a regression: duplicates used to eat
    # the follow budget).
    old = tempfile.mktemp(suffix=".jsonl")
    subprocess.check_call([sys.executable, os.path.join(SRC, "examples", "gen_deployment.py"),
                           "--start", "2026-01-01T00:28:00Z", "--name", "edge", "--out", old])
    st, _, _ = k.post_audit(open(old, "rb").read().replace(b"\n", b",").rstrip(b",").join(
        [b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[', b"]}"]), "tracetest")
    k.wait_ingested("tracetest", 132)
    t0 = 1767225600 * 10**6
    st, _, d = get_json(k, "/api/traces?" + urllib.parse.urlencode(
        {"service": "tracing [full tree]", "operation": "tracetest",
         "start": str(t0), "end": str(t0 + 3600 * 10**6),
         "tags": json.dumps({"resource": "deployments", "name": "edge"})}))
    R.check(st == 200 and len(d["data"]) == 1, "edge search")
    tr = d["data"][0]
    names = sorted(s["operationName"].split(" / ")[0] for s in tr["spans"])
    R.check(len(names) == 11 and len(set(names)) == 11 and well_formed(tr),
            "2 windows merged, 1 Deployment + 2 RS + 8 Pods: %s" % names)
    os.unlink(old)

    # Bad input: 4xx with the Jaeger error envelope, never 5xx.
    for path, code in [("/api/traces?service=nope", 400),
                       ("/api/traces?service=tracing&tags=notjson", 400),
                       ("/api/traces?service=tracing&start=abc", 400),
                       ("/api/traces?service=tracing&minDuration=fast", 400),
                       ("/api/traces/1234", 400),
                       ("/api/traces/ff99000000e1e3e70123456789abcdef", 400),
                       ("/api/traces/ff20000000e1e3e70123456789abcdef", 404),
                       ("/redirect?cluster=tracetest&resource=deployments", 400),
                       ("/redirect?cluster=nope&resource=deployments&name=demo", 404),
                       ("/redirect?cluster=tracetest&resource=deployments&name=demo&ts=yesterday", 400)]:
        st, _, d = get_json(k, path)
        R.check(st == code and isinstance(d, dict) and d.get("errors"),
                "%s -> %d (got %d)" % (path, code, st))
    st, _, d = get_json(k, "/api/traces?traceID=ff20000000e1e3e70123456789abcdef")
    R.check(st == 404 and d["errors"][0]["traceID"] == "ff20000000e1e3e70123456789abcdef",
            "multi-get reports the missing id")
    st, hdrs, body = k.get(k.query, "/trace/abc")
    R.check(st == 200 and "text/html" in hdrs.get("Content-Type", ""), "UI route serves index.html")
    st, _, _ = k.get(k.query, "/../../etc/passwd")
    R.check(st in (400, 404), "no path traversal")

# Trace ids survive a restart (the trace cache is persisted in the store).
ddir = tempfile.mkdtemp(prefix="kt-fe-")
with Kelemetry("--audit-default-cluster", "tracetest", data_dir=ddir) as k3:
    k3.post_audit(open(demo, "rb").read().replace(b"\n", b",").rstrip(b",").join(
        [b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[', b"]}"]), "tracetest")
    k3.wait_ingested("tracetest", 66)
    st, hdrs, _ = k3.get(k3.query, "/redirect?" + urllib.parse.urlencode(
        {"cluster": "tracetest", "resource": "deployments", "name": "demo", "ts": now}))
    kept = hdrs.get("Location", "").rsplit("/", 1)[-1]
with Kelemetry("--audit-default-cluster", "tracetest", data_dir=ddir) as k3:
    st, _, d = get_json(k3, "/api/traces/" + kept)
    R.check(st == 200 and d["data"][0]["traceID"] == kept, "trace id valid after restart: %d" % st)

# --ui-assets: another UI build served instead, SPA routes to its index.
ui = tempfile.mkdtemp(prefix="kt-ui-")
os.makedirs(os.path.join(ui, "static", "js"))
with open(os.path.join(ui, "index.html"), "w") as f:
    f.write("<!doctype html><title>other ui</title>")
with open(os.path.join(ui, "static", "js", "main.js"), "w") as f:
    f.write("console.log(1)")
with Kelemetry("--ui-assets", ui) as k4:
    st, hdrs, body = k4.get(k4.query, "/static/js/main.js")
    R.check(st == 200 and "javascript" in hdrs.get("Content-Type", "") and body == b"console.log(1)",
            "--ui-assets serves files")
    st, _, body = k4.get(k4.query, "/trace/ff20000000e1e3e70123456789abcdef")
    R.check(st == 200 and b"other ui" in body, "--ui-assets SPA fallback")
    st, _, _ = k4.get(k4.query, "/static/../../../etc/passwd")
    R.check(st in (400, 404), "--ui-assets refuses traversal: %d" % st)
    st, _, d = get_json(k4, "/api/services")
    R.check(st == 200 and len(d["data"]) == 16, "API still served beside --ui-assets")

# A transform config file replaces the shipped modes.
tf = tempfile.mktemp(suffix=".yaml")
with open(tf, "w") as f:
    f.write('configs:\n  - id: "00000001"\n    name: flat\n    steps:\n'
            '      - {kind: PruneChildlessVisitor}\n      - {kind: PruneTagsVisitor}\n')
with Kelemetry("--jaeger-transform-config-file", tf) as k2:
    st, _, d = get_json(k2, "/api/services")
    R.check(st == 200 and d["data"] == ["flat"], "custom transform config: %s" % d)
with open(tf, "w") as f:
    f.write("configs:\n  - {id: '1', name: x, steps: [{kind: Bogus}]}\n")
p = subprocess.run([BIN, "--jaeger-transform-config-file", tf,
                    "--data-dir", tempfile.mkdtemp(), "--http-port", "0", "--query-port", "0",
                    "--metrics-enable=false"], capture_output=True, timeout=30)
R.check(p.returncode != 0 and "unknown step kind Bogus" in p.stderr.decode(),
        "bad transform config refused: %d %s" % (p.returncode, p.stderr.decode()[-200:]))
os.unlink(tf)
os.unlink(demo)
R.finish()

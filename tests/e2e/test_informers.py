"""The informers against the fake apiserver (TLS, bearer token), as a user
sees them through the query API:
- the kspan recording's 19 Kubernetes Events become logs on the spans of
  the Deployment, ReplicaSets and Pods they are about;
- a Deployment scaled through the apiserver (by the real kubectl when it is
  installed) gets an audit span carrying the watch's diff
  `spec.replicas 2 -> 4` and `informer latency`;
- watches survive expired resourceVersions, dropped connections and an
  apiserver restart: every change is diffed exactly once."""
import copy
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from fake_apiserver import FakeApiserver  # noqa: E402
from ktest import SRC, Kelemetry, Results, slow  # noqa: E402

R = Results()
CLUSTER = "fake"


def wait(pred, timeout=20.0, step=0.1):
    deadline = time.time() + slow(timeout)
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def metric(k, series):
    v = k.metric(series)
    return v if v is not None else 0


def query(k, path):
    st, _, body = k.get(k.query, path)
    return st, json.loads(body) if st == 200 else body


def trace_of(k, resource, name, namespace="default", mode="01000000"):
    """The spans of an object's trace in a display mode (default: tree, full
    tree: every audit and event span kept as a span)."""
    st, hdrs, _ = k.get(k.query, "/redirect?" + urllib.parse.urlencode(
        {"cluster": CLUSTER, "resource": resource, "namespace": namespace, "name": name,
         "ts": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}))
    loc = hdrs.get("Location", "")
    if st != 302:
        return []
    tid = loc.rsplit("/", 1)[-1]
    st, d = query(k, "/api/traces/ff%s%s" % (mode, tid[10:]))
    return d["data"][0]["spans"] if st == 200 and d.get("data") else []


def tags(span):
    return {t["key"]: t["value"] for t in span["tags"]}


def log_values(span):
    return [f["value"] for lg in span.get("logs", []) for f in lg["fields"]]


def start_pair(*flags):
    """A fake apiserver whose audit webhook points at a kelemetry watching it."""
    k = Kelemetry("--audit-default-cluster", CLUSTER, "--kube-target-cluster", CLUSTER,
                  "--storage-retention", "0",
                  "--event-informer-leader-election-retry-period", "200ms",
                  "--diff-controller-leader-election-retry-period", "200ms", *flags)
    srv = FakeApiserver(tls=True, token="s3cret", bookmark_interval=0.5,
                        audit_webhook="http://127.0.0.1:%d/audit/%s" % (k.http, CLUSTER))
    srv.start()
    kc = os.path.join(k.dir, "kubeconfig")
    srv.write_kubeconfig(kc, context="fake")
    k.flags += ["--kube-config", kc]
    k.start()
    return srv, k, kc


def strip(obj):
    """A recorded object as a client would create it."""
    o = copy.deepcopy(obj)
    md = o.setdefault("metadata", {})
    for f in ("resourceVersion", "uid", "selfLink", "managedFields", "creationTimestamp",
              "generation"):
        md.pop(f, None)
    o.pop("status", None)
    return o


# ---- Kubernetes Events of the kspan recording -----------------------------
docs = json.load(open(os.path.join(SRC, "tests", "data", "real", "kspan-deployment-2-pods.json")))
objects = [d["object"] for d in docs if d["object"]["kind"] != "Event"]
events = [d["object"] for d in docs if d["object"]["kind"] == "Event"]
R.check(len(events) == 19 and len(objects) == 7, "recording: 19 Events, 7 objects")

srv, k, kc = start_pair("--event-informer-enable", "--diff-controller-enable")
try:
    R.check(wait(lambda: metric(k, 'is_leader{component="event-informer"}') == 1 and
                 metric(k, 'is_leader{component="diff-controller"}') == 1),
            "both controllers lead (one process)")
    R.check(wait(lambda: srv.watch_count() >= 3), "watches open: %d" % srv.watch_count())
    for o in sorted(objects, key=lambda o: ["Deployment", "ReplicaSet", "Pod"].index(o["kind"])):
        srv.create(strip(o))
    now = datetime.datetime.utcnow().replace(microsecond=0)
    for i, ev in enumerate(events):
        e = strip(ev)
        ts = (now + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        e["firstTimestamp"] = e["lastTimestamp"] = ts
        if e.get("eventTime"):  # events.k8s.io recorders (the scheduler)
            e["eventTime"] = ts.replace("Z", ".000000Z")
            e["firstTimestamp"] = e["lastTimestamp"] = None
        e["metadata"]["name"] = ev["metadata"]["name"]
        srv.create(e)
    R.check(wait(lambda: metric(k, 'event_controller_events_total{cluster="fake",outcome="traced"}')
                 == 19, 30), "19 events traced: %s" %
            metric(k, 'event_controller_events_total{cluster="fake",outcome="traced"}'))
    k.wait_ingested(CLUSTER, 7)
    found = {}
    for ev in events:
        io = ev["involvedObject"]
        res = {"Deployment": "deployments", "ReplicaSet": "replicasets", "Pod": "pods"}[io["kind"]]
        spans = found.get((res, io["name"]))
        if spans is None:
            spans = found[(res, io["name"])] = wait(lambda: trace_of(k, res, io["name"]), 10)
        hits = [s for s in spans if s["operationName"] == ev["reason"]
                and ev["message"] in log_values(s)
                and tags(s).get("source") == (ev["source"].get("component")
                                              or ev.get("reportingComponent", ""))]
        R.check(len(hits) == 1, "event %s %s on %s/%s: %d spans" % (
            ev["reason"], ev["message"][:40], io["kind"], io["name"], len(hits)))
    newest = (now + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cm = wait(lambda: (lambda c: c if c and c["data"].get("timestamp") == newest else None)(
        srv.get("configmaps", "default", "kelemetry-event-controller")), 15)
    R.check(cm and cm["data"].get("lastUpdated"), "checkpoint = newest event time: %s" % cm)
    # A restarted controller does not trace the same Events again.
    k.stop()
    k.flags += []
    k.start()
    R.check(wait(lambda: metric(k, 'is_leader{component="event-informer"}') == 1),
            "leads again after restart")
    time.sleep(slow(2))
    traced = metric(k, 'event_controller_events_total{cluster="fake",outcome="traced"}')
    R.check(traced == 0, "no Event traced twice after a restart: %s" % traced)
finally:
    k.stop()
    srv.stop()
    srv.cleanup()

# ---- a scale shows the watch's diff ----------------------------------------
srv, k, kc = start_pair("--diff-controller-enable")
try:
    R.check(wait(lambda: srv.wait_for_watchers(1, 0.1, resource="deployments")),
            "deployments watched")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}
    kubectl = shutil.which("kubectl")
    if kubectl:
        f = os.path.join(k.dir, "dep.json")
        json.dump(dep, open(f, "w"))
        env = dict(os.environ, KUBECONFIG=kc)
        p = subprocess.run([kubectl, "apply", "--validate=false", "-f", f], env=env,
                           capture_output=True, timeout=30)
        R.check(p.returncode == 0, "kubectl apply: %s" % p.stderr[-300:])
        p = subprocess.run([kubectl, "scale", "deployment", "web", "--replicas=4"], env=env,
                           capture_output=True, timeout=30)
        R.check(p.returncode == 0, "kubectl scale: %s" % p.stderr[-300:])
    else:
        print("kubectl not installed: scaling through the fake apiserver's API")
        srv.create(dep)
        srv.patch("deployments", "default", "web", {"spec": {"replicas": 4}},
                  subresource="scale")

    def scale_span():
        for s in trace_of(k, "deployments", "web"):
            if s["operationName"].endswith(" scale") and "informer latency" in tags(s):
                return s
        return None
    s = wait(scale_span, 20)
    R.check(s is not None, "the scale's audit span has an informer latency")
    if s:
        R.check(any("spec.replicas 2 -> 4" in v for v in log_values(s)),
                "the watch's diff on the scale span: %s" % log_values(s))
        R.check(not any("managedFields" in v for v in log_values(s)), "no managedFields")
    R.check(metric(k, 'diff_decorator_total{verb="patch",outcome="informer"}') >= 1,
            "decorator outcome counted")
    # The user's delete: the Deployment answers with a Status, so the
    # snapshot comes from what the watch last saw.
    if kubectl:
        p = subprocess.run([kubectl, "delete", "deployment", "web", "--wait=false"], env=env,
                           capture_output=True, timeout=30)
        R.check(p.returncode == 0, "kubectl delete: %s" % p.stderr[-300:])
    else:
        srv.delete("deployments", "default", "web")

    def delete_snapshot():
        for s in trace_of(k, "deployments", "web"):
            if s["operationName"].endswith(" delete"):
                for v in log_values(s):
                    try:
                        o = json.loads(v)
                    except ValueError:
                        continue
                    if isinstance(o, dict) and o.get("metadata", {}).get("name") == "web":
                        return o
        return None
    snap = wait(delete_snapshot, 20)
    R.check(snap is not None and snap["spec"]["replicas"] == 4,
            "the delete carries the last state (replicas 4): %s" % (snap or {}).get("spec"))

    # ---- object cache: an event without a body is still linked ------------
    # Objects created behind kelemetry's back (no audit): only a GET can
    # tell the Pod's owner.
    srv._seed("replicasets", "default", {"metadata": {"name": "quiet-rs", "namespace": "default"},
                                         "spec": {"replicas": 1}})
    rs_uid = srv.get("replicasets", "default", "quiet-rs")["metadata"]["uid"]
    srv._seed("pods", "default", {"metadata": {
        "name": "quiet-rs-p1", "namespace": "default", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "quiet-rs", "uid": rs_uid,
            "controller": True}]}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    ts = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    meta_event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                  "auditID": "6c1f0a8e-0000-4000-8000-000000000001", "stage": "ResponseComplete",
                  "requestURI": "/api/v1/namespaces/default/pods/quiet-rs-p1/status",
                  "verb": "patch", "user": {"username": "system:node:n1"},
                  "userAgent": "kubelet/v1.32", "sourceIPs": ["10.0.0.1"],
                  "objectRef": {"resource": "pods", "namespace": "default", "name": "quiet-rs-p1",
                                "apiVersion": "v1", "subresource": "status"},
                  "responseStatus": {"metadata": {}, "code": 200},
                  "requestReceivedTimestamp": ts, "stageTimestamp": ts}
    st, _, _ = k.post_audit(json.dumps(meta_event).encode(), CLUSTER)
    R.check(st == 200, "metadata-level event accepted")
    R.check(wait(lambda: metric(k, 'object_cache_lookups_total{outcome="fetched"}') >= 1, 10),
            "the Pod fetched from the apiserver")
    spans = wait(lambda: [s for s in trace_of(k, "replicasets", "quiet-rs")
                          if s["operationName"].startswith("quiet-rs-p1")], 10)
    R.check(spans, "the Pod is linked under its ReplicaSet without a body in its event")

    # ---- a Secret's values: not in watch diffs or snapshots either ----------
    import base64
    sval = "WATCHED-SECRET-77a1"
    srv.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds",
                "namespace": "default"}, "data": {"pw": base64.b64encode(sval.encode()).decode()}})
    srv.patch("secrets", "default", "creds",
              {"data": {"pw": base64.b64encode((sval + "-longer").encode()).decode()}})

    def secret_patch():
        spans = trace_of(k, "secrets", "creds")
        return [v for s in spans for v in log_values(s) if "data.pw" in v]
    lines = wait(secret_patch, 15)
    R.check(lines and "(redacted" in lines[0] and sval not in lines[0],
            "the Secret's change is shown by length only: %s" % lines)
    found = []
    for name in os.listdir(k.dir):
        with open(os.path.join(k.dir, name), "rb") as f:
            data = f.read()
        for needle in (sval, base64.b64encode(sval.encode()).decode()):
            if needle.encode() in data:
                found.append(name)
    R.check(not found, "no watched Secret value in the data directory: %s" % found)

    # ---- live filter: the ConfigMap's exclude-regex applies at once ---------
    live = 'audit_consumer_event_total{cluster="fake",outcome="excluded_live_regex"}'
    srv.create({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kelemetry-filter-config", "namespace": "default"},
                "data": {"exclude-regex": "^apps/v1/deployments/default/hidden"}})
    wait(lambda: "exclude-regex ^apps" in k.logtext(), 10)
    hidden = dict(dep, metadata={"name": "hidden", "namespace": "default"})
    srv.create(hidden)
    R.check(wait(lambda: metric(k, live) == 1, 10), "live regex drops the matching object")
    srv.patch("configmaps", "default", "kelemetry-filter-config", {"data": {"exclude-regex": "("}})
    R.check(wait(lambda: [e for e in srv.objects("events") if e.get("reason") == "InvalidConfig"
                          and e["involvedObject"]["name"] == "kelemetry-filter-config"], 10),
            "an invalid regex is reported as a Warning Event on the ConfigMap")
    srv.patch("deployments", "default", "hidden", {"spec": {"replicas": 3}})
    k.wait_ingested(CLUSTER, 1)
    time.sleep(1)
    R.check(metric(k, live) == 1, "an invalid regex clears the live filter")

    # ---- watch resilience: every change diffed exactly once ----------------
    cms = ["cm-%d" % i for i in range(5)]
    for name in cms:
        srv.create({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"}, "data": {"v": "0"}})
    base = lambda: metric(k, 'diff_controller_records_total{cluster="fake",kind="patch"}')
    R.check(wait(lambda: metric(k, 'diff_controller_records_total{cluster="fake",kind="creation"}')
                 >= 5), "creations seen")
    wait(lambda: False, 1)
    start = base()
    expected = 0

    def bump(rnd):
        global expected
        for name in cms:
            srv.patch("configmaps", "default", name, {"data": {"v": str(rnd)}})
            expected += 1

    def caught_up(what):
        R.check(wait(lambda: base() - start >= expected, 30), "%s: %d of %d diffed" %
                (what, base() - start, expected))

    bump(1)                                  # plain watch
    caught_up("live watch")
    srv.close_watches("abrupt")              # connection dropped mid-stream
    bump(2)                                  # resumed from the last resourceVersion
    caught_up("after a dropped connection")
    srv.stop(flush_audit=0.5)                # down while things change...
    bump(3)
    srv.compact()                            # ...and its history is gone: Expired
    srv.start()
    caught_up("after expiry (relist)")
    srv.stop(flush_audit=0.5)                # a plain restart: resumed
    bump(4)
    time.sleep(1.0)
    srv.start()
    bump(5)
    R.check(wait(lambda: base() - start >= expected, 30),
            "all %d changes diffed: %d" % (expected, base() - start))
    time.sleep(slow(2))
    R.check(base() - start == expected, "no change diffed twice: %d for %d" %
            (base() - start, expected))
    R.check(metric(k, 'informer_requests_total{cluster="fake",path="/api/v1/configmaps",'
                      'outcome="expired"}') >= 1, "an expiry caused a relist")
finally:
    k.stop()
    srv.stop()
    srv.cleanup()

# ---- events.k8s.io/v1 where that is all there is --------------------------
srv, k, kc = start_pair("--event-informer-enable")
try:
    srv.remove_resource("", "v1", "events")
    k.stop()
    k.start()  # discovery is read when the controller starts
    R.check(wait(lambda: "watching /apis/events.k8s.io/v1/events" in k.logtext(), 10),
            "the event controller falls back to events.k8s.io/v1")
    srv.create({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "newev", "namespace": "default"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}},
                                      "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    ts = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    srv.create({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "newev.1", "namespace": "default"},
                "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "newev",
                              "namespace": "default"},
                "reason": "ScalingReplicaSet", "note": "Scaled up replica set newev-1 to 1",
                "type": "Normal", "eventTime": ts, "action": "Scale",
                "reportingController": "deployment-controller",
                "reportingInstance": "kcm-1"})
    k.wait_ingested(CLUSTER, 1)
    spans = wait(lambda: [s for s in trace_of(k, "deployments", "newev")
                          if s["operationName"] == "ScalingReplicaSet"], 15)
    R.check(spans and "Scaled up replica set newev-1 to 1" in log_values(spans[0])
            and tags(spans[0]).get("action") == "Scale"
            and tags(spans[0]).get("source") == "deployment-controller",
            "an events.k8s.io/v1 Event on its object: %s" % (spans and tags(spans[0])))
finally:
    k.stop()
    srv.stop()
    srv.cleanup()

# ---- several clusters: objects of another cluster fetched with its client --
other = FakeApiserver(tls=True, token="other-token").start()
k = Kelemetry("--storage-retention", "0")
try:
    kc2 = other.write_kubeconfig(os.path.join(k.dir, "other.yaml"), context="other")
    k.flags += ["--kube-config-paths", "other=" + kc2, "--kube-target-cluster", "fake"]
    k.start()
    other._seed("replicasets", "default", {"metadata": {"name": "far-rs", "namespace": "default"},
                                           "spec": {"replicas": 1}})
    other._seed("pods", "default", {"metadata": {
        "name": "far-rs-p1", "namespace": "default", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "far-rs",
            "uid": other.get("replicasets", "default", "far-rs")["metadata"]["uid"],
            "controller": True}]}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    ev = dict(meta_event, auditID="6c1f0a8e-0000-4000-8000-000000000002",
              objectRef=dict(meta_event["objectRef"], name="far-rs-p1"),
              requestURI="/api/v1/namespaces/default/pods/far-rs-p1/status")
    st, _, _ = k.post_audit(json.dumps(ev).encode(), "other")
    R.check(st == 200, "event of the other cluster accepted")
    R.check(wait(lambda: metric(k, 'object_cache_lookups_total{outcome="fetched"}') >= 1, 10),
            "fetched from the other cluster's apiserver")
    R.check(any(r[1] == "/api/v1/namespaces/default/pods/far-rs-p1" for r in other.requests),
            "with the other cluster's client")
    CLUSTER = "other"
    R.check(wait(lambda: [s for s in trace_of(k, "replicasets", "far-rs")
                          if s["operationName"].startswith("far-rs-p1")], 10),
            "linked under its ReplicaSet in the other cluster")
finally:
    k.stop()
    other.stop()
    other.cleanup()

R.finish()

"""Kelemetrix end to end: kelemetry with --kelemetrix-enable and the
shipped examples/kelemetrix.toml receives the demo scenario plus events
made to hit each example metric; /metrics must then hold exactly the series
and values a model of §3.3 computes from the same events (errors by user,
cache penetrations, list timeouts with a --kube-request-timeout, watch
errors, the baseline histogram over every ResponseComplete event, also
those the audit filter drops). A bad config file makes kelemetry exit 2
naming the file and line."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, SRC, Kelemetry, Results, demo_events, event_list  # noqa: E402

R = Results()
CONFIG = os.path.join(SRC, "examples", "kelemetrix.toml")
CLUSTER = "kx"


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(verb, uri, code, latency_s, user="mallory", resource="secrets",
          group="", reason=None, stage="ResponseComplete", ago_s=5, **extra):
    """A Metadata-level audit event that ended ago_s seconds ago."""
    end = datetime.now(timezone.utc) - timedelta(seconds=ago_s)
    ev = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
          "auditID": str(uuid.uuid4()), "stage": stage, "requestURI": uri,
          "verb": verb, "user": {"username": user}, "sourceIPs": ["10.1.2.3"],
          "userAgent": "e2e/1.0",
          "objectRef": {"resource": resource, "namespace": "default",
                        "name": "x1", "apiGroup": group, "apiVersion": "v1"},
          "requestReceivedTimestamp": stamp(end - timedelta(seconds=latency_s)),
          "stageTimestamp": stamp(end)}
    if code:
        ev["responseStatus"] = {"metadata": {}, "code": code}
        if reason:
            ev["responseStatus"]["reason"] = reason
    ev.update(extra)
    return ev


def handmade():
    evs = [
        # errors_by_user: 4xx/5xx, one with its RequestReceived stage too
        event("get", "/api/v1/namespaces/default/secrets/x1", 0, 0,
              stage="RequestReceived"),
        event("get", "/api/v1/namespaces/default/secrets/x1", 403, 0.01,
              reason="Forbidden"),
        event("get", "/api/v1/namespaces/default/configmaps/x1", 404, 0.01,
              resource="configmaps", reason="NotFound"),
        event("list", "/api/v1/pods", 500, 0.2, user="bob", resource="pods",
              reason="InternalError"),
        event("patch", "/api/v1/nodes/worker-1/status", 429, 0.01,
              user="system:node:worker-1", resource="nodes",
              reason="TooManyRequests"),
        # cache_penetrations: lists and gets without resourceVersion
        event("list", "/api/v1/pods", 200, 0.3, user="carol", resource="pods"),
        event("list", "/api/v1/pods?labelSelector=app%3Ddemo", 200, 0.3,
              user="carol", resource="pods"),
        event("get", "/api/v1/namespaces/default/pods/p?resourceVersion=0",
              200, 0.01, user="carol", resource="pods"),
        # list_timeout: past timeoutSeconds, and past the cluster's
        # --kube-request-timeout kx=30s when there is none
        event("list", "/apis/apps/v1/deployments?resourceVersion=0&"
              "timeoutSeconds=1", 200, 3, user="dave", resource="deployments",
              group="apps"),
        event("list", "/apis/apps/v1/replicasets?resourceVersion=0", 200, 45,
              user="dave", resource="replicasets", group="apps"),
        # watch_error: a watch that ended 600 times sooner than its timeout,
        # and a healthy one
        event("watch", "/api/v1/pods?watch=true&resourceVersion=9&"
              "timeoutSeconds=300", 200, 0.5, user="erin", resource="pods"),
        event("watch", "/api/v1/pods?watch=true&resourceVersion=9&"
              "timeoutSeconds=300", 200, 290, user="erin", resource="pods"),
        # dropped by the audit filter (leases), seen by kelemetrix anyway
        event("update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/"
              "leases/kube-scheduler", 200, 0.005, user="system:kube-scheduler",
              resource="leases", group="coordination.k8s.io",
              userAgent="kube-scheduler/v1.32.2/leader-election"),
    ]
    # an impersonated request is counted for the impersonated user
    evs.append(event("delete", "/api/v1/namespaces/default/secrets/x1", 403,
                     0.01, user="admin", reason="Forbidden",
                     impersonatedUser={"username": "system:node:worker-2"}))
    return evs


# ---- the model of §3.3, for the events above ----

def parse_ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def tags(ev):
    user = ev["user"]["username"]
    if isinstance(ev.get("impersonatedUser"), dict):
        user = ev["impersonatedUser"].get("username", "")
    if user.startswith("system:node:"):
        user = "system:node"
    rs = ev.get("responseStatus")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(ev.get("requestURI", "")).query,
                              keep_blank_values=True)
    ref = ev.get("objectRef") or {}
    rv = q.get("resourceVersion")
    return {
        "cluster": CLUSTER, "username": user, "verb": ev["verb"],
        "code": str(rs.get("code", 0)) if isinstance(rs, dict) else "",
        "errorReason": rs.get("reason", "") if isinstance(rs, dict) else "",
        "resourceVersion": "Empty" if rv is None else "Zero" if rv[0] == "0"
        else "NonZero",
        "hasSelector": "true" if "labelSelector" in q or "fieldSelector" in q
        else "false",
        "group": ref.get("apiGroup", ""), "resource": ref.get("resource", ""),
    }


def ratio(ev):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(ev.get("requestURI", "")).query)
    timeout = float(q["timeoutSeconds"][0]) if "timeoutSeconds" in q else 30.0
    lat = (parse_ts(ev["stageTimestamp"]) -
           parse_ts(ev["requestReceivedTimestamp"])).total_seconds()
    return timeout / lat


def series(name, labels, t):
    return "%s{%s}" % (name, ",".join('%s="%s"' % (l, t[l]) for l in labels))


def model(events):
    """Expected {series: value} of each example metric (counters and summary
    _count/_sum), and the baseline count."""
    want = {"errors_by_user_count": {}, "cache_penetrations_count": {},
            "list_timeout_summary": {}, "watch_error_summary": {}}
    complete = 0
    for ev in events:
        if ev["stage"] != "ResponseComplete":
            continue
        complete += 1
        t = tags(ev)
        if re.search("[45]..", t["code"]):
            s = series("errors_by_user_count", ["username", "cluster", "group",
                       "resource", "verb", "code", "errorReason"], t)
            want["errors_by_user_count"][s] = want["errors_by_user_count"].get(s, 0) + 1
        if t["code"] == "200" and t["resourceVersion"] == "Empty" and \
                t["verb"] in ("list", "get"):
            s = series("cache_penetrations_count", ["username", "cluster",
                       "group", "resource", "verb", "hasSelector"], t)
            want["cache_penetrations_count"][s] = \
                want["cache_penetrations_count"].get(s, 0) + 1
        r = ratio(ev)
        if t["code"] == "200" and t["verb"] == "list" and r < 1:
            s = series("list_timeout_summary", ["username", "cluster", "group",
                       "resource", "hasSelector"], t)
            want["list_timeout_summary"].setdefault(s, []).append(r)
        if t["code"] == "200" and t["verb"] == "watch" and r > 100:
            s = series("watch_error_summary", ["username", "cluster", "group",
                       "resource"], t)
            want["watch_error_summary"].setdefault(s, []).append(r)
    return want, complete


def scrape(k):
    _, _, text = k.get(k.metrics, "/metrics")
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def check_metrics(k, events):
    want, complete = model(events)
    R.check(len(want["errors_by_user_count"]) >= 5 and
            len(want["cache_penetrations_count"]) >= 3 and
            len(want["list_timeout_summary"]) == 2 and
            len(want["watch_error_summary"]) == 1, "the events hit every metric")
    key = 'baseline_histogram_count{cluster="%s"}' % CLUSTER
    deadline = time.time() + 30
    while time.time() < deadline and k.metric(key) < complete:
        time.sleep(0.1)
    got = scrape(k)
    R.check(got.get(key) == complete,
            "baseline_histogram_count = %d ResponseComplete events: %s"
            % (complete, got.get(key)))
    inf = 'baseline_histogram_bucket{cluster="%s",le="+Inf"}' % CLUSTER
    R.check(got.get(inf) == complete, "+Inf bucket holds every event")
    for name in ("errors_by_user_count", "cache_penetrations_count"):
        have = {s: v for s, v in got.items() if s.startswith(name + "{")}
        R.check(have == want[name], "%s:\n got  %s\n want %s"
                % (name, sorted(have.items()), sorted(want[name].items())))
    for name in ("list_timeout_summary", "watch_error_summary"):
        have = {s for s in got if s.startswith(name + "_count{")}
        R.check(have == {s.replace(name + "{", name + "_count{")
                         for s in want[name]},
                "%s series: %s vs %s" % (name, have, list(want[name])))
        for s, ratios in want[name].items():
            cnt = got.get(s.replace(name + "{", name + "_count{"))
            tot = got.get(s.replace(name + "{", name + "_sum{"))
            med = got.get(s[:-1] + ',quantile="0.5"}')
            R.check(cnt == len(ratios) and tot is not None and
                    abs(tot - sum(ratios)) < 1e-3 * sum(ratios) and
                    med is not None and min(ratios) <= med <= max(ratios),
                    "%s: count %s sum %s median %s, want %s" % (s, cnt, tot, med,
                                                                ratios))
    R.check(got.get('kelemetrix_errors_total{reason="uri_parse"}') == 0,
            "no URI parse errors")
    # the lease update was dropped by the audit filter, yet counted above
    R.check(k.metric('audit_consumer_event_total{cluster="%s",outcome="traced"}'
                     % CLUSTER) < complete, "the filter dropped some events")


def main_scenario():
    events = demo_events() + handmade()
    with Kelemetry("--kelemetrix-enable", "--kelemetrix-config-path", CONFIG,
                   "--kube-request-timeout", "other=5m,%s=30s" % CLUSTER,
                   "--log-level", "debug", "--kelemetrix-debug-log-tags",
                   "--kelemetrix-debug-log-quantities") as k:
        st, _, body = k.post_audit(event_list(events), CLUSTER)
        R.check(st == 200, "events posted: %d %s" % (st, body[:200]))
        check_metrics(k, events)
        log = k.logtext()
        R.check("tag.username=" in log and "quantity.request_count=1" in log,
                "debug log of tags and quantities: %s" % log[-500:])


def run_bad(path, *extra):
    d = tempfile.mkdtemp(prefix="kt-e2e-kx-")
    p = subprocess.run([BIN, "--data-dir", d, "--http-port", "0",
                        "--kelemetrix-enable", "--kelemetrix-config-path", path]
                       + list(extra), capture_output=True, timeout=20)
    return p.returncode, p.stderr.decode()


def bad_configs():
    with open(CONFIG) as f:
        lines = f.read().split("\n")
    d = tempfile.mkdtemp(prefix="kt-e2e-kx-")
    cases = []
    n = next(i for i, l in enumerate(lines) if l.startswith("tags = ") and i > 20)
    cases.append((n + 1, lines[:n] + [lines[n].replace("tags", "tagz", 1)]
                  + lines[n + 1:], 'unknown key "tagz" in [[metrics]]'))
    n = next(i for i, l in enumerate(lines) if 'operator = "<"' in l)
    cases.append((n + 1, lines[:n] + ['    operator = "=<"'] + lines[n + 1:],
                  'unknown operator "=<"'))
    n = next(i for i, l in enumerate(lines) if 'name = "watch_error"' in l)
    cases.append((n + 1, lines[:n] + ['name = "baseline"'] + lines[n + 1:],
                  'duplicate metric name "baseline"'))
    cases.append((len(lines) + 1, lines + ["[[metrics]", ""],
                  "expected ]] to close the table header"))
    for line, text, what in cases:
        path = os.path.join(d, "kelemetrix.toml")
        with open(path, "w") as f:
            f.write("\n".join(text))
        rc, err = run_bad(path)
        want = "%s:%d: %s" % (path, line, what)
        R.check(rc == 2 and want in err and err.count("\n") == 1,
                "exit 2 with %r: %d %r" % (want, rc, err))
    rc, err = run_bad(os.path.join(d, "missing.toml"))
    R.check(rc == 2 and "cannot open" in err, "missing file: %d %r" % (rc, err))
    path = os.path.join(d, "kelemetrix.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    rc, err = run_bad(path, "--kube-request-timeout", "kx=soon")
    R.check(rc == 2 and "--kube-request-timeout" in err,
            "bad --kube-request-timeout: %d %r" % (rc, err))
    # disabled: the file is not read and no kelemetrix metric is served
    with Kelemetry("--kelemetrix-config-path", os.path.join(d, "missing.toml")) as k:
        R.check("baseline_histogram" not in k.get(k.metrics, "/metrics")[2].decode(),
                "no kelemetrix metrics when disabled")


main_scenario()
bad_configs()
R.finish()

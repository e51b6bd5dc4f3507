"""/metrics of an all-in-one under load, read as Prometheus reads it: the
text format parses strictly (HELP/TYPE before samples, valid names and
labels, cumulative histogram buckets ending in +Inf = _count), the §3.2
inventory names are there, and the counters move while load flows."""
import math
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import Kelemetry, Results, demo_events, event_list  # noqa: E402

R = Results()
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse(text):
    """{family: {"type": t, "samples": [(name, labels dict, value)]}}; raises
    ValueError on anything Prometheus would refuse."""
    fams, current = {}, None
    for n, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not NAME.match(parts[2]):
                raise ValueError("line %d: %s" % (n, line))
            f = fams.setdefault(parts[2], {"type": None, "samples": []})
            if parts[1] == "TYPE":
                if parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise ValueError("line %d: type %s" % (n, parts[3]))
                f["type"] = parts[3]
            current = parts[2]
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError("line %d: not a sample: %s" % (n, line))
        name, labels, value = m.group(1), {}, m.group(4)
        body = m.group(3) or ""
        pos = 0
        while pos < len(body):
            lm = LABEL.match(body, pos)
            if not lm:
                raise ValueError("line %d: labels: %s" % (n, body))
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        v = float(value)  # ValueError if not a number (NaN/+Inf are fine)
        fam = current if current and name.startswith(current) else name
        if fam not in fams or fams[fam]["type"] is None:
            raise ValueError("line %d: sample before its TYPE: %s" % (n, line))
        fams[fam]["samples"].append((name, labels, v))
    return fams


def check_histograms(fams):
    for fam, f in fams.items():
        if f["type"] != "histogram":
            continue
        series = {}
        for name, labels, v in f["samples"]:
            key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None})
            if name.endswith("_bucket"):
                le = labels["le"]
                series[key]["buckets"].append((math.inf if le == "+Inf" else float(le), v))
            elif name.endswith("_count"):
                series[key]["count"] = v
        for key, s in series.items():
            b = s["buckets"]
            if not b or b[-1][0] != math.inf or b[-1][1] != s["count"]:
                raise ValueError("%s%s: +Inf bucket != _count" % (fam, key))
            if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                raise ValueError("%s%s: buckets not cumulative" % (fam, key))


def value(fams, fam, sample, **labels):
    for name, l, v in fams.get(fam, {"samples": []})["samples"]:
        if name == sample and all(l.get(k) == x for k, x in labels.items()):
            return v
    return None


with Kelemetry("--storage-retention", "0") as k:
    events = demo_events()
    stop = threading.Event()

    def load():
        # Until the scrapes are done (bounded): 200 requests used to last
        # over two seconds, now they are over before the first scrape.
        i = 0
        while not stop.is_set() and i < 20000:
            batch = [dict(e, auditID="%s-%d" % (e["auditID"][:24], i)) for e in events]
            k.post_audit(event_list(batch), "load")
            i += 1
    t = threading.Thread(target=load)
    t.start()
    scrapes = []
    try:
        for _ in range(3):
            time.sleep(0.7)
            st, _, body = k.get(k.metrics, "/metrics")
            R.check(st == 200, "scrape answered")
            try:
                fams = parse(body.decode())
                check_histograms(fams)
                scrapes.append(fams)
            except ValueError as e:
                R.check(False, "exposition format: %s" % e)
    finally:
        stop.set()
        t.join()
    R.check(len(scrapes) == 3, "three clean scrapes")
    if len(scrapes) == 3:
        first, last = scrapes[0], scrapes[-1]
        for fam, sample, labels in [
                ("audit_webhook_request_count", "audit_webhook_request_count", {"cluster": "load"}),
                ("audit_webhook_request_histogram", "audit_webhook_request_histogram_count",
                 {"cluster": "load"}),
                ("aggregator_send_count", "aggregator_send_count",
                 {"cluster": "load", "traceSource": "audit", "success": "true"}),
                ("audit_consumer_event_total", "audit_consumer_event_total",
                 {"cluster": "load", "outcome": "traced"}),
                ("store_spans_written_total", "store_spans_written_total", {}),
                ("http_requests_total", "http_requests_total", {"server": "webhook"})]:
            a, b = value(first, fam, sample, **labels), value(last, fam, sample, **labels)
            R.check(a is not None and b is not None and b > a,
                    "%s%s moves under load: %s -> %s" % (sample, labels, a, b))
        for fam in ("audit_consumer_e2e_latency_summary", "audit_queue_depth",
                    "audit_queue_limit", "audit_rejected_total", "diff_decorator_total",
                    "aggregator_send_histogram"):
            R.check(fam in last, "%s exported" % fam)
        R.check(last["audit_queue_depth"]["type"] == "gauge" and
                last["audit_webhook_request_histogram"]["type"] == "histogram",
                "types declared")
R.finish()

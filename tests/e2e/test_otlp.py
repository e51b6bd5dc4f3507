"""OTLP export against tests/lib/otlp_receiver.py, a receiver that decodes
every request itself and refuses what breaks the OTLP protocol:

1. replay of the demo scenario with export beside the store: every stored
   span is exported exactly once with the same trace/span/parent ids, name,
   times, tags (as string attributes) and logs (as events named by the
   message, with zzz-logType); service names are the span types;
2. the collector answers 503 + Retry-After to the first requests: retried
   after the delay it asked for, nothing lost, retries counted; a 500 is
   not retried and its spans are counted as rejected; a partial_success
   answer's rejected spans are counted;
3. the collector is down while load arrives: the bounded buffer overflows,
   spans are dropped and counted, memory stays bounded, nothing crashes,
   and export resumes when the collector is back; every span is accounted
   for (exported + dropped = produced);
4. --tracer-otel-only with the JSON encoding: nothing is stored, all is
   exported, the webhook and its inbox work as before."""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, SRC, Kelemetry, Results, demo_events, event_list  # noqa: E402
from otlp_receiver import OtlpReceiver  # noqa: E402

R = Results()
work = tempfile.mkdtemp(prefix="kt-otlp-")
DEMO = os.path.join(SRC, "examples", "demo-deployment.jsonl")
DROP_REASONS = ("buffer_full", "rejected", "partial_success", "retries_exhausted",
                "shutdown", "encode")


def read_store(path):
    """(trace hex, span hex) -> the stored span, from the SQLite file."""
    db = sqlite3.connect(path)
    out = {}
    for t, s, p, svc, op, st, en, body in db.execute(
            "SELECT trace_id, span_id, parent_id, service, operation, start_us, "
            "end_us, body FROM spans"):
        tags, logs = decode_body(body)
        out[(t.hex(), "%016x" % (s & (2**64 - 1)))] = {
            "parent": "%016x" % (p & (2**64 - 1)) if p else "", "service": svc,
            "name": op, "start": st * 1000, "end": en * 1000, "tags": tags, "logs": logs}
    db.close()
    return out


def decode_body(b):
    """The store's span body: tags, then logs (raw or zstd, see
    src/store/kt_store_sqlite.c)."""
    pos = 0

    def varint():
        nonlocal pos
        v = shift = 0
        while True:
            c = b[pos]
            pos += 1
            v |= (c & 0x7F) << shift
            if c < 0x80:
                return v
            shift += 7

    def string():
        nonlocal pos
        n = varint()
        pos += n
        return bytes(b[pos - n:pos]).decode()

    tags = {}
    for _ in range(varint()):
        k = string()
        tags[k] = string()  # a later duplicate wins, as in the export
    kind = b[pos]
    pos += 1
    if kind == 1:  # zstd
        varint()
        raw = subprocess.run(["zstd", "-d", "-c", "-q"], input=bytes(b[pos:]),
                             capture_output=True, check=True).stdout
        b, pos = raw, 0
    logs = []
    for _ in range(varint()):
        varint()
        logs.append((string(), string()))
    return tags, logs


def check_same(stored, exported, what):
    ids = [(s["trace_id"], s["span_id"]) for s in exported]
    R.check(len(ids) == len(set(ids)), "%s: each span exported once (%d, %d distinct)"
            % (what, len(ids), len(set(ids))))
    R.check(set(ids) == set(stored), "%s: exported ids = stored ids (%d missing, %d extra)"
            % (what, len(set(stored) - set(ids)), len(set(ids) - set(stored))))
    bad = []
    for s in exported:
        st = stored.get((s["trace_id"], s["span_id"]))
        if not st:
            continue
        events = [(e["attributes"].get("zzz-logType"), e["name"]) for e in s["events"]]
        same = (s["parent_span_id"] == st["parent"] and s["service"] == st["service"]
                and s["name"] == st["name"] and s["start"] == st["start"]
                and s["end"] == st["end"] and s["attributes"] == st["tags"]
                and events == st["logs"] and s["kind"] == 1
                and all(e["time"] == s["start"] for e in s["events"]))
        if not same:
            bad.append((s, st))
    R.check(not bad, "%s: exported spans equal the stored ones: %s" % (what, bad[:1]))


def drops(k):
    return {r: k.metric('otlp_export_dropped_total{reason="%s"}' % r) for r in DROP_REASONS}


def wait_metric(k, series, value, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if k.metric(series) >= value:
            return True
        time.sleep(0.1)
    return False


def settled(k, total, timeout=30):
    """Until every one of `total` spans is exported or dropped."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if k.metric("otlp_export_spans_total") + sum(drops(k).values()) >= total:
            return True
        time.sleep(0.1)
    return False


# 1. replay with export beside the store ---------------------------------------
rx = OtlpReceiver().start()
data = os.path.join(work, "replay")
p = subprocess.run([BIN, "replay", "--data-dir", data, "--storage-retention", "0",
                    "--progress=false", "--tracer-otel-endpoint", rx.url,
                    "--tracer-otel-resource-attributes",
                    "service.version=dev,deployment.environment=e2e", DEMO],
                   capture_output=True, timeout=120)
R.check(p.returncode == 0, "replay with export exits 0: %s" % p.stderr.decode()[-800:])
stored = read_store(os.path.join(data, "kelemetry.db"))
spans = rx.snapshot()
R.check(len(stored) > 50, "the demo stores spans: %d" % len(stored))
check_same(stored, spans, "replay")
services = Counter(s["service"] for s in spans)
R.check(set(services) == {"audit", "object", "link"} and services["audit"] == 66,
        "service names are the span types: %s" % services)
R.check(all(s["resource"] == {"service.name": s["service"], "service.version": "dev",
                              "deployment.environment": "e2e"} and s["scope"] == "kelemetry"
            for s in spans), "resource attributes and scope")
types = Counter(e["attributes"]["zzz-logType"] for s in spans for e in s["events"])
R.check(types["audit/objectSnapshot"] > 0 and types["audit/objectDiff"] > 0,
        "logs became events with zzz-logType: %s" % types)
R.check(all(not s["parent_span_id"] for s in spans if s["service"] == "object") and
        all(s["parent_span_id"] for s in spans if s["service"] != "object"),
        "object spans are the roots, the others have parents")
R.check("%d spans exported, 0 dropped" % len(spans) in p.stderr.decode(),
        "the shutdown line accounts for every span")
rx.check()
rx.stop()

# 2. 503 with Retry-After, then a 500 ---------------------------------------------
rx = OtlpReceiver().start()
rx.fail_next(3, 503, retry_after=1)
with Kelemetry("--tracer-otel-endpoint", rx.url, "--tracer-otel-batch-delay", "50ms",
               "--tracer-otel-retry-initial-interval", "50ms") as k:
    events = demo_events()
    R.check(k.post_audit(event_list(events), "demo")[0] == 200, "post the demo")
    k.wait_ingested("demo", 66)
    n = k.metric("store_spans_written_total")
    R.check(rx.wait_spans(n, 20), "all %d stored spans exported after 503s (%d)"
            % (n, len(rx.snapshot())))
    R.check(k.metric("otlp_export_retries_total") == 3, "3 retries counted: %s"
            % k.metric("otlp_export_retries_total"))
    R.check(k.metric('otlp_export_failures_total{reason="http_503"}') == 3, "3 failures")
    R.check(sum(drops(k).values()) == 0, "nothing dropped: %s" % drops(k))
    times = [t for t, _ in rx.answers]
    gaps = [b - a for a, b in zip(times, times[1:4])]
    R.check(len(gaps) == 3 and min(gaps) >= 0.9, "Retry-After: 1 honoured: %s" % gaps)
    R.check(k.metric("otlp_export_spans_total") == n, "otlp_export_spans_total = %d" % n)
    # a 500 is not retried: its spans are counted as rejected
    rx.fail_next(1, 500)
    more = json.loads(json.dumps(events[:5]).replace("demo", "other"))
    for i, e in enumerate(more):
        e["auditID"] = "500-%d" % i
    R.check(k.post_audit(event_list(more), "c500")[0] == 200, "post more")
    R.check(wait_metric(k, 'otlp_export_failures_total{reason="http_500"}', 1), "500 seen")
    k.wait_ingested("c500", 1)
    total = k.metric("store_spans_written_total")
    R.check(settled(k, total), "500: every span exported or dropped: %s" % drops(k))
    rejected = k.metric('otlp_export_dropped_total{reason="rejected"}')
    R.check(rejected > 0 and k.metric("otlp_export_retries_total") == 3 and
            len(rx.snapshot()) == total - rejected,
            "500: not retried, its spans counted as rejected: %s" % drops(k))
    # partial_success: the spans the collector says it rejected are counted
    rx.partial_next(2)
    for e in more:
        e["auditID"] = e["auditID"].replace("500", "partial")
    R.check(k.post_audit(event_list(more), "cpart")[0] == 200, "post more")
    k.wait_ingested("cpart", 1)
    R.check(settled(k, k.metric("store_spans_written_total")) and
            k.metric('otlp_export_dropped_total{reason="partial_success"}') == 2,
            "partial_success.rejected_spans counted: %s" % drops(k))
rx.check()
rx.stop()

# 3. collector down: overflow, bounded memory, recovery ------------------------
load = os.path.join(work, "load.jsonl")
subprocess.check_call([sys.executable, os.path.join(SRC, "bench", "gen_load.py"),
                       "--objects", "300", "--events", "3000", "--batch", "100",
                       "--out", load])
batches = open(load, "rb").read().splitlines()
rx = OtlpReceiver().start()
port = rx.port
rx.stop()  # down from the start
with Kelemetry("--tracer-otel-endpoint", rx.url, "--tracer-otel-buffer-spans", "200",
               "--tracer-otel-buffer-bytes", "300Ki",
               "--tracer-otel-batch-spans", "50", "--tracer-otel-batch-delay", "50ms",
               "--tracer-otel-retry-initial-interval", "100ms",
               "--tracer-otel-retry-max-interval", "500ms") as k:
    rss, held = [], []
    for b in batches:
        R.check(k.request(k.http, "POST", "/audit/load", b,
                          {"Content-Type": "application/json"})[0] == 200, "post load")
        held.append(k.metric("otlp_export_buffer_bytes"))
        with open("/proc/%d/status" % k.proc.pid) as f:
            rss += [int(l.split()[1]) for l in f if l.startswith("VmRSS:")]
    k.wait_ingested("load", 3000, timeout=120)
    produced = k.metric("store_spans_written_total")
    d = drops(k)
    R.check(d["buffer_full"] > 0, "the buffer overflowed and counted it: %s" % d)
    R.check(k.metric("otlp_export_buffer_spans") <= 200, "buffer depth within its bound")
    R.check(k.metric('otlp_export_failures_total{reason="connection"}') > 0,
            "connection failures counted")
    R.check(0 < max(held) <= 300 * 1024, "buffered bytes within their bound: %d"
            % max(held))
    # ~40 MB measured; AddressSanitizer's shadow memory and quarantine
    # multiply it (as in test_webhook.py)
    # ASan and valgrind (KT_BIN_WRAP) bring their own heaps and shadows
    asan = b"libasan" in subprocess.run(["ldd", BIN], capture_output=True).stdout
    tool = asan or bool(os.environ.get("KT_BIN_WRAP"))
    R.check(max(rss) < (1200 if tool else 200) * 1024,
            "RSS bounded while the collector is down: %d KiB" % max(rss))
    rx = OtlpReceiver(port).start()  # back on the same port
    R.check(wait_metric(k, "otlp_export_spans_total", 1, 20), "export resumes")
    R.check(settled(k, produced), "the backlog drains")
    exported = k.metric("otlp_export_spans_total")
    R.check(exported + sum(drops(k).values()) == produced,
            "every span exported or dropped: %d + %s = %d" % (exported, drops(k), produced))
    R.check(len(rx.snapshot()) == exported, "the receiver got what was counted")
    # new load after recovery is exported in full
    after = [json.loads(b) for b in batches[:3]]
    for i, b in enumerate(after):
        for j, e in enumerate(b["items"]):
            e["auditID"] = "after-%d-%d" % (i, j)
        R.check(k.post_audit(b, "after")[0] == 200, "post after recovery")
    k.wait_ingested("after", 300)
    before = sum(drops(k).values())
    R.check(settled(k, k.metric("store_spans_written_total")) and
            sum(drops(k).values()) == before, "everything after the recovery is exported")
    got = Counter(s["attributes"].get("cluster") for s in rx.snapshot())
    R.check(got["after"] >= 300, "spans of the new load at the receiver: %d" % got["after"])
rx.check()
rx.stop()

# 4. export only (JSON) --------------------------------------------------------------
rx = OtlpReceiver().start()
with Kelemetry("--tracer-otel-endpoint", rx.url, "--tracer-otel-only",
               "--tracer-otel-encoding", "json", "--tracer-otel-batch-delay", "50ms",
               "--tracer-otel-headers", "authorization=Bearer t0k,x-scope-orgid=e2e") as k:
    R.check(k.post_audit(event_list(demo_events()), "demo")[0] == 200, "post the demo")
    k.wait_ingested("demo", 66)
    R.check(rx.wait_spans(len(stored), 20), "export-only: the demo's %d spans exported (%d)"
            % (len(stored), len(rx.snapshot())))
    R.check(k.metric("store_spans_written_total") == 0, "export-only stores no span")
    st, _, body = k.get(k.query, "/api/services")
    R.check(st == 200, "the query API still answers: %d" % st)
    R.check(all(h.get("authorization") == "Bearer t0k" and h.get("x-scope-orgid") == "e2e"
                and h.get("content-type") == "application/json" for h in rx.headers),
            "configured headers sent: %s" % rx.headers[:1])
    data = k.dir
    spans = rx.snapshot()
ids = [(s["trace_id"], s["span_id"]) for s in spans]
R.check(len(ids) == len(set(ids)), "export-only: each span once")
R.check(Counter(s["service"] for s in spans) == Counter(v["service"] for v in stored.values()),
        "export-only: the same spans by type as the stored replay")
rx.check()
rx.stop()

# bad flags: a clear usage error
for args, want in ((["--tracer-otel-only"], "--tracer-otel-only needs"),
                   (["--tracer-otel-encoding", "xml"], "protobuf or json"),
                   (["--tracer-otel-endpoint", "ftp://x/"], "--tracer-otel-endpoint")):
    p = subprocess.run([BIN, "--data-dir", os.path.join(work, "bad")] + args +
                       ["--metrics-port", "0", "--http-port", "0", "--query-port", "0"],
                       capture_output=True, timeout=30)
    R.check(p.returncode != 0 and want in p.stderr.decode(),
            "%s refused: %d %s" % (args, p.returncode, p.stderr.decode()[-300:]))

R.finish()

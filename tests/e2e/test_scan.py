"""`kelemetry scan` against a running all-in-one: the webhook advice when
nothing was received, the counters once audit events flow, refusals with
their reasons, and the exit status an operator scripts on. Then the roles
and engines of distributed mode: a frontend is judged as a frontend; real
processes driven into a full Redis queue, a stopped Redis, a stopped
PostgreSQL and an unreachable OTLP collector; and, from fixture metrics, the
conditions too slow to provoke (a growing queue, an idle consumer, dead
letters, cache outages, OTLP buffer overflow and rejections)."""
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, Kelemetry, Results, demo_events, event_list, free_port  # noqa: E402

R = Results()


def scan(*urls):
    p = subprocess.run([BIN, "scan"] + list(urls), capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode()


with Kelemetry() as k:
    url = "http://127.0.0.1:%d/metrics" % k.metrics
    rc, out = scan(url)
    R.check(rc == 1 and "Received 0 webhook requests" in out
            and "--audit-webhook-config-file" in out, "advice when nothing arrives: %s" % out)

    st, _, _ = k.post_audit(event_list(demo_events()), "scan")
    R.check(st == 200, "demo posted")
    k.post_audit(b"{broken", "scan")
    k.wait_ingested("scan", 66)
    rc, out = scan(url)
    R.check("Received 2 webhook requests" in out, "request count: %s" % out)
    R.check("Consumed 73 audit events, 66 with an audit span" in out, "consumed: %s" % out)
    R.check("Refused 1 events: bad_json=1" in out and "invalid audit events" in out,
            "refusals explained: %s" % out)
    R.check(rc == 1, "attention needed because of the refusal: %d" % rc)
    spans = [l for l in out.splitlines() if "Stored" in l]
    R.check(spans and int(spans[0].split()[1]) > 66, "spans stored: %s" % spans)

with Kelemetry() as k:
    k.post_audit(event_list(demo_events()[:10]), "ok")
    k.wait_ingested("ok", 1)
    rc, out = scan("http://127.0.0.1:%d/metrics" % k.metrics)
    R.check(rc == 0 and "[!]" not in out, "healthy instance: %d %s" % (rc, out))

# Instances found through the Kubernetes API by the chart's labels.
from fake_apiserver import FakeApiserver  # noqa: E402
srv = FakeApiserver(tls=True, token="t").start()
with Kelemetry() as k:
    kc = srv.write_kubeconfig(os.path.join(k.dir, "kubeconfig"))
    srv._seed("pods", "kelemetry", {"metadata": {
        "name": "kelemetry-0", "namespace": "kelemetry",
        "labels": {"app.kubernetes.io/name": "kelemetry", "app.kubernetes.io/instance": "rel"}},
        "spec": {"containers": [{"name": "kelemetry", "image": "kelemetry",
                                 "ports": [{"name": "webhook", "containerPort": k.http},
                                           {"name": "metrics", "containerPort": k.metrics}]}]},
        "status": {"podIP": "127.0.0.1", "conditions": [
            {"type": "Ready", "status": "False", "message": "containers not ready"}]}})
    srv._seed("pods", "kelemetry", {"metadata": {
        "name": "other", "namespace": "kelemetry", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "x", "image": "x"}]}})
    p = subprocess.run([BIN, "scan", "--kube-config", kc, "--namespace", "kelemetry",
                        "--release", "rel"], capture_output=True, timeout=30)
    out = p.stdout.decode()
    R.check("Found 1 kelemetry pods" in out and "kelemetry-0: Ready False: containers not ready"
            in out, "pods found by label, failing conditions shown: %s" % out)
    R.check(p.returncode == 1 and "Received 0 webhook requests" in out,
            "their metrics scanned: %d %s" % (p.returncode, out))
    p = subprocess.run([BIN, "scan", "--kube-config", kc, "--namespace", "nowhere"],
                       capture_output=True, timeout=30)
    R.check(p.returncode == 2 and "Found 0 kelemetry pods" in p.stdout.decode(),
            "no pods: exit 2: %s" % p.stdout.decode())
    p = subprocess.run([BIN, "scan", "--bogus"], capture_output=True, timeout=30)
    R.check(p.returncode == 2 and "usage" in p.stdout.decode(), "bad usage: exit 2")
srv.stop()
srv.cleanup()

rc, out = scan("http://127.0.0.1:1/metrics")
R.check(rc == 2 and "cannot connect" in out, "unreachable: %d %s" % (rc, out))

# ---------------------------------------------------------------- roles
# A frontend has no webhook: it must not be told that the webhook receives
# nothing, and a healthy one exits 0.
with Kelemetry("--audit-webhook-enable=false", "--audit-consumer-enable=false") as k:
    rc, out = scan("http://127.0.0.1:%d/metrics" % k.metrics)
    R.check(rc == 0 and "Runs: span-store, jaeger-query" in out and "webhook" not in out
            and "Consumed" not in out, "frontend judged as a frontend: %d %s" % (rc, out))


def wait_metric(k, series, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = k.metric(series)
        if v > 0:
            return v
        time.sleep(0.2)
    return 0


import engines  # noqa: E402
# ---------------------------------------------------------- Redis queue
# A webhook on --mq=redis with a tiny stream bound and no consumer: queue_full;
# then Redis stopped: unavailable.
if shutil.which("redis-server"):
    redis = engines.Redis().start()
    try:
        with Kelemetry("--mq=redis", "--mq-redis-address=" + redis.addr,
                       "--mq-redis-partitions=1", "--mq-redis-max-len=20",
                       "--audit-consumer-enable=false", "--jaeger-query-enable=false") as k:
            url = "http://127.0.0.1:%d/metrics" % k.metrics
            codes = [k.post_audit(event_list(demo_events()[:15]), "q")[0] for _ in range(3)]
            R.check(codes[0] == 200 and 503 in codes, "the bounded stream refuses: %s" % codes)
            rc, out = scan(url)
            R.check(rc == 1 and "Runs: audit-webhook\n" in out and
                    "Redis queue refused requests: queue_full=" in out and
                    "--mq-redis-max-len" in out and "add consumers" in out,
                    "queue_full advice: %d %s" % (rc, out))
            R.check("Consumed" not in out and "Stored" not in out,
                    "a webhook alone is not asked about consuming or storing: %s" % out)
            redis.stop()
            st = k.post_audit(event_list(demo_events()[:1]), "q")[0]
            rc, out = scan(url)
            R.check(st == 503 and rc == 1 and "unavailable=1" in out and
                    "Redis is unreachable from the webhook" in out,
                    "Redis down advice: %d %d %s" % (st, rc, out))
    finally:
        redis.stop()
else:
    print("SKIP: no redis-server: Redis queue advice not driven")

# ------------------------------------------------------------ PostgreSQL
if os.path.exists(os.path.join(engines.PGBIN, "postgres")):
    pg = engines.Postgres().start()
    try:
        with Kelemetry("--storage-backend=postgres", "--storage-postgres-dsn=" + pg.dsn,
                       "--shutdown-timeout=5s") as k:
            pg.stop()
            # the webhook answers once the batch is stored: it waits for the server
            poster = threading.Thread(target=k.post_audit,
                                      args=(event_list(demo_events()), "pg"), daemon=True)
            poster.start()
            n = wait_metric(k, 'store_errors_total{backend="postgres",op="write"}') or \
                wait_metric(k, 'store_errors_total{backend="postgres",op="connect"}', 5)
            rc, out = scan("http://127.0.0.1:%d/metrics" % k.metrics)
            R.check(n > 0 and rc == 1 and "PostgreSQL errors:" in out and
                    "searches answer 503" in out, "PostgreSQL down advice: %d %s" % (rc, out))
            pg.start()      # the writes drain, then a clean shutdown
            poster.join(30)
            k.wait_ingested("pg", 1, timeout=30)
    finally:
        pg.stop()
else:
    print("SKIP: no PostgreSQL: store advice not driven")

# ---------------------------------------------------------- OTLP export
closed = free_port()
with Kelemetry("--tracer-otel-endpoint=http://127.0.0.1:%d/v1/traces" % closed,
               "--tracer-otel-batch-delay=100ms", "--tracer-otel-retry-max-elapsed=1s",
               "--tracer-otel-retry-initial-interval=100ms", "--shutdown-timeout=3s") as k:
    k.post_audit(event_list(demo_events()[:10]), "otlp")
    wait_metric(k, 'otlp_export_dropped_total{reason="retries_exhausted"}')
    rc, out = scan("http://127.0.0.1:%d/metrics" % k.metrics)
    R.check(rc == 1 and "OTLP dropped spans: retries_exhausted=" in out and
            "collector is down or unreachable" in out, "OTLP drop advice: %d %s" % (rc, out))

# ------------------------------------------------ fixtures (slow to provoke)
# Served by a tiny HTTP server: a consumer whose Redis lag grows between two
# scrapes, owns no partition, dead-lettered entries; shared-cache outages;
# a buffer overflow and rejections of the OTLP exporter.
COMP = "".join('kelemetry_component{component="%s"} %d\n' % (c, c in on) for on in [(
    "audit-webhook", "audit-producer", "audit-queue", "audit-consumer", "diff-decorator",
    "aggregator", "span-cache", "diff-cache", "span-store", "otlp-exporter")] for c in (
    "audit-webhook", "audit-producer", "audit-queue", "audit-consumer", "event-informer",
    "diff-controller", "diff-decorator", "aggregator", "span-cache", "diff-cache",
    "span-store", "otlp-exporter", "jaeger-query", "trace-cache"))
HEAD = ("# TYPE kelemetry_component gauge\n" + COMP +
        'http_requests_total{server="webhook",method="POST",code="200"} 40\n'
        "# TYPE audit_mq_refused_total counter\naudit_mq_produced_total 900\n"
        "# TYPE audit_mq_partitions_owned gauge\n")


class Fixture(http.server.BaseHTTPRequestHandler):
    pages = []

    def do_GET(self):  # noqa: N802
        body = (Fixture.pages.pop(0) if len(Fixture.pages) > 1 else Fixture.pages[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fixture)
threading.Thread(target=srv.serve_forever, daemon=True).start()
furl = "http://127.0.0.1:%d/metrics" % srv.server_address[1]


def fixture(*pages, lag_wait="200"):
    Fixture.pages = list(pages)
    p = subprocess.run([BIN, "scan", "--lag-wait", lag_wait, furl], capture_output=True,
                       timeout=30)
    return p.returncode, p.stdout.decode()


healthy = HEAD + ("audit_mq_partitions_owned 4\n"
                  'audit_mq_lag{partition="0"} 3\n' 'audit_mq_lag{partition="1"} 0\n'
                  'audit_consumer_event_total{cluster="c",outcome="traced"} 800\n'
                  "store_spans_written_total 1600\n"
                  "# TYPE otlp_export_dropped_total counter\notlp_export_spans_total 1600\n")
rc, out = fixture(healthy, healthy)
R.check(rc == 0 and "Reads 4 Redis partitions, 3 entries waiting\n" in out and
        "Exported 1600 spans over OTLP" in out and "[!]" not in out,
        "busy but steady consumer is healthy: %d %s" % (rc, out))
rc, out = fixture(healthy, healthy.replace('partition="0"} 3', 'partition="0"} 90'))
R.check(rc == 1 and "90 entries waiting (growing)" in out and "the Redis queue grows" in out,
        "growing lag advice: %d %s" % (rc, out))
rc, out = fixture(healthy, lag_wait="0")
R.check(rc == 0 and "(growing)" not in out, "--lag-wait 0 reads once: %s" % out)
idle = healthy.replace("audit_mq_partitions_owned 4", "audit_mq_partitions_owned 0") + \
    "audit_mq_dead_letter_total 3\n" 'audit_mq_redis_errors_total{op="lease"} 7\n'
rc, out = fixture(idle, idle)
R.check(rc == 1 and "reads no partition" in out and "Dead-lettered 3 entries" in out and
        "XRANGE kelemetry:audit:dead" in out and "Redis errors of the consumer: lease=7" in out,
        "idle consumer, dead letters, lease errors: %d %s" % (rc, out))
kv = healthy + ('kv_outages_total{backend="etcd"} 2\n' 'kv_errors_total{backend="etcd",op="get"} 31\n')
rc, out = fixture(kv, kv)
R.check(rc == 1 and "Shared cache outages: etcd=2, failed calls: etcd=31" in out and
        "shared cache engine" in out, "cache engine down advice: %d %s" % (rc, out))
ot = healthy + ('otlp_export_dropped_total{reason="buffer_full"} 500\n'
                'otlp_export_dropped_total{reason="rejected"} 12\n'
                'otlp_export_failures_total{reason="http_400"} 1\n')
rc, out = fixture(ot, ot)
R.check(rc == 1 and "buffer_full=500 rejected=12" in out and "--tracer-otel-buffer-spans" in out
        and "rejected spans" in out and "collector is down" not in out,
        "OTLP buffer and rejection advice: %d %s" % (rc, out))
srv.shutdown()
R.finish()

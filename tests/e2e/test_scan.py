"""`kelemetry scan` against a running all-in-one: the webhook advice when
nothing was received, the counters once audit events flow, refusals with
their reasons, and the exit status an operator scripts on."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, Kelemetry, Results, demo_events, event_list  # noqa: E402

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
R.finish()

"""Who may talk to kelemetry: the webhook over TLS with client certificates
(how the apiserver's webhook kubeconfig authenticates) and bearer tokens;
the query API and UI behind basic credentials or tokens. Certificates are
made by openssl in the test."""
import base64
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, Kelemetry, Results, demo_events, event_list  # noqa: E402

R = Results()
d = tempfile.mkdtemp(prefix="kt-tls-")


def sh(*args):
    subprocess.run(args, cwd=d, check=True, capture_output=True)


def make_ca(name):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-subj", "/CN=%s" % name, "-keyout", name + ".key", "-out", name + ".crt")


def make_cert(name, ca, server):
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % name,
       "-keyout", name + ".key", "-out", name + ".csr")
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n" if server else "extendedKeyUsage=clientAuth\n")
    sh("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey",
       ca + ".key", "-CAcreateserial", "-days", "2", "-out", name + ".crt", "-extfile", ext)


make_ca("ca")
make_ca("other-ca")
make_cert("server", "ca", True)
make_cert("apiserver", "ca", False)
make_cert("intruder", "other-ca", False)
with open(os.path.join(d, "tokens"), "w") as f:
    f.write("# webhook tokens\ns3cret-token\n")
with open(os.path.join(d, "users"), "w") as f:
    f.write("alice:wonderland\n")
p = lambda n: os.path.join(d, n)  # noqa: E731
body = json.dumps(event_list(demo_events()[:5])).encode()


def post(k, cert=None, token=None):
    ctx = ssl.create_default_context(cafile=p("ca.crt"))
    if cert:
        ctx.load_cert_chain(p(cert + ".crt"), p(cert + ".key"))
    req = urllib.request.Request("https://127.0.0.1:%d/audit/tls" % k.http, data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (ssl.SSLError, ConnectionError, urllib.error.URLError):
        return "tls-refused"


with Kelemetry("--http-tls-cert", p("server.crt"), "--http-tls-key", p("server.key"),
               "--http-tls-client-ca", p("ca.crt"), "--audit-webhook-token-file", p("tokens"),
               "--query-basic-auth-file", p("users"), "--query-token-file", p("tokens")) as k:
    R.check(post(k, "apiserver", "s3cret-token") == 200, "apiserver cert + token accepted")
    R.check(post(k, None, "s3cret-token") in (403, "tls-refused"), "no client cert refused")
    R.check(post(k, "intruder", "s3cret-token") in (403, "tls-refused"), "cert of another CA refused")
    R.check(post(k, "apiserver", "wrong") == 401, "wrong token refused")
    R.check(post(k, "apiserver", None) == 401, "missing token refused")
    R.check(k.metric('http_denied_total{server="webhook",reason="credentials"}') == 2,
            "refusals counted")
    # plain HTTP to the TLS port gets nowhere
    try:
        st, _, _ = k.request(k.http, "POST", "/audit/tls", body)
    except Exception:
        st = "refused"
    R.check(st != 200, "plain HTTP on the TLS port: %s" % st)

    st, hdrs, _ = k.get(k.query, "/api/services")
    R.check(st == 401 and hdrs.get("WWW-Authenticate", "").startswith("Basic"),
            "query API asks browsers for credentials")
    good = "Basic " + base64.b64encode(b"alice:wonderland").decode()
    bad = "Basic " + base64.b64encode(b"alice:rabbit").decode()
    st, _, _ = k.request(k.query, "GET", "/api/services", headers={"Authorization": good})
    R.check(st == 200, "basic credentials accepted")
    st, _, _ = k.request(k.query, "GET", "/", headers={"Authorization": bad})
    R.check(st == 401, "wrong password refused")
    st, _, _ = k.request(k.query, "GET", "/api/services",
                         headers={"Authorization": "Bearer s3cret-token"})
    R.check(st == 200, "token accepted by the query API")
    st, _, _ = k.get(k.metrics, "/metrics")
    R.check(st == 200, "metrics stay open to the scraper")

# A Secret's values never reach the disk: not in spans, not in the
# write-ahead inbox (even for the moment before a body is processed).
SECRET = "SUPERSECRET-0c9f31"
b64 = base64.b64encode(SECRET.encode()).decode()
secret_obj = {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
              "metadata": {"name": "db", "namespace": "default", "resourceVersion": "7",
                           "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                           '{"stringData":{"p":"%s"}}' % SECRET}},
              "data": {"password": b64}, "stringData": {"p": SECRET}}
ev = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
      "auditID": "5ec2e7a0-0000-4000-8000-000000000001", "stage": "ResponseComplete",
      "requestURI": "/api/v1/namespaces/default/secrets", "verb": "create",
      "user": {"username": "alice"}, "sourceIPs": ["10.0.0.1"], "userAgent": "kubectl",
      "objectRef": {"resource": "secrets", "namespace": "default", "name": "db",
                    "apiVersion": "v1"},
      "responseStatus": {"metadata": {}, "code": 201},
      "requestObject": secret_obj, "responseObject": secret_obj,
      "requestReceivedTimestamp": "2026-01-01T00:00:00.000000Z",
      "stageTimestamp": "2026-01-01T00:00:00.100000Z"}
sd = tempfile.mkdtemp(prefix="kt-secret-")


def leaks():
    found = []
    for name in os.listdir(sd):
        with open(os.path.join(sd, name), "rb") as f:
            data = f.read()
        if SECRET.encode() in data or b64.encode() in data:
            found.append(name)
    return found


# (uncompressed inbox: a compressed one would hide the values from this scan)
k = Kelemetry("--storage-retention", "0", "--audit-inbox-compress=false", data_dir=sd).start()
st, _, _ = k.post_audit({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                         "metadata": {}, "items": [ev]}, "sec")
k.proc.kill()  # right after the 200: the body sits in the write-ahead inbox
k.proc.wait()
k.log.close()
R.check(st == 200, "secret event accepted")
R.check(not leaks(), "no Secret value on disk while the event waits in the inbox: %s" % leaks())
with Kelemetry("--storage-retention", "0", data_dir=sd) as k:
    # stored by the first process before the kill, or recovered from the
    # inbox by this one
    deadline = time.time() + 30
    while time.time() < deadline:
        db = sqlite3.connect(os.path.join(sd, "kelemetry.db"))
        try:
            n = db.execute("SELECT count(*) FROM spans WHERE service = 'audit' "
                           "AND cluster = 'sec'").fetchone()[0]
        except sqlite3.Error:
            n = 0
        db.close()
        if n:
            break
        time.sleep(0.1)
    R.check(n == 1, "the secret's event stored once: %d" % n)
R.check(not leaks(), "nor once it is processed: %s" % leaks())
subprocess.run(["rm", "-rf", sd])

# A bad credentials file stops the start with one line.
with open(p("users-bad"), "w") as f:
    f.write("nocolon\n")
proc = subprocess.run([BIN, "--data-dir", d,
                       "--query-basic-auth-file", p("users-bad")], capture_output=True, timeout=30)
R.check(proc.returncode != 0 and "expected user:password" in proc.stderr.decode(),
        "bad credentials file: %s" % proc.stderr.decode()[-200:])
subprocess.run(["rm", "-rf", d])
R.finish()

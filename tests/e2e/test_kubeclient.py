"""The Kubernetes client's configuration paths, through `kelemetry
kube-check` against the fake apiserver over TLS: bearer token, tokenFile,
client certificates as data and as files (paths relative to the
kubeconfig), CA as data and file, insecure-skip-tls-verify, an exec
credential plugin, context selection; and the one-line reasons when it
cannot work."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from fake_apiserver import FakeApiserver  # noqa: E402
from ktest import BIN, Results  # noqa: E402

R = Results()
work = tempfile.mkdtemp(prefix="kt-kube-")


def check(kc, *extra):
    p = subprocess.run([BIN, "kube-check", "--kube-config", kc] + list(extra),
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode() + p.stderr.decode()


tok = FakeApiserver(tls=True, token="s3cret").start()
certs = FakeApiserver(tls=True, client_cert_auth=True).start()
try:
    kc = tok.write_kubeconfig(os.path.join(work, "token.yaml"))
    rc, out = check(kc)
    R.check(rc == 0 and "apiserver https://127.0.0.1" in out and "events: core/v1" in out
            and "leases: coordination.k8s.io/v1" in out, "token + CA data: %s" % out)
    R.check(any(r[0] == "GET" and r[1] == "/version" for r in tok.requests), "asked /version")

    kc = tok.write_kubeconfig(os.path.join(work, "tokfile.yaml"),
                              token_file=os.path.join(work, "token"), embed=False)
    rc, out = check(kc)
    R.check(rc == 0, "tokenFile + CA file relative to the kubeconfig: %s" % out)

    kc = tok.write_kubeconfig(os.path.join(work, "bad.yaml"), token="wrong")
    rc, out = check(kc)
    R.check(rc == 1 and "credentials refused" in out and out.count("\n") == 1,
            "a refused token: one line: %s" % out)

    kc = certs.write_kubeconfig(os.path.join(work, "cert.yaml"), client_cert=True, token="")
    rc, out = check(kc)
    R.check(rc == 0, "client certificate as data: %s" % out)
    kc = certs.write_kubeconfig(os.path.join(work, "certfile.yaml"), client_cert=True,
                                token="", embed=False)
    rc, out = check(kc)
    R.check(rc == 0, "client certificate as files: %s" % out)
    kc = certs.write_kubeconfig(os.path.join(work, "nocert.yaml"), token="")
    rc, out = check(kc)
    R.check(rc == 1, "no client certificate: refused: %s" % out)

    kc = tok.write_kubeconfig(os.path.join(work, "insecure.yaml"), insecure=True)
    rc, out = check(kc)
    R.check(rc == 0, "insecure-skip-tls-verify: %s" % out)
    # No CA at all: the server's self-signed certificate is not trusted.
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
           "clusters": [{"name": "x", "cluster": {"server": tok.url}}],
           "users": [{"name": "x", "user": {"token": "s3cret"}}],
           "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}
    kc = os.path.join(work, "noca.json")  # JSON is YAML too
    json.dump(doc, open(kc, "w"))
    rc, out = check(kc)
    R.check(rc == 1 and "kube-check:" in out, "untrusted server certificate: %s" % out)

    # An exec credential plugin, run as client-go runs it.
    plugin = os.path.join(work, "plugin.sh")
    with open(plugin, "w") as f:
        f.write('#!/bin/sh\n'
                'case "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) exit 3;; esac\n'
                'echo "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",'
                '\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"$PLUGIN_TOKEN\\"}}"\n')
    os.chmod(plugin, 0o755)
    for name, token, want in (("good", "s3cret", 0), ("badtoken", "nope", 1)):
        d = json.loads(json.dumps(doc))
        d["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
        d["users"][0]["user"] = {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": plugin,
            "args": ["--cluster", "x"], "env": [{"name": "PLUGIN_TOKEN", "value": token}],
            "interactiveMode": "Never"}}
        kc = os.path.join(work, "exec-%s.json" % name)
        json.dump(d, open(kc, "w"))
        rc, out = check(kc)
        R.check(rc == want, "exec plugin (%s): %s" % (name, out))
    d["users"][0]["user"]["exec"]["command"] = os.path.join(work, "missing-plugin")
    json.dump(d, open(kc, "w"))
    rc, out = check(kc)
    R.check(rc == 1 and "exec plugin" in out, "a missing plugin is named: %s" % out)

    # Several contexts in one file: --kube-context picks one.
    multi = os.path.join(work, "multi.yaml")
    tok.write_kubeconfig(multi, context="good")
    tok.write_kubeconfig(multi, context="wrong", token="bad", merge=True, current=False)
    R.check(check(multi)[0] == 0, "current-context used by default")
    rc, out = check(multi, "--kube-context", "wrong")
    R.check(rc == 1 and "credentials refused" in out, "--kube-context selects: %s" % out)
    rc, out = check(multi, "--kube-context", "absent")
    R.check(rc == 1 and "no context absent" in out, "unknown context named: %s" % out)
    rc, out = check(os.path.join(work, "nope.yaml"))
    R.check(rc == 1 and "nope.yaml" in out, "missing kubeconfig named: %s" % out)
    # A malformed list of clusters stops the start with the flag named.
    for flag, bad in (("--kube-config-paths", "nameonly"), ("--kube-apiservers", "x=")):
        p = subprocess.run([BIN, flag, bad, "--data-dir", os.path.join(work, "d"),
                            "--http-port", "0", "--query-port", "0", "--metrics-port", "0",
                            "--http-address", "127.0.0.1", "--query-address", "127.0.0.1",
                            "--metrics-address", "127.0.0.1"], capture_output=True, timeout=30)
        R.check(p.returncode != 0 and flag in p.stderr.decode(),
                "%s %s refused: %d %s" % (flag, bad, p.returncode, p.stderr.decode()[-200:]))
finally:
    tok.stop()
    certs.stop()
    tok.cleanup()
    certs.cleanup()

R.finish()

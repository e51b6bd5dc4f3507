"""Helpers for the end-to-end tests: start the built kelemetry on free
loopback ports with a fresh data directory, talk HTTP to it, stop it."""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

# KT_BIN_WRAP: the binary under a wrapper (scripts/valgrind.sh), which
# ctest's own KT_BIN would override.
BIN = os.environ.get("KT_BIN_WRAP") or os.environ.get("KT_BIN", "build/kelemetry")
# KT_VG_LOGS: where that wrapper has valgrind write one report per process
# (<pid>.log, empty when clean); a process's own report fails its stop().
VG_LOGS = os.environ.get("KT_VG_LOGS")
# KT_TEST_SCALE: how many times slower than a plain build the binary runs
# (about 10 under valgrind). Waits and timeouts grow by it (slow()); the
# heavy tests shrink their event counts and rounds by it (scaled()), never
# below what their assertions need.
SCALE = max(1.0, float(os.environ.get("KT_TEST_SCALE") or 1))


def slow(seconds):
    """A timeout or pause of `seconds` in a plain build, stretched by SCALE."""
    return seconds * SCALE


def scaled(n, least):
    """A count of `n` work items in a plain build, cut by SCALE to no less
    than `least`."""
    return max(least, int(n / SCALE))


def vg_report(pid):
    """The valgrind report of process pid ("" when clean or not wrapped)."""
    if not VG_LOGS or not pid:
        return ""
    try:
        with open(os.path.join(VG_LOGS, "%d.log" % pid), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Tests look at 302s themselves."""

    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(_NoRedirect)
SRC = os.environ.get("KT_SRC", ".")


_PICK = random.SystemRandom()  # tests seed the module's own generator


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A free loopback port below the kernel's ephemeral range. A port from
    that range, once released here, can become any outgoing connection's
    source port before kelemetry binds it; under valgrind, whose start is
    slow, that happened."""
    low = _ephemeral_low()
    for _ in range(200):
        port = _PICK.randrange(10000, max(low, 10001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kelemetry:
    """A kelemetry process; use as a context manager."""

    def __init__(self, *flags, data_dir=None, preexec=None):
        self.dir = data_dir or tempfile.mkdtemp(prefix="kt-e2e-")
        self.own_dir = data_dir is None
        self.http, self.query, self.metrics = free_port(), free_port(), free_port()
        self.flags = list(flags)
        self.preexec = preexec  # runs in the child before exec (limits)
        self.proc = None
        self.log = None

    def start(self):
        # A port free when picked can be taken by another test's process
        # before this one binds it (slow starts under valgrind, tests in
        # parallel): that port is picked again and the start retried, a
        # bounded number of times. (A test that already handed the port to
        # someone else, e.g. a fake apiserver's webhook URL, fails as before.)
        for _ in range(3):
            try:
                return self._start()
            except RuntimeError as e:
                m = re.search(r"cannot listen on [0-9.]+:([0-9]+): port in use", str(e))
                if not m:
                    raise
                self.log.close()
                taken = int(m.group(1))
                self.http, self.query, self.metrics = [
                    free_port() if p == taken else p
                    for p in (self.http, self.query, self.metrics)]
        return self._start()

    def _start(self):
        args = [BIN, "--data-dir", self.dir, "--http-address", "127.0.0.1",
                "--http-port", str(self.http), "--query-address", "127.0.0.1",
                "--query-port", str(self.query), "--metrics-address", "127.0.0.1",
                "--metrics-port", str(self.metrics)] + self.flags
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     preexec_fn=self.preexec)
        deadline = time.time() + slow(20)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kelemetry exited: " + self.logtext())
            try:
                self.get(self.metrics, "/metrics")
                return self
            except OSError:
                time.sleep(0.05)
            except Exception:  # noqa: BLE001 - e.g. a TLS-only port
                return self
        raise RuntimeError("kelemetry did not start: " + self.logtext())

    def logtext(self):
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.proc.wait(timeout=slow(30))
        else:
            rc = self.proc.returncode if self.proc else 0
        if self.log:
            self.log.close()
        text = self.logtext() if self.proc else ""
        vg = vg_report(self.proc.pid) if self.proc else ""
        if "Sanitizer" in text or "runtime error:" in text or rc == 99 or vg:
            raise RuntimeError("sanitizer or valgrind report: %s%s" % (text, vg))
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        if rc != 0 and exc[0] is None:
            raise RuntimeError("kelemetry exited %d (sanitizer report or "
                               "unclean shutdown): %s" % (rc, self.logtext()))
        if self.own_dir and exc[0] is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, port, method, path, body=None, headers=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                     data=body, method=method,
                                     headers=headers or {})
        try:
            with OPENER.open(req, timeout=slow(30)) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get(self, port, path):
        return self.request(port, "GET", path)

    def post_audit(self, body, cluster=None):
        path = "/audit" + ("/" + cluster if cluster else "")
        if not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
        return self.request(self.http, "POST", path, body,
                            {"Content-Type": "application/json"})

    def wait_ingested(self, cluster, traced, timeout=30):
        """Until `traced` events of cluster are spans and the store has
        stopped writing (spans are committed asynchronously)."""
        deadline = time.time() + slow(timeout)
        key = 'audit_consumer_event_total{cluster="%s",outcome="traced"}' % cluster
        last, stable = -1, 0
        while time.time() < deadline:
            done = self.metric(key) >= traced
            written = self.metric("store_spans_written_total")
            stable = stable + 1 if done and written == last else 0
            if stable >= 3:
                return
            last = written
            time.sleep(0.1)
        raise RuntimeError("ingest did not settle: " + self.logtext())

    def metric(self, series):
        """Value of one exact series line of /metrics, or 0."""
        _, _, text = self.get(self.metrics, "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0


def decode_tags(blob):
    """The store's span body: varint count, (len, key, len, value)*."""
    pos = 0

    def varint():
        nonlocal pos
        v = shift = 0
        while True:
            c = blob[pos]
            pos += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return v

    def string():
        nonlocal pos
        n = varint()
        s = blob[pos:pos + n].decode()
        pos += n
        return s
    return dict((string(), string()) for _ in range(varint()))


def demo_events():
    with open(os.path.join(SRC, "examples", "demo-deployment.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]


def event_list(items):
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
            "metadata": {}, "items": items}


class Results:
    """Counts checks and prints the plain closing line."""

    def __init__(self):
        self.passed = self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, flush=True)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        raise SystemExit(1 if self.failed else 0)

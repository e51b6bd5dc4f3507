"""Faults of the store and of the senders' clocks, and what kelemetry does:
- a truncated or read-only database at start: a clear error, exit non-zero;
- the disk filling up while running: the webhook answers 503 (the
  apiserver retries), refusals are counted, nothing acknowledged is lost:
  after a restart with room again every acknowledged event is stored;
- events stamped far in the future or before 2000 (a sender's clock gone
  wrong): refused as clock_skew and counted; old but plausible ones (a
  replayed 2021 log) are kept.
A restart in the middle of a window is covered by tests/unit/test_pipeline.c."""
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, SRC, Kelemetry, Results, demo_events, event_list  # noqa: E402

R = Results()
demo = os.path.join(SRC, "examples", "demo-deployment.jsonl")


def start_fails(data_dir, user=None):
    cmd = [BIN, "--data-dir", data_dir, "--http-port", "0", "--query-port", "0",
           "--metrics-port", "0", "--http-address", "127.0.0.1",
           "--query-address", "127.0.0.1", "--metrics-address", "127.0.0.1"]
    if user:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + cmd
    p = subprocess.run(cmd, capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode()


# ---- a truncated database ----------------------------------------------------
tmp = tempfile.mkdtemp(prefix="kt-faults-")
os.chmod(tmp, 0o755)
db_dir = os.path.join(tmp, "trunc")
subprocess.run([BIN, "replay", "--data-dir", db_dir, "--progress=false", demo],
               capture_output=True, timeout=60, check=True)
size = os.path.getsize(os.path.join(db_dir, "kelemetry.db"))
os.truncate(os.path.join(db_dir, "kelemetry.db"), size // 3)
rc, err = start_fails(db_dir)
R.check(rc != 0 and "not a usable kelemetry database" in err,
        "truncated database refused at start: %d %s" % (rc, err[-300:]))

# ---- a read-only database (as an unprivileged user: root ignores modes) -------
if os.geteuid() == 0 and shutil.which("setpriv"):
    ro = os.path.join(tmp, "ro")
    subprocess.run([BIN, "replay", "--data-dir", ro, "--progress=false", demo],
                   capture_output=True, timeout=60, check=True)
    os.chmod(os.path.join(ro, "kelemetry.db"), 0o444)
    os.chmod(ro, 0o555)
    # the binary and its directories must be reachable by nobody
    rc, err = start_fails(ro, user="nobody")
    R.check(rc != 0 and ("not a usable kelemetry database" in err or "readonly" in err),
            "read-only database refused at start: %d %s" % (rc, err[-300:]))
else:
    print("skipped: read-only store (needs root and setpriv)")

# ---- the disk fills up while running --------------------------------------------
LIMIT = 12 << 20  # bytes any file may reach: the span store grows into it


def small_disk():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


events = demo_events()
acked = []
k = Kelemetry("--storage-retention", "0", preexec=small_disk)
k.start()
refused = None
for i in range(2000):
    batch = []
    for j, e in enumerate(events):
        e = dict(e, auditID="%s-%d" % (e["auditID"][:24], i))
        batch.append(e)
    st, hdrs, body = k.post_audit(event_list(batch), "full")
    if st == 200:
        acked.append(i)
    elif st == 503:
        refused = (st, hdrs, body)
        break
    else:
        R.check(False, "unexpected answer %d %s" % (st, body[:200]))
        break
R.check(refused is not None and b"store" in refused[2] and refused[1].get("Retry-After"),
        "a full disk: 503 with Retry-After: %s" % (refused and refused[2][:200]))
R.check((k.metric('audit_rejected_total{reason="store_error"}') or 0) >= 1,
        "the refusal is counted by reason")
R.check(len(acked) > 0, "some batches were acknowledged first: %d" % len(acked))
try:
    rc = k.proc.wait(timeout=15)
except subprocess.TimeoutExpired:
    rc = None
R.check(rc == 1 and "the store cannot write any more" in k.logtext(),
        "kelemetry stops with a non-zero status and says why: %s" % rc)
print("acked %d batches before the disk was full" % len(acked))
if k.proc.poll() is None:
    k.proc.kill()
    k.proc.wait()
k.log.close()
k2 = Kelemetry("--storage-retention", "0", data_dir=k.dir)
k2.start()
# each acknowledged batch has the demo's 66 traced events; what the first
# process had not stored yet is recovered from the inbox by the second


def stored_spans():
    db = sqlite3.connect(os.path.join(k2.dir, "kelemetry.db"))
    try:
        return db.execute("SELECT count(*) FROM spans WHERE service = 'audit' "
                          "AND cluster = 'full'").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        db.close()


deadline = time.time() + 60
while stored_spans() < 66 * len(acked) and time.time() < deadline:
    time.sleep(0.2)
time.sleep(1)
stored = stored_spans()
k2.stop()
R.check(stored >= 66 * len(acked) and stored % 66 == 0,
        "every acknowledged batch stored after the restart: %d spans for %d batches" %
        (stored, len(acked)))

# ---- clock skew ------------------------------------------------------------------
with Kelemetry("--storage-retention", "0") as k:
    now = time.time()
    def ev(aid, t):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t))
        e = dict(events[0], auditID=aid, requestReceivedTimestamp=stamp, stageTimestamp=stamp)
        return e
    batch = [ev("skew-future", now + 86400 * 365), ev("skew-epoch", 0),
             ev("skew-ok-old", 1621416178), ev("skew-ok-now", now)]
    st, _, body = k.post_audit(event_list(batch), "skew")
    d = json.loads(body)
    R.check(st == 200 and d["accepted"] == 2 and d["rejected"] == 2,
            "future and pre-2000 events refused, the others kept: %s" % body)
    R.check(d["errors"][0]["reason"] == "clock_skew", "reason clock_skew: %s" % body)
    R.check(k.metric('audit_rejected_total{reason="clock_skew"}') == 2, "counted")
    st, _, body = k.post_audit(event_list(batch[:1]), "skew")
    R.check(st == 400 and b"clock skew" in body, "a batch of only skewed events: 400 %s" % body)

shutil.rmtree(tmp, ignore_errors=True)
R.finish()

"""Nothing acknowledged is lost, nothing is stored twice: audit batches are
posted while kelemetry is killed with SIGKILL at random moments (a bounded
number of rounds) and restarted on the same data; unacknowledged batches
are sent again, as the apiserver does. In the end every acknowledged event
is exactly one audit span, and every (object, window) one object span."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import SRC, Kelemetry, Results, decode_tags, scaled, slow  # noqa: E402

R = Results()
rnd = random.Random(7)
work = tempfile.mkdtemp(prefix="kt-durable-")
load = os.path.join(work, "load.jsonl")
subprocess.check_call([sys.executable, os.path.join(SRC, "bench", "gen_load.py"),
                       "--objects", "300", "--events", str(scaled(20000, 6000)), "--batch", "100",
                       "--out", load])
batches = [l.encode() for l in open(load, "rb").read().decode().splitlines()]
ids = [[e["auditID"] for e in json.loads(b)["items"]] for b in batches]
acked = set()
data = os.path.join(work, "data")
os.makedirs(data)




lock = threading.Lock()


def poster(k, todo, stop):
    """Several of these run at once, so a backlog builds up to kill into."""
    while not stop.is_set():
        with lock:
            if not todo:
                return
            i = todo.pop(0)
        try:
            st, _, _ = k.post_audit(batches[i], "durable")
        except Exception:  # noqa: BLE001 - killed mid-request: not acknowledged
            st = 0
        if st == 200:
            with lock:
                acked.add(i)
        else:
            with lock:
                todo.append(i)  # resent later, as the apiserver retries
            if st == 0:
                return
            time.sleep(0.05)


todo = list(range(len(batches)))
kills = 0
for rnd_i in range(4):
    k = Kelemetry("--storage-retention", "0", data_dir=data).start()
    stop = threading.Event()
    threads = [threading.Thread(target=poster, args=(k, todo, stop)) for _ in range(4)]
    for t in threads:
        t.start()
    if rnd_i < 3:
        time.sleep(slow(rnd.uniform(0.15, 0.5)))
        k.proc.send_signal(signal.SIGKILL)
        k.proc.wait()
        kills += 1
        with lock:
            print("kill %d: %d of %d batches acknowledged" % (kills, len(acked), len(batches)),
                  flush=True)
        stop.set()
        for t in threads:
            t.join()
        k.log.close()
    else:
        for t in threads:
            t.join()
        deadline, last, stable = time.time() + slow(60), -1, 0
        while time.time() < deadline and stable < 3:
            written = k.metric("store_spans_written_total")
            idle = k.metric("audit_queue_depth") == 0
            stable = stable + 1 if idle and written == last else 0
            last = written
            time.sleep(0.2)
        rc = k.stop()
        R.check(rc == 0, "clean exit after the last round")

R.check(kills == 3 and len(acked) == len(batches), "all batches acknowledged in the end: %d/%d"
        % (len(acked), len(batches)))
db = sqlite3.connect(os.path.join(data, "kelemetry.db"))
count = {}
for (body,) in db.execute("select body from spans where service='audit'"):
    a = decode_tags(body).get("auditId")
    count[a] = count.get(a, 0) + 1
want = {a for i in acked for a in ids[i]}
missing = [a for a in want if a not in count]
dups = [a for a, n in count.items() if n > 1]
R.check(not missing, "no acknowledged event lost (%d missing of %d)" % (len(missing), len(want)))
R.check(not dups, "no event stored twice (%d duplicated)" % len(dups))
objs = db.execute("select count(*) from (select 1 from spans where service='object' group by "
                  "cluster, resource, namespace, name, start_us having count(*) > 1)").fetchone()[0]
R.check(objs == 0, "one object span per (object, window): %d duplicated" % objs)
db.close()
inbox = sqlite3.connect(os.path.join(data, "inbox.db"))
left = inbox.execute("select count(*) from kv where ns='inbox'").fetchone()[0]
inbox.close()
R.check(left == 0, "inbox empty after a clean stop: %d left" % left)

# An older version kept its inbox in the span database: what it left there
# is recovered too, then deleted from there.
old = os.path.join(work, "old")
os.makedirs(old)
with Kelemetry("--storage-retention", "0", data_dir=old):
    pass
db = sqlite3.connect(os.path.join(old, "kelemetry.db"))
db.execute("insert into kv values('inbox', 'old-1', ?, 0)",
           (b"legacy\n127.0.0.1\n" + batches[0],))
db.commit()
db.close()
with Kelemetry("--storage-retention", "0", data_dir=old) as k:
    deadline = time.time() + slow(30)
    while time.time() < deadline and (k.metric("store_spans_written_total") or 0) < len(ids[0]):
        time.sleep(0.2)
db = sqlite3.connect(os.path.join(old, "kelemetry.db"))
got = {decode_tags(b).get("auditId") for (b,) in db.execute(
    "select body from spans where service='audit' and cluster='legacy'")}
left = db.execute("select count(*) from kv where ns='inbox'").fetchone()[0]
db.close()
R.check(got == set(ids[0]) and left == 0,
        "an older version's inbox entry recovered (%d/%d events) and deleted (%d left)"
        % (len(got), len(ids[0]), left))
subprocess.run(["rm", "-rf", work])
R.finish()

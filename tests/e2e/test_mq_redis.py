"""The audit queue on Redis Streams (--mq=redis) with a real Redis and real
kelemetry processes: one webhook-only process, two consumer-only processes,
each consumer with its own SQLite store.

  0. a 200 means the events are in the streams (read back right after the
     answer, with no consumer running), one object's events in one stream;
     a full partition gives 503 + Retry-After, counted, and stays bounded;
  a. a second consumer joins under load and gets half of the partitions;
     every event answered 200 is stored in exactly one consumer's store;
  b. kill -9 of a consumer under load: the live one claims its partitions
     and pending entries; every acknowledged audit ID is in the union of
     the stores, and no store holds a span twice;
  c. Redis restarted under load: the webhook answers 503 meanwhile (the
     posters retry like the apiserver), processing resumes, nothing
     answered 200 is lost, the webhook's memory stays bounded.
Every loop is bounded in count and time."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
import engines  # noqa: E402
from ktest import BIN, SRC, Kelemetry, Results, decode_tags, scaled, slow  # noqa: E402

R = Results()
work = tempfile.mkdtemp(prefix="kt-mq-")
PARTS = 8
# events of phases a, b and c (fewer under valgrind: KT_TEST_SCALE)
N_A, N_B, N_C = scaled(3000, 1200), scaled(4000, 800), scaled(1500, 300)


def load(name, events, batch, seed):
    path = os.path.join(work, name + ".jsonl")
    subprocess.check_call([sys.executable, os.path.join(SRC, "bench", "gen_load.py"),
                           "--objects", "150", "--events", str(events), "--batch",
                           str(batch), "--seed", str(seed), "--out", path])
    lines = open(path, "rb").read().decode().splitlines()
    return [(l.encode(), [e["auditID"] for e in json.loads(l)["items"]]) for l in lines]




def stored(data_dir):
    """auditId -> number of audit spans in that store; and the number of
    (object, window) pairs with more than one object span."""
    db = sqlite3.connect(os.path.join(data_dir, "kelemetry.db"), timeout=30)
    count = {}
    for (body,) in db.execute("select body from spans where service='audit'"):
        a = decode_tags(body).get("auditId")
        count[a] = count.get(a, 0) + 1
    objs = db.execute("select count(*) from (select 1 from spans where service='object' "
                      "group by cluster, resource, namespace, name, start_us "
                      "having count(*) > 1)").fetchone()[0]
    db.close()
    return count, objs


class Resp:
    """A minimal Redis client (RESP2) for reading the queue's state."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            if int(rest) < 0:
                return None
            data = self.f.read(int(rest) + 2)[:-2]
            return data.decode()
        if int(rest) < 0:
            return None
        return [self.read() for _ in range(int(rest))]

    def close(self):
        self.s.close()


def pending_of(conn, prefix, name_prefix):
    """Entries pending for the consumers whose name starts with name_prefix."""
    n = 0
    for p in range(PARTS):
        summary = conn.cmd("XPENDING", "%s:%d" % (prefix, p), "kelemetry")
        for name, count in (summary[3] or []) if isinstance(summary, list) else []:
            if name.startswith(name_prefix):
                n += int(count)
    return n


def stream_lens(r, prefix):
    return [int(r.cli("XLEN", "%s:%d" % (prefix, p)).strip() or 0) for p in range(PARTS)]


def wait_for(pred, timeout, what):
    deadline = time.time() + slow(timeout)
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    print("timed out waiting for", what, flush=True)
    return False


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Poster:
    """Threads posting batches like the apiserver: a batch not answered 200
    (503, refused connection) is sent again after a short pause."""

    def __init__(self, k, batches, threads=4, pause=0.0, deadline=120):
        self.k, self.todo, self.pause = k, list(range(len(batches))), pause
        self.batches, self.acked, self.status = batches, set(), {}
        self.lock = threading.Lock()
        self.end = time.time() + slow(deadline)
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        while time.time() < self.end:
            with self.lock:
                if not self.todo:
                    return
                i = self.todo.pop(0)
            try:
                st, _, _ = self.k.post_audit(self.batches[i][0], "mq")
            except Exception:  # noqa: BLE001 - not acknowledged
                st = 0
            with self.lock:
                self.status[st] = self.status.get(st, 0) + 1
                if st == 200:
                    self.acked.add(i)
                else:
                    self.todo.append(i)
            time.sleep(self.pause if st == 200 else 0.05)

    def join(self):
        for t in self.threads:
            t.join()
        return {a for i in self.acked for a in self.batches[i][1]}


def check_stores(dirs, want, exactly_one, what):
    counts = [stored(d) for d in dirs]
    union = set().union(*(c for c, _ in counts))
    missing = [a for a in want if a not in union]
    R.check(not missing, "%s: every acknowledged event stored (%d missing of %d)"
            % (what, len(missing), len(want)))
    for n, (c, objs) in enumerate(counts):
        dups = [a for a, k in c.items() if k > 1]
        R.check(not dups, "%s: store %d holds no audit span twice (%d duplicated)"
                % (what, n, len(dups)))
        R.check(objs == 0, "%s: store %d holds one object span per (object, window) "
                "(%d duplicated)" % (what, n, objs))
    if exactly_one:
        both = [a for a in want if sum(a in c for c, _ in counts) > 1]
        R.check(not both, "%s: each event in exactly one store (%d in both)" % (what, len(both)))
    return counts


def metric(k, series):
    try:
        return k.metric(series)
    except Exception:  # noqa: BLE001 - killed
        return 0.0


for bad, named in ((["--audit-consumer-enable=false"], "--mq=redis"),
                   (["--mq=kafka"], "--mq"),
                   (["--mq=redis", "--audit-producer-partition-key-type=uid"],
                    "--audit-producer-partition-key-type"),
                   (["--mq=redis", "--mq-redis-address", "nohost"], "--mq-redis-address")):
    p = subprocess.run([BIN, "--data-dir", os.path.join(work, "bad")] + bad,
                       capture_output=True, text=True, timeout=30)
    R.check(p.returncode == 2 and named in p.stderr,
            "%s: exit 2 naming %s (%d %s)" % (bad, named, p.returncode, p.stderr.strip()))

with engines.Redis() as r:
    base = ["--mq=redis", "--mq-redis-address", r.addr, "--mq-redis-partitions", str(PARTS),
            "--mq-redis-claim-idle", "2s", "--storage-retention", "0",
            "--jaeger-query-enable=false"]

    # --- 0. the 200 comes after the XADDs; a full partition refuses --------
    first = load("first", 600, 100, 1)
    with Kelemetry(*base, "--mq-redis-stream-prefix", "t0", "--mq-redis-max-len", "30",
                   "--audit-consumer-enable=false") as w0:
        st, _, body = w0.post_audit(first[0][0], "mq")
        lens = stream_lens(r, "t0")
        R.check(st == 200 and sum(lens) == len(first[0][1]),
                "200 only once every event is in a stream: %d %s, %d entries"
                % (st, body[:80], sum(lens)))
        ids, where = set(), {}
        for p in range(PARTS):
            for line in r.cli("XRANGE", "t0:%d" % p, "-", "+").splitlines():
                if line.startswith("{"):
                    ev = json.loads(line)
                    ids.add(ev["auditID"])
                    o = ev["objectRef"]
                    where.setdefault((o.get("namespace"), o.get("name")), set()).add(p)
        R.check(ids == set(first[0][1]), "the streams hold exactly the batch's events")
        R.check(len(where) > 1 and all(len(v) == 1 for v in where.values()),
                "one object's events go to one partition (%d objects)" % len(where))
        codes = []
        for b, _ in first[1:]:
            st, hdr, _ = w0.post_audit(b, "mq")
            codes.append((st, hdr.get("Retry-After")))
        R.check((503, "1") in codes, "a full partition answers 503 + Retry-After: %s" % codes)
        R.check(w0.metric('audit_mq_refused_total{reason="queue_full"}') >= 1,
                "the refusal is counted (audit_mq_refused_total{reason=queue_full})")
        R.check(max(stream_lens(r, "t0")) <= 30 + 100,
                "no partition grows past its limit plus one batch: %s" % stream_lens(r, "t0"))

    # --- a. two consumers, each event in exactly one store ---------------
    mq = base + ["--mq-redis-stream-prefix", "kt"]
    w = Kelemetry(*mq, "--audit-consumer-enable=false").start()
    cdirs = [os.path.join(work, "c1"), os.path.join(work, "c2")]
    for d in cdirs:
        os.makedirs(d)
    c1 = Kelemetry(*mq, "--audit-webhook-enable=false", data_dir=cdirs[0]).start()
    owned = 'audit_mq_partitions_owned'
    R.check(wait_for(lambda: metric(c1, owned) == PARTS, 20, "c1 owns all"),
            "a lone consumer takes every partition")
    # The second consumer joins under load: the first gives half of the
    # partitions back once what it read there is acknowledged, so the
    # hand-over redelivers nothing.
    part_a = load("a", N_A, 25, 2)
    t0 = time.time()
    post = Poster(w, part_a, pause=slow(0.03))  # lasts past c2's start
    time.sleep(0.3)
    c2 = Kelemetry(*mq, "--audit-webhook-enable=false", data_dir=cdirs[1]).start()
    acked_a = post.join()
    t_posted = time.time() - t0
    R.check(len(acked_a) == N_A, "phase a: every batch answered 200: %d" % len(acked_a))
    R.check(wait_for(lambda: sum(stream_lens(r, "kt")) == 0, 60, "drained"),
            "phase a: the streams drain (acknowledged entries are deleted)")
    print("phase a: %d events posted in %.2f s, stored and acknowledged in %.2f s"
          % (N_A, t_posted, time.time() - t0))
    R.check(wait_for(lambda: metric(c1, owned) == 4 and metric(c2, owned) == 4, 20,
                     "4 partitions each"), "two consumers share the partitions 4/4")
    R.check(metric(c1, "audit_mq_claimed_total") + metric(c2, "audit_mq_claimed_total") == 0,
            "a hand-over between live consumers redelivers nothing")
    counts = check_stores(cdirs, acked_a, True, "a")
    R.check(all(len(c) > 0 for c, _ in counts),
            "both consumers stored events: %s" % [len(c) for c, _ in counts])

    # --- b. kill -9 one consumer under load ------------------------------
    part_b = load("b", N_B, 25, 3)
    post = Poster(w, part_b, pause=0.01)
    conn = Resp(r.port)
    c1_name = "%s-%d-" % (os.uname().nodename, c1.proc.pid)
    # Killed while it holds entries read and not yet acknowledged: frozen
    # first (SIGSTOP) so that the count cannot change before the kill.
    # Those moments are short (a read, processing, one group commit), so
    # the pending list is polled without pause while the load lasts.
    pend, deadline = 0, time.time() + slow(60)
    while time.time() < deadline and any(t.is_alive() for t in post.threads):
        if pending_of(conn, "kt", c1_name) == 0:
            continue
        c1.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.2)  # commands already sent land first
        pend = pending_of(conn, "kt", c1_name)
        if pend:
            break
        c1.proc.send_signal(signal.SIGCONT)
    c1.proc.send_signal(signal.SIGKILL)
    c1.proc.wait()
    c1.log.close()
    acked_b = post.join()
    R.check(len(acked_b) == N_B, "phase b: every batch answered 200: %d" % len(acked_b))
    R.check(wait_for(lambda: metric(c2, owned) == PARTS, 20, "takeover"),
            "the live consumer took the dead one's partitions")
    R.check(wait_for(lambda: sum(stream_lens(r, "kt")) == 0, 90, "drained after kill"),
            "phase b: the streams drain after the kill")
    claimed = metric(c2, "audit_mq_claimed_total")
    R.check(pend > 0 and claimed >= pend, "the dead consumer's %d pending entries "
            "were claimed (%d)" % (pend, claimed))
    R.check(pending_of(conn, "kt", "") == 0, "nothing left pending in the group")
    print("kill -9: %d entries pending for the dead consumer, %d claimed" % (pend, claimed))
    check_stores(cdirs, acked_a | acked_b, False, "b")

    # --- c. Redis restarted under load -----------------------------------
    c1 = Kelemetry(*mq, "--audit-webhook-enable=false", data_dir=cdirs[0]).start()
    wait_for(lambda: metric(c1, owned) == 4 and metric(c2, owned) == 4, 20, "rebalanced")
    part_c = load("c", N_C, 10, 4)
    rss0 = rss_kb(w.proc.pid)
    post = Poster(w, part_c, pause=0.1, deadline=150)
    wait_for(lambda: len(post.acked) >= len(part_c) // 5, 30, "a fifth posted")
    rss = [rss_kb(w.proc.pid)]
    r.stop()
    t_down = time.time()
    while time.time() - t_down < 2.5:
        rss.append(rss_kb(w.proc.pid))
        time.sleep(0.1)
    refused_down = w.metric('audit_mq_refused_total{reason="unavailable"}')
    r.start()
    acked_c = post.join()
    R.check(len(acked_c) == N_C, "phase c: every batch answered 200 in the end: %d"
            % len(acked_c))
    R.check(refused_down > 0 and post.status.get(503, 0) > 0,
            "phase c: 503 while Redis was down (%d counted, %d seen)"
            % (refused_down, post.status.get(503, 0)))
    R.check(wait_for(lambda: sum(stream_lens(r, "kt")) == 0, 90, "drained after restart"),
            "phase c: processing resumes and the streams drain")
    growth = (max(rss) - rss0) / 1024
    print("webhook RSS: %.1f MB before, max %.1f MB while Redis was down"
          % (rss0 / 1024, max(rss) / 1024))
    R.check(growth < 64, "phase c: webhook memory bounded while Redis is down "
            "(+%.1f MB)" % growth)
    check_stores(cdirs, acked_a | acked_b | acked_c, False, "c")

    for k, what in ((w, "webhook"), (c1, "consumer 1"), (c2, "consumer 2")):
        R.check(k.stop() == 0, "%s exits cleanly" % what)
    R.check(all(int(r.cli("EXISTS", "kt:%d:lease" % p).strip() or 0) == 0
                for p in range(PARTS)), "leases given back at a clean stop")

subprocess.run(["rm", "-rf", work])
R.finish()

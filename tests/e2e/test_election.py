"""Leader election with three kelemetry processes against the fake
apiserver: the event controller runs in exactly one of them, the diff
watchers in exactly two; a killed leader is replaced within the lease
duration; leaders that lose their lease (frozen past it, or unable to renew)
stop cleanly and lead again later, as often as it happens (the original
deadlocked there: upstream #334)."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from fake_apiserver import FakeApiserver  # noqa: E402
from ktest import SCALE, Kelemetry, Results, scaled, slow  # noqa: E402

R = Results()
# Under valgrind (KT_TEST_SCALE) the lease timings stretch, less than the
# waits: a renewal is a small request, and a longer lease lengthens every round.
STRETCH = min(SCALE, 3.0)
LEASE = 2.0 * STRETCH  # seconds

srv = FakeApiserver(tls=True, token="s3cret", bookmark_interval=0.5).start()
kc = os.path.join(srv.certdir, "kubeconfig")
srv.write_kubeconfig(kc, context="fake")


def start(i):
    flags = ["--kube-config", kc, "--kube-target-cluster", "fake",
             "--event-informer-enable", "--diff-controller-enable", "--log-level", "debug"]
    for p in ("event-informer", "diff-controller"):
        flags += ["--%s-leader-election-lease-duration" % p, "%gs" % LEASE,
                  "--%s-leader-election-renew-deadline" % p, "%dms" % (1500 * STRETCH),
                  "--%s-leader-election-retry-period" % p, "%dms" % (200 * STRETCH)]
    return Kelemetry(*flags).start()


def leading(k, component):
    try:
        return int(k.metric('is_leader{component="%s"}' % component) or 0)
    except OSError:
        return 0


def counts(ks):
    return (sum(leading(k, "event-informer") for k in ks),
            sum(leading(k, "diff-controller") for k in ks))


def writers(ks):
    return sum(leading(k, "diff-writer") for k in ks)


def settle(ks, timeout):
    """Waits until 1 event leader and 2 diff leaders; returns seconds taken."""
    timeout = slow(timeout)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if counts(ks) == (1, 2):
            return time.time() - t0
        time.sleep(0.05)
    return None


def wait_writer(ks, timeout=10):
    timeout = slow(timeout)
    t0 = time.time()
    while time.time() - t0 < timeout and writers(ks) != 1:
        time.sleep(0.05)
    return writers(ks) == 1


def holders():
    return {l["metadata"]["name"]: l["spec"].get("holderIdentity") or ""
            for l in srv.objects("leases")}


ks = [start(i) for i in range(3)]
try:
    R.check(settle(ks, 10) is not None, "1 event leader and 2 diff leaders: %s" % (counts(ks),))
    stable = []
    for _ in range(20):  # "at any time"
        stable.append(counts(ks))
        time.sleep(0.1)
    R.check(all(c == (1, 2) for c in stable), "stays 1 + 2 over 2 s: %s" % set(stable))
    R.check(writers(ks) == 1, "one diff writer among the two diff leaders: %d" % writers(ks))
    h = holders()
    diff = [h[n] for n in h if "diff-controller-leader-election-" in n and "writer" not in n]
    writer = [h[n] for n in h if "writer" in n]
    R.check(len(diff) == 2 and all(diff) and len(set(diff)) == 2,
            "the 2 diff leases held by 2 processes: %s" % h)
    R.check(len(writer) == 1 and writer[0] in diff, "the writer is one of the diff leaders: %s" % h)

    # Kill a diff leader (no release): another takes over within the lease.
    victim = next(k for k in ks if leading(k, "diff-controller"))
    victim.proc.kill()
    victim.proc.wait()
    rest = [k for k in ks if k is not victim]
    took = settle(rest, 10)
    R.check(took is not None and took <= LEASE + STRETCH,
            "killed leader replaced within the lease duration: %s s" % took)
    R.check(wait_writer(rest), "still one diff writer: %d" % writers(rest))

    # Repeated loss and re-acquisition: freeze a leader past its lease,
    # thaw it, and it must step down and later lead again.
    ks = rest + [start(3)]
    R.check(settle(ks, 10) is not None, "back to 1 + 2 with a new process")
    for rnd in range(scaled(3, 2)):
        frozen = next(k for k in ks if leading(k, "event-informer"))
        frozen.proc.send_signal(signal.SIGSTOP)
        others = [k for k in ks if k is not frozen]
        R.check(settle(others, 10) is not None,
                "round %d: the event controller moved: %s" % (rnd, counts(others)))
        frozen.proc.send_signal(signal.SIGCONT)
        t = settle(ks, 10)
        R.check(t is not None, "round %d: thawed leader stepped down: %s" % (rnd, counts(ks)))
        # Make a current leader unable to renew: it steps down, another leads.
        srv.inject_error(500, method="PUT", path_contains="leases/kelemetry-event-informer",
                         times=30)
        time.sleep(0.5 * STRETCH)
        R.check(settle(ks, 15) is not None, "round %d: 1 + 2 after failed renewals: %s" %
                (rnd, counts(ks)))
    for k in ks:
        R.check(k.get(k.metrics, "/metrics")[0] == 200, "process still answers (no deadlock)")
    srv.clear_injected()  # errors not consumed yet would hit the release
    R.check(settle(ks, 10) is not None, "1 + 2 before the clean exit")
    # A clean exit releases the leases for the others.
    leader = next(k for k in ks if leading(k, "event-informer"))
    t0 = time.time()
    R.check(leader.stop() == 0, "leader exits cleanly")
    rest = [k for k in ks if k is not leader]
    while counts(rest)[0] != 1 and time.time() - t0 < 2.5 * LEASE:
        time.sleep(0.05)
    took = time.time() - t0
    R.check(counts(rest)[0] == 1 and took < LEASE,
            "released lease taken before it would have expired: %.1f s" % took)
finally:
    for k in ks:
        if k.proc and k.proc.poll() is None:
            k.proc.send_signal(signal.SIGCONT)
        k.stop()
    srv.stop()
    srv.cleanup()

R.finish()

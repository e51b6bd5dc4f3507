"""Real Redis, etcd and PostgreSQL servers on loopback for the tests
(recipes: dependencies.md §2). Each runs in the foreground in its own
temporary directory on a free port, and can be stopped and started again
on the same port and data (the restart-under-load tests).

As a library:
    with engines.Redis() as r: ... r.addr  -> "127.0.0.1:PORT"
    with engines.Etcd() as e:  ... e.url   -> "http://127.0.0.1:PORT"
    with engines.Postgres() as p: ... p.dsn -> "host=127.0.0.1 port=PORT ..."

As a wrapper (CMake runs the engine tests this way):
    python3 engines.py redis etcd postgres -- ./test_kv_redis ARGS...
starts the named servers, exports KT_TEST_REDIS / KT_TEST_ETCD /
KT_TEST_PG, runs the command, stops the servers, exits with its status.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

PGBIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s did not become ready in %ss" % (what, timeout))


class _Server:
    name = "server"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kt-%s-" % self.name)
        self.port = free_port()
        self.proc = None

    def _argv(self):
        raise NotImplementedError

    def _ready(self):
        raise NotImplementedError

    def start(self):
        log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_until(lambda: self.proc.poll() is None and self._ready(), 20,
                       self.name)
        except RuntimeError:
            raise RuntimeError("%s did not start: %s" % (self.name, self.logtext()))
        return self

    def logtext(self):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_secs=0.0):
        self.stop()
        time.sleep(down_secs)
        self.start()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class Redis(_Server):
    name = "redis"

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _argv(self):
        # appendonly: a restart keeps the streams, like a production Redis
        # with persistence (the restart tests rely on it).
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--appendfsync", "no",
                "--dir", self.dir, "--daemonize", "no"]

    def _ready(self):
        return self.cli("PING").strip() == "PONG"

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                              capture_output=True, text=True, timeout=10).stdout


class Etcd(_Server):
    name = "etcd"

    def __init__(self):
        super().__init__()
        self.peer = free_port()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _argv(self):
        peer = "http://127.0.0.1:%d" % self.peer
        return ["etcd", "--name", "test", "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", "test=" + peer, "--logger", "zap",
                "--log-outputs", os.path.join(self.dir, "etcd.log")]

    def _ready(self):
        with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
            return b'"health":"true"' in r.read()


class Postgres(_Server):
    """initdb and postgres refuse to run as root: as root, they run as the
    postgres user through setpriv (which execs, so the pid is the server's)."""
    name = "pg"

    def __init__(self):
        super().__init__()
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["setpriv", "--reuid=postgres", "--regid=postgres",
                            "--init-groups"]
        data = os.path.join(self.dir, "data")
        r = subprocess.run(self.as_user + [PGBIN + "/initdb", "-D", data, "-U", "postgres",
                            "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("initdb failed: " + r.stdout + r.stderr)

    @property
    def dsn(self):
        return "host=127.0.0.1 port=%d user=postgres dbname=postgres" % self.port

    def _argv(self):
        return self.as_user + [PGBIN + "/postgres", "-D", os.path.join(self.dir, "data"),
                               "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                               "-c", "unix_socket_directories=" + self.dir,
                               "-c", "fsync=off", "-c", "synchronous_commit=off",
                               "-c", "full_page_writes=off", "-c", "max_connections=200"]

    def _ready(self):
        return subprocess.run([PGBIN + "/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                               str(self.port)]).returncode == 0

    def stop(self, sig=signal.SIGINT):  # SIGINT = fast shutdown
        super().stop(sig)

    def psql(self, sql):
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-tAc", sql], capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError("psql: " + r.stderr)
        return r.stdout.strip()


KINDS = {"redis": (Redis, "KT_TEST_REDIS", "addr"),
         "etcd": (Etcd, "KT_TEST_ETCD", "url"),
         "postgres": (Postgres, "KT_TEST_PG", "dsn")}


def main(argv):
    if "--" not in argv:
        print("usage: engines.py redis|etcd|postgres... -- COMMAND...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    names, cmd = argv[:cut], argv[cut + 1:]
    started = []
    env = dict(os.environ)
    try:
        for n in names:
            if n not in KINDS:
                print("engines.py: unknown engine %r" % n, file=sys.stderr)
                return 2
            cls, var, attr = KINDS[n]
            s = cls().start()
            started.append(s)
            env[var] = getattr(s, attr)
        return subprocess.call(cmd, env=env)
    finally:
        for s in reversed(started):
            s.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`kelemetry replay`: audit logs plain and gzip, EventList documents
(one per line and pretty-printed), stdin, the summary with rejected lines,
and clear one-line failures with a non-zero exit."""
import gzip
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, SRC, Results  # noqa: E402

R = Results()
tmp = tempfile.mkdtemp(prefix="kt-replay-")
demo = os.path.join(SRC, "examples", "demo-deployment.jsonl")
lines = open(demo).read().splitlines()


def replay(*args, stdin=None):
    p = subprocess.run([BIN, "replay", "--data-dir", os.path.join(tmp, "data"),
                        "--storage-retention", "0", "--progress=false"] + list(args),
                       input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


# plain JSONL with two broken lines
bad = os.path.join(tmp, "bad.jsonl")
with open(bad, "w") as f:
    f.write("\n".join(lines[:10]) + "\n{not json\n" + "\n".join(lines[10:20]) +
            '\n{"kind":"Event","auditID":"x","stage":"ResponseComplete"}\n')
rc, out, err = replay(bad)
R.check(rc == 0, "replay with bad lines exits 0: %s" % err)
R.check("read 22 lines, 21 events: 20 accepted" in out, "summary counts: %s" % out)
R.check("rejected bad_json: 1 (first at %s:11)" % bad in out, "bad json line number: %s" % out)
R.check("rejected missing_field: 1 (first at %s:22)" % bad in out, "missing field line: %s" % out)

# gzip
gz = os.path.join(tmp, "demo.jsonl.gz")
with gzip.open(gz, "wt") as f:
    f.write("\n".join(lines) + "\n")
rc, out, _ = replay(gz)
R.check(rc == 0 and "73 events: 73 accepted" in out, "gzip replay: %s" % out)

# EventList per line, then one pretty-printed EventList document
el = os.path.join(tmp, "lists.json")
with open(el, "w") as f:
    for i in range(0, len(lines), 30):
        f.write(json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                            "items": [json.loads(x) for x in lines[i:i + 30]]}) + "\n")
rc, out, _ = replay(el)
R.check(rc == 0 and "3 lines, 73 events: 73 accepted" in out, "EventList lines: %s" % out)
pretty = os.path.join(tmp, "pretty.json")
with open(pretty, "w") as f:
    json.dump({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
               "items": [json.loads(x) for x in lines[:5]]}, f, indent=2)
rc, out, _ = replay(pretty)
R.check(rc == 0 and "5 events: 5 accepted" in out, "pretty-printed document: %s" % out)

# stdin
rc, out, _ = replay("-", stdin=("\n".join(lines[:7]) + "\n").encode())
R.check(rc == 0 and "7 events: 7 accepted" in out, "stdin: %s" % out)

# the old log format (audit2rbac) decodes; its gets/lists are filtered
rc, out, _ = replay(os.path.join(SRC, "tests", "data", "real", "audit2rbac-demo.log"))
R.check(rc == 0 and "37 accepted (0 traced, 37 filtered" in out, "old format: %s" % out)

# failures: one line, non-zero
rc, out, err = replay(os.path.join(tmp, "missing.jsonl"))
R.check(rc != 0 and "cannot open" in err and len(err.strip().splitlines()) == 1,
        "missing file: %d %s" % (rc, err))
p = subprocess.run([BIN, "--no-such-flag"], capture_output=True)
R.check(p.returncode == 2 and "unknown flag --no-such-flag" in p.stderr.decode(), "unknown flag")
p = subprocess.run([BIN, "replay"], capture_output=True)
R.check(p.returncode == 2 and "needs at least one FILE" in p.stderr.decode(), "replay without file")
cfg = os.path.join(tmp, "cfg.yaml")
with open(cfg, "w") as f:
    f.write("log-level: info\nno-such-key: 1\n")
p = subprocess.run([BIN, "--config", cfg], capture_output=True)
R.check(p.returncode == 2 and "cfg.yaml:2: unknown key no-such-key" in p.stderr.decode(),
        "config file unknown key: %s" % p.stderr.decode())
with open(os.path.join(tmp, "corrupt.db"), "w") as f:
    f.write("this is not a database" * 100)
os.makedirs(os.path.join(tmp, "cdir"), exist_ok=True)
os.replace(os.path.join(tmp, "corrupt.db"), os.path.join(tmp, "cdir", "kelemetry.db"))
p = subprocess.run([BIN, "replay", "--data-dir", os.path.join(tmp, "cdir"), demo],
                   capture_output=True, timeout=60)
R.check(p.returncode != 0 and "not a usable kelemetry database" in p.stderr.decode(),
        "corrupt database refused: %d %s" % (p.returncode, p.stderr.decode()[-300:]))

subprocess.run(["rm", "-rf", tmp])
R.finish()

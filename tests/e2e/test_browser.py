"""Runs the browser test (tests/browser/ui.test.mjs) against a kelemetry
serving the demo scenario. Skipped (exit 77) where node or chromium is
absent; CI installs both."""
import datetime
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import SRC, Kelemetry  # noqa: E402

browser_dir = os.path.join(SRC, "tests", "browser")
if not shutil.which("node") or not os.path.exists("/usr/bin/chromium"):
    print("skipped: node or /usr/bin/chromium not installed")
    sys.exit(77)
if not os.path.isdir(os.path.join(browser_dir, "node_modules", "playwright-core")):
    subprocess.check_call(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=browser_dir)

start = datetime.datetime.utcnow() - datetime.timedelta(minutes=10)
demo = tempfile.mktemp(suffix=".jsonl")
subprocess.check_call([sys.executable, os.path.join(SRC, "examples", "gen_deployment.py"),
                       "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--out", demo])
shots = os.path.join(os.environ.get("KT_BUILD", tempfile.gettempdir()), "screenshots")
os.makedirs(shots, exist_ok=True)
with Kelemetry("--audit-default-cluster", "tracetest") as k:
    with open(demo, "rb") as f:
        body = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + \
            b",".join(l.strip() for l in f if l.strip()) + b"]}"
    st, _, _ = k.post_audit(body, "tracetest")
    assert st == 200
    k.wait_ingested("tracetest", 66)
    env = dict(os.environ, KT_UI_URL="http://127.0.0.1:%d" % k.query, KT_SCREENSHOT_DIR=shots)
    rc = subprocess.call(["node", "ui.test.mjs"], cwd=browser_dir, env=env, timeout=120)
os.unlink(demo)
sys.exit(rc)

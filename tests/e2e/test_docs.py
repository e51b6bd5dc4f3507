"""The configuration reference (docs/configuration.md) says what the binary
says: regenerating it from `kelemetry --help` changes nothing."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("KT_SRC", "."), "tests", "lib"))
from ktest import BIN, Results  # noqa: E402

R = Results()
src = os.environ.get("KT_SRC", ".")
p = subprocess.run([sys.executable, os.path.join(src, "scripts", "gen-config-doc.py"),
                    BIN, "--check"],
                   capture_output=True, timeout=60)
R.check(p.returncode == 0, p.stdout.decode() + p.stderr.decode())
R.finish()

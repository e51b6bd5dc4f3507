#!/usr/bin/env python3
"""Writes docs/configuration.md from `kelemetry --help` (the flag table is
the only source of truth). Usage: scripts/gen-config-doc.py [KELEMETRY] [--check]
--check: exit 1 if the committed page differs from what the binary says."""
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = [a for a in sys.argv[1:] if a != "--check"]
binary = args[0] if args else os.path.join(root, "build", "kelemetry")
out = os.path.join(root, "docs", "configuration.md")
text = subprocess.run([binary, "--help"], capture_output=True, check=True).stdout.decode()
flags = re.findall(r'^  --(\S+) (\S+) \(default "(.*)"\)\n      (.*)$', text, re.M)
lines = ["# Configuration reference",
         "",
         "Generated from `kelemetry --help` by `scripts/gen-config-doc.py`; a test",
         "fails when this page and the binary disagree. Every flag can also be",
         "given as a key of the YAML file named by `--config` (same name, without",
         "the dashes); flags on the command line win over the file.",
         "",
         "Types: `duration` takes Go-style values (`30s`, `1h30m`, `500ms`), `size`",
         "takes bytes with an optional `Ki`/`Mi`/`Gi` suffix, `bool` takes",
         "`true`/`false` (a bare `--flag` means true).",
         "",
         "| flag | type | default | meaning |",
         "|---|---|---|---|"]
for name, typ, default, help_ in flags:
    d = "`%s`" % default if default else ""
    lines.append("| `--%s` | %s | %s | %s |" % (name, typ, d, help_.replace("|", "\\|")))
page = "\n".join(lines) + "\n"
if "--check" in sys.argv:
    with open(out) as f:
        same = f.read() == page
    print("docs/configuration.md is %s" % ("up to date" if same else
                                           "stale: run scripts/gen-config-doc.py"))
    sys.exit(0 if same else 1)
with open(out, "w") as f:
    f.write(page)
print("wrote %s (%d flags)" % (out, len(flags)))

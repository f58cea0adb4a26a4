"""Regenerates docs/cli.md from docs/tools/cli.md.in: every <<<RUN: cmd>>> is replaced by the
command and its real output, run on the seed story with COMMITMENTS_NOW=2024-03-15T12:00:00Z.

usage (from the project root; needs jq): cargo build --release && python3 docs/tools/gen_cli_md.py
"""
import os, re, subprocess, shutil, sys, tempfile
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
B = os.environ.get("COMMITMENTS_BIN", os.path.join(ROOT, "target/release/commitments"))
W = tempfile.mkdtemp(prefix="cli-md-")
env = dict(os.environ)
for k in ["COMMITMENTS_STORE", "NO_COLOR", "COLUMNS", "COMMITMENTS_TEST_HOLD_MS", "COMMITMENTS_HORIZON_DAYS"]:
    env.pop(k, None)
env["COMMITMENTS_NOW"] = "2024-03-15T12:00:00Z"
env["COMMITMENTS_ACTOR"] = "analyst:demo"
env["COMMITMENTS_STORE"] = "tracker.db"
shutil.copy(os.path.join(ROOT, "docs/examples/aleinik-2024-01-20.jsonl"), W + "/aleinik-2024-01-20.jsonl")
tpl = open(os.path.join(ROOT, "docs/tools/cli.md.in")).read()
def run(m):
    line = m.group(1).strip()
    cmd, _, filt = line.partition(" | ")
    p = subprocess.run(f"commitments() {{ {B} \"$@\"; }}; " + cmd, shell=True, cwd=W, env=env, capture_output=True, text=True, executable="/bin/bash")
    out = p.stdout
    if filt:
        out = subprocess.run(filt, shell=True, input=out, capture_output=True, text=True).stdout
    shown = "$ " + cmd + (("  | " + filt) if filt else "")
    body = out.rstrip("\n")
    if p.stderr.strip():
        body += ("\n" if body else "") + "\n".join("[stderr] " + l for l in p.stderr.rstrip("\n").split("\n"))
    body += f"\n[exit {p.returncode}]" if p.returncode else ""
    return "```console\n" + shown + ("\n" + body if body else "") + "\n```"
def setup(m):
    subprocess.run(m.group(1).strip(), shell=True, cwd=W, env=env, executable="/bin/bash", check=True)
    return ""
tpl = re.sub(r"<<<SETUP:(.*?)>>>\n", setup, tpl, flags=re.S)
out = re.sub(r"<<<RUN:(.*?)>>>", run, tpl, flags=re.S)
open(os.path.join(ROOT, "docs/cli.md"), "w").write(out)
shutil.rmtree(W, ignore_errors=True)

"""`wormspace demo` runs to completion, tells what happened, and leaves no server behind."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_to_completion_and_stops_its_cluster(tmp_path):
    data = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "wormspace", "demo", "--data", str(data)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for expected in ("== WormPaxos", "leader failover", "the chosen value survived",
                     "== WormLog", "20 distinct addresses", "fill -> JUNK",
                     "(a chosen value survives)", "sequencer seq-1 killed", "-> TRIMMED",
                     "== WormTX", "-> COMMIT (every RM: commit)", "-> ABORT (every RM: abort)",
                     "ledger=no:timeout*", "== demo finished", "== cluster stopped"):
        assert expected in out, f"missing {expected!r} in:\n{out}"
    # Every server was stopped and no pid file is left.
    assert "stopped (pid" in out and not list(data.glob("*.pid"))
    assert "Traceback" not in r.stderr


def test_demo_reports_a_failure_and_still_stops(tmp_path):
    # An unusable data directory (a file where the directory should be): clear error, exit 1.
    bad = tmp_path / "file"
    bad.write_text("not a directory")
    r = subprocess.run([sys.executable, "-m", "wormspace", "demo", "--data", str(bad)],
                       capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert r.returncode == 1 and "demo failed" in r.stderr and "Traceback" not in r.stderr

"""The compact, disk-backed store: same counts, traces, and checkpoints that resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wormspace.checker.explore import check
from wormspace.checker.model import ModelError
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.tcommit import TCommit


@pytest.mark.parametrize("rm", [3, 5])
def test_compact_counts_and_coverage_equal_the_default_store(rm: int, tmp_path: Path) -> None:
    a = check(TwoPhase(rm=rm))
    b = check(TwoPhase(rm=rm), disk=tmp_path)
    assert (b.distinct, b.generated, b.depth) == (a.distinct, a.generated, a.depth)
    assert b.levels == a.levels and b.coverage == a.coverage


@pytest.mark.parametrize("batch, chunk", [(7, 1 << 16), (1 << 20, 5), (13, 3)])
def test_compact_small_batches_and_frontier_files_change_nothing(
        batch: int, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wormspace.checker import compact

    a = check(TwoPhase(rm=4))
    # Flush every few states (mid-level flushes) and/or write many small frontier files.
    monkeypatch.setattr(compact, "BATCH_LIMIT", batch)
    monkeypatch.setattr(compact, "CHUNK", chunk)
    b = check(TwoPhase(rm=4), disk=tmp_path)
    assert (b.distinct, b.generated, b.depth, b.coverage) == (a.distinct, a.generated, a.depth,
                                                              a.coverage)


def test_compact_symmetry_and_violations(tmp_path: Path) -> None:
    assert check(TwoPhase(rm=3), symmetry=True, disk=tmp_path / "s").distinct == 80
    broken = TwoPhase(rm=3, bug="commit_without_all_prepared")
    a = check(broken, refinement=False)
    b = check(broken, refinement=False, disk=tmp_path / "b")
    assert b.result == "invariant" and len(b.trace) == len(a.trace)
    assert b.trace[-1].state == a.trace[-1].state
    d = check(TCommit(rm=3), disk=tmp_path / "d")
    assert d.result == "deadlock" and len(d.trace) == 4


def test_a_directory_with_a_checkpoint_is_not_overwritten(tmp_path: Path) -> None:
    check(TwoPhase(rm=3), disk=tmp_path, checkpoint_minutes=1e-9)
    assert (tmp_path / "checkpoint.json").exists()
    with pytest.raises(ModelError, match="--recover"):
        check(TwoPhase(rm=3), disk=tmp_path)
    with pytest.raises(ModelError, match="another run"):
        check(TwoPhase(rm=4), disk=tmp_path, recover=True)


def test_checkpoint_survives_a_kill_and_resumes_to_the_same_counts(tmp_path: Path) -> None:
    want = check(TwoPhase(rm=6))
    run = [sys.executable, "-m", "wormspace", "check", "twophase", "-p", "rm=6",
           "--json", str(tmp_path / "r.json")]
    proc = subprocess.Popen(run + ["--disk", str(tmp_path / "d"), "--checkpoint", "0.0001"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = tmp_path / "d" / "checkpoint.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for a checkpoint a few levels in
        if manifest.exists() and json.loads(manifest.read_text())["depth"] >= 8:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved_depth = json.loads(manifest.read_text())["depth"]
    assert 8 <= saved_depth < want.depth, "killed too late to test resuming"
    out = subprocess.run(run + ["--recover", str(tmp_path / "d")], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads((tmp_path / "r.json").read_text())
    assert (got["distinct"], got["generated"], got["depth"]) == (want.distinct, want.generated,
                                                                 want.depth)
    assert got["coverage"] == want.coverage


def test_fingerprint_set_runs_stay_bounded_and_lookups_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from wormspace.checker import compact

    monkeypatch.setattr(compact, "RUN_MAX", 64)
    rng = np.random.default_rng(7)
    universe = rng.choice(np.arange(-10**12, 10**12, 7919, dtype=np.int64), 2000, replace=False)
    fs = compact.FingerprintSet()
    added: set[int] = set()
    for chunk in np.array_split(universe[:1500], 40):
        fresh = fs.fresh(chunk)
        assert set(fresh.tolist()) == set(chunk.tolist()) - added
        fs.add(np.sort(fresh))
        added |= set(fresh.tolist())
        assert len(fs) == len(added)
        assert all(len(r) <= 64 for r in fs.runs)
        assert all(np.all(np.diff(r) > 0) for r in fs.runs)
    probe = universe[1000:2000]
    assert set(fs.fresh(probe).tolist()) == set(universe[1500:2000].tolist())

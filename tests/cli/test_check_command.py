"""The `wormspace check` command: output, files and exit codes that scripts rely on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from wormspace.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_twophase_ok_prints_tlc_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "twophase")
    assert code == 0
    assert "Model checking completed. No error has been found." in out
    assert "1146 states generated, 288 distinct states found, 0 states left on queue." in out
    assert "The depth of the complete state graph search is 11." in out
    assert re.search(r"calculated \(optimistic\):  val = [0-9.]+E-\d+", out)
    assert "<RMPrepare>: 26:156" in out


def test_json_result_has_the_documented_fields(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    code, _, _ = run(capsys, "check", "twophase", "-p", "rm=4", "--json", str(path))
    assert code == 0
    doc = json.loads(path.read_text())
    for key in ("model", "params", "result", "violated", "distinct", "generated", "depth",
                "left_on_queue", "seconds", "collision_probability", "coverage", "trace"):
        assert key in doc
    assert doc["params"] == {"rm": 4}
    assert (doc["distinct"], doc["generated"], doc["depth"]) == (1568, 8258, 14)
    assert doc["result"] == "ok" and doc["trace"] == []
    assert sum(g for _d, g in doc["coverage"].values()) == doc["generated"] - 1


def test_violation_writes_json_trace_and_itf(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    res, trace, itf = tmp_path / "r.json", tmp_path / "t.json", tmp_path / "t.itf.json"
    code, out, _ = run(capsys, "check", "twophase", "-p", "bug=commit_without_all_prepared",
                       "--no-refinement", "--json", str(res), "--trace", str(trace),
                       "--itf", str(itf))
    assert code == 12
    assert "Error: Invariant TCConsistent is violated." in out
    assert "State 1: <Initial predicate>" in out and "/\\ tmState = " in out
    doc = json.loads(res.read_text())
    assert doc["result"] == "invariant" and doc["violated"] == "TCConsistent"
    steps = json.loads(trace.read_text())["trace"]
    assert steps == doc["trace"]
    assert steps[0]["action"] is None and steps[-1]["action"] == "RMRcvCommitMsg"
    assert set(steps[-1]["state"]) == {"rmState", "tmState", "tmPrepared", "msgs"}
    itf_doc = json.loads(itf.read_text())
    assert itf_doc["vars"] == ["rmState", "tmState", "tmPrepared", "msgs"]
    assert len(itf_doc["states"]) == len(steps)
    assert itf_doc["states"][0]["msgs"] == {"#set": []}
    assert itf_doc["states"][0]["rmState"]["#map"][0] == ["r1", "working"]


def test_refinement_violation_exit_12(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "twophase", "-p", "bug=commit_without_all_prepared")
    assert code == 12
    assert "Error: Refinement of tcommit is violated" in out
    assert "tcommit!rmState = " in out


def test_deadlock_exit_11_and_no_deadlock_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "check", "tcommit")[0] == 11
    code, out, _ = run(capsys, "check", "tcommit", "--no-deadlock")
    assert code == 0 and "94 states generated, 34 distinct states found" in out


def test_symmetry_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "twophase", "--symmetry")
    assert code == 0 and "80 distinct states found" in out


def test_bad_parameters_and_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "twophase", "-p", "colour=red")
    assert code == 151 and "no parameter 'colour'" in err
    code, _, err = run(capsys, "check", "twophase", "-p", "rm=three")
    assert code == 151 and "integer" in err
    code, _, err = run(capsys, "check", "twophase", "-p", "rm")
    assert code == 151 and "KEY=VALUE" in err
    code, _, err = run(capsys, "check", "twophase", "-p", "rm=0")
    assert code == 151 and "rm must be at least 1" in err
    code, _, err = run(capsys, "check", "twophase", "-p", "bug=nope")
    assert code == 151
    code, _, err = run(capsys, "check", "no-such-model")
    assert code == 150 and "unknown model" in err
    code, _, err = run(capsys, "check", "wormspace.spec.tcommit:NoSuch")
    assert code == 150 and "no attribute" in err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ex:
        main(["check", "twophase", "--simulate", "5"])
    assert ex.value.code == 2
    with pytest.raises(SystemExit) as ex:
        main(["check"])
    assert ex.value.code == 2


def test_module_attribute_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "wormspace.model.examples.twophase:TwoPhase", "-p", "rm=2")
    assert code == 0 and "distinct states found" in out


def test_simulation_is_reproducible_and_finds_the_bug(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    args = ["check", "twophase", "-p", "rm=4", "--simulate", "200", "--depth", "30", "--seed", "7"]
    assert run(capsys, *args, "--json", str(a))[0] == 0
    assert run(capsys, *args, "--json", str(b))[0] == 0
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert (da["distinct"], da["generated"]) == (db["distinct"], db["generated"])
    assert 0 < da["distinct"] <= 1568
    code, out, _ = run(capsys, "check", "twophase", "-p", "bug=commit_without_all_prepared",
                       "--no-refinement", "--simulate", "2000", "--depth", "20", "--seed", "1")
    assert code == 12 and "TCConsistent" in out


def test_dot_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.dot"
    code, _, _ = run(capsys, "check", "twophase", "-p", "rm=2", "--dot", str(path))
    assert code == 0
    text = path.read_text()
    assert text.startswith('digraph "twophase"')
    assert text.count("->") > 0 and "peripheries=2" in text


def test_list_shows_entries_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "tcommit" in out and "twophase" in out and "-p rm=3" in out


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "wormspace", "check", "twophase", "-p", "rm=2"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "distinct states found" in out.stdout


def test_workers_and_invariant_selection(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "twophase", "-p", "rm=4", "--workers", "2")
    assert code == 0 and "8258 states generated, 1568 distinct states found" in out
    code, out, _ = run(capsys, "check", "twophase", "-p", "bug=commit_without_all_prepared",
                       "--no-refinement", "--inv", "TPTypeOK")
    assert code == 0
    code, _, err = run(capsys, "check", "twophase", "--inv", "Nope")
    assert code == 150 and "no invariant Nope" in err


def test_liveness_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "twophase", "--liveness")
    assert code == 0 and "Temporal properties were violated" not in out
    itf = tmp_path / "l.itf.json"
    code, out, _ = run(capsys, "check", "twophase", "--liveness", "--no-fairness",
                       "--itf", str(itf))
    assert code == 13 and "EveryRMDecides" in out and "Stuttering" in out
    assert "loop" in json.loads(itf.read_text())
    code, out, _ = run(capsys, "check", "twophase", "--liveness", "--wf", "TMCommit",
                       "--wf", "TMAbort")
    assert code == 13

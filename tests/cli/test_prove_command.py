"""`wormspace prove`: every obligation printed with its verdict; exit 0 only if all hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wormspace.main import main


def test_chain_proof_and_conformance_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "p.json"
    code = main(["prove", "wor.chain", "--json", str(out_file)])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out_file.read_text())
    assert doc["ok"] and doc["obligations"]
    assert all(o["verdict"] == "proved" for o in doc["obligations"])
    assert doc["conformance"]
    assert f"{len(doc['obligations'])} of {len(doc['obligations'])} obligations proved" in out
    assert "Conformance (symbolic encoding vs explicit model): holds" in out


def test_a_seeded_bug_fails_an_obligation_with_a_cti(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["prove", "wor.paxos", "-p", "bug=shared_ballots", "--no-conformance"])
    out = capsys.readouterr().out
    assert code == 12
    assert "NOT all proved" in out
    assert "cti" in out and "ballot" in out


def test_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prove", "twophase"]) == 150
    assert "no proof suite" in capsys.readouterr().err

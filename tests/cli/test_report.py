"""`wormspace report`: the Markdown and HTML say what the JSON results say."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from wormspace.main import main


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--out", str(out), "--no-proofs"]) == 0
    return out


def test_report_files_exist(report_dir: Path) -> None:
    for name in ("index.md", "index.html", "report.json"):
        assert (report_dir / name).stat().st_size > 0
    assert list((report_dir / "svg").glob("growth-*.svg"))
    assert list((report_dir / "svg").glob("trace-*.svg"))


def test_markdown_numbers_match_the_json(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    md = (report_dir / "index.md").read_text()
    assert report["checks"], "the matrix ran no check"
    for row in report["checks"]:
        r = row["result"]
        line = next(x for x in md.splitlines() if f"(#{_rid(row)})" in x)
        # Cells split on unescaped pipes (a parameter value may hold an escaped one).
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        assert cells[3] == f"{r['distinct']:,}" and cells[4] == f"{r['generated']:,}"
        assert cells[5] == str(r["depth"])
        assert cells[7] in ("pass", "caught")
        assert f"Reproduce: `{row['command']}`" in md
    golden = next(r for r in report["checks"] if r["command"] == "wormspace check twophase -p rm=3")
    assert (golden["result"]["distinct"], golden["result"]["generated"]) == (288, 1146)


def test_html_numbers_match_the_json(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    html = (report_dir / "index.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    for row in report["checks"]:
        r = row["result"]
        assert re.search(rf'href="#{re.escape(_rid(row))}">.*?<td class="num">'
                         rf'{r["distinct"]:,}</td><td class="num">{r["generated"]:,}</td>', html)
    assert html.count("<svg") >= len(report["checks"])


def test_campaigns_run_per_layer_and_their_numbers_are_shown(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    md = (report_dir / "index.md").read_text()
    html = (report_dir / "index.html").read_text()
    layers = {c["layer"].split()[0] for c in report["campaigns"]}
    assert layers == {"wor", "wos", "wormpaxos", "wormlog", "wormtx"}
    assert any(c["where"] == "simulator" for c in report["campaigns"])
    for c in report["campaigns"]:
        assert c["violations"] == 0 and c["operations"] > 0 and c["events"] > 0
        line = next(x for x in md.splitlines() if f"`{c['command']}`" in x)
        cells = [x.strip() for x in line.strip("|").split("|")]
        assert cells[3] == f"{c['operations']:,}" and cells[5] == f"{c['events']:,}"
        assert f"<td class='num'>{c['events']:,}</td>" in html


def test_seeded_bug_is_caught_with_a_chart(report_dir: Path) -> None:
    report = json.loads((report_dir / "report.json").read_text())
    bug = [r for r in report["checks"] if r["expect"] == "violation"]
    assert bug and all(r["result"]["result"] != "ok" for r in bug)
    svg = (report_dir / "svg" / f"trace-{_rid(bug[0])}.svg").read_text()
    assert "<svg" in svg and "TMCommit" in svg


def test_a_missed_expectation_fails_the_report(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from wormspace import report as rep

    monkeypatch.setattr(rep, "MATRIX", (rep.Row("example", "twophase", {"rm": 2},
                                                 expect="violation"),))
    assert main(["report", "--out", str(tmp_path), "--no-proofs", "--no-campaigns"]) == 1
    assert "MISSED" in (tmp_path / "index.md").read_text()


def _rid(row: dict) -> str:  # type: ignore[type-arg]
    from wormspace.checker.report import row_id

    return row_id(row)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.browser
def test_html_renders_in_headless_chromium_without_console_errors(report_dir: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, but CI must run the browser test")
        pytest.skip("chromium not installed")
    profile = report_dir / "chrome-profile"
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=2000", "--dump-dom", (report_dir / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "WormSpace invariant report" in out.stdout
    assert "<svg" in out.stdout and "288" in out.stdout
    console = [line for line in out.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console


def test_layered_vs_flat_pairs_rows_that_differ_only_in_the_lower_layer() -> None:
    from wormspace.report import layering

    def row(lower: str, distinct: int, seconds: float,
            workload: str = "alloc1/alloc2") -> dict:  # type: ignore[type-arg]
        params = {"workload": workload, "lower": lower}
        if lower == "wor.paxos":
            params["rounds"] = 2
        return {"module": "wos.segments", "command": f"wormspace check wos.segments {lower}",
                "result": {"params": params, "distinct": distinct, "seconds": seconds}}

    comp = layering([row("wor", 973, 0.2), row("wor.paxos", 294_926, 126.0),
                     row("wor", 5, 1.0, workload="check")])
    assert len(comp) == 1 and len(comp[0]["rows"]) == 1
    cells = comp[0]["rows"][0]
    assert cells[1] == "973" and cells[2] == "294,926" and cells[3] == "303x"
    assert layering([row("wor", 973, 0.2)]) == []

"""``wormspace report``: run the configured matrix of checks and proofs and write the report.

The matrix is data (``MATRIX``): layer, registered name, parameters, options, and whether a
violation is expected (seeded bugs must be *caught*). Rows whose model is not registered are
skipped, so the report grows with the layers. The rendering lives in ``wormspace.checker.report``.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from wormspace import __version__
from wormspace.catalog import BY_NAME
from wormspace.checker.registry import instantiate
from wormspace.checker.traces import result_json


@dataclass(frozen=True)
class Row:
    """One check of the matrix."""

    layer: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    symmetry: bool = False
    deadlock: bool = True
    expect: str = "ok"  # or "violation" for a seeded bug
    profiles: tuple[str, ...] = ("quick", "full")


MATRIX: tuple[Row, ...] = (
    Row("example", "tcommit", {"rm": 3}, deadlock=False),
    Row("example", "twophase", {"rm": 3}),
    Row("example", "twophase", {"rm": 3}, symmetry=True),
    Row("example", "twophase", {"rm": 5}),
    Row("example", "twophase", {"rm": 7}, profiles=("full",)),
    Row("example", "twophase", {"rm": 3, "bug": "commit_without_all_prepared"},
        expect="violation"),
    Row("WOR", "wor", {}),
    Row("WOR", "wor.paxos", {}),
    Row("WOR", "wor.paxos", {}, symmetry=True),
    Row("WOR", "wor.paxos", {"rounds": 2, "clients": 1}, symmetry=True, profiles=("full",)),
    Row("WOR", "wor.chain", {}),
    Row("WOR", "wor.chain", {}, symmetry=True),
    Row("WOR", "wor.paxos", {"unsafe": True, "clients": 1}, profiles=("full",)),
    Row("WOS", "wos", {}),
    Row("WOS", "wos.segments", {}),
    Row("WOS", "wos", {"workload": "alloc1,capture,write1/alloc2,trim,read"}),
    Row("WOS", "wos.segments", {"workload": "alloc1,capture,write1/alloc2,trim,read"}),
    Row("WOS", "wos.segments", {"workload": "listen/alloc1,capture,write1"}),
    Row("WOS", "wos.segments", {"workload": "listen/alloc1,capture,write1",
                                "bug": "notify_unwritten"}, expect="violation"),
    Row("WOS", "wos.segments", {"bug": "alloc_without_capture"}, expect="violation"),
    Row("WOS", "wos.segments", {"bug": "trim_not_completed"}, expect="violation"),
    Row("WOS", "wos.segments", {"bug": "batch_write_unchecked"}, expect="violation"),
    Row("WOS", "wos.segments", {"bug": "sealed_accept"}, expect="violation"),
    # Layering made visible: the same alloc race over the atomic WOR and over Paxos-WOR.
    Row("WOS", "wos.segments", {"workload": "alloc1/alloc2", "timeouts": True, "epochs": 1,
                                "lower": "wor"}, profiles=("full",)),
    Row("WOS", "wos.segments", {"workload": "alloc1/alloc2", "timeouts": True, "epochs": 1,
                                "lower": "wor.paxos", "rounds": 2}, profiles=("full",)),
    Row("WOR", "wor.paxos", {"bug": "accept_below_promise"}, expect="violation"),
    Row("WOR", "wor.paxos", {"bug": "ignore_promised_values"}, expect="violation"),
    Row("WOR", "wor.paxos", {"bug": "read_without_repair"}, expect="violation"),
    Row("WOR", "wor.paxos", {"bug": "half_quorum"}, expect="violation"),
    Row("WOR", "wor.paxos", {"bug": "shared_ballots"}, expect="violation"),
    Row("WOR", "wor.paxos", {"bug": "forget_promise"}, expect="violation"),
)

#: Proof suites run by the report (registered names with a ``proof`` entry point).
APP_ROWS: tuple[Row, ...] = (
    Row("apps", "smr", {}),
    Row("apps", "apps.wormpaxos", {}),
    Row("apps", "apps.wormpaxos", {"policy": "rotating", "size": 1}),
    Row("apps", "apps.wormpaxos", {"bug": "no_hole_filling"}, expect="violation"),
    Row("apps", "apps.wormpaxos", {"bug": "no_capture"}, expect="violation"),
    Row("apps", "apps.wormpaxos", {"bug": "ack_before_apply", "policy": "rotating", "size": 1},
        expect="violation"),
    Row("apps", "sharedlog", {}),
    Row("apps", "apps.wormlog", {}),
    Row("apps", "apps.wormlog", {"bug": "duplicate_address"}, expect="violation"),
    Row("apps", "apps.wormlog", {"bug": "fill_overwrites"}, expect="violation"),
    Row("apps", "apps.wormlog", {"bug": "append_ignores_preempted"}, expect="violation"),
    Row("apps", "apps.wormlog", {"bug": "stale_tail"}, expect="violation"),
    Row("apps", "apps.wormtx", {}),
    Row("apps", "apps.wormtx", {"precaptured": True}),
    Row("apps", "apps.wormtx", {"variant": "A8"}),
    Row("apps", "apps.wormtx", {"variant": "A8", "rm": 5, "tms": 3}),
    Row("apps", "apps.wormtx", {"flaky": True}, profiles=("full",)),
    Row("apps", "apps.wormtx", {"bug": "timeout_overwrites_yes"}, expect="violation"),
    Row("apps", "apps.wormtx", {"bug": "partial_commit"}, expect="violation"),
    Row("apps", "apps.wormtx", {"bug": "empty_read_aborts", "variant": "A8"}, expect="violation"),
)
MATRIX += APP_ROWS
#: The real impl/core code, model-checked in a modelled network (refinement_tests/core_model.py).
MATRIX += (
    Row("WOR", "impl.core", {}),
    Row("WOR", "impl.core", {"bug": "read_without_repair", "workload": "write1/read",
                             "crashes": 0, "timeouts": False}, expect="violation"),
    Row("WOR", "impl.core", {"bug": "ack_before_persist", "clients": 1, "workload": "write1,read",
                             "timeouts": False}, expect="violation"),
    Row("WOR", "impl.core", {"bug": "reuse_capture_id", "clients": 1,
                             "workload": "write1,write2", "crashes": 0}, expect="violation"),
    Row("WOR", "impl.core", {"bug": "arbitrary_adopt", "workload": "write1/write2", "rounds": 2,
                             "crashes": 0, "timeouts": False}, expect="violation",
        profiles=("full",)),
)

#: Proof suites: (registered name, parameters as for ``wormspace prove NAME -p K=V``).
PROOFS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("wor.paxos", {}), ("wor.chain", {}), ("wos.segments", {}),
    ("apps.wormpaxos", {}), ("apps.wormpaxos", {"policy": "rotating"}), ("apps.wormlog", {}),
    ("apps.wormtx", {}), ("apps.wormtx", {"variant": "A8"}),
)
#: Proof suites whose conformance check is too slow for the quick profile (seconds measured).
SLOW_CONFORMANCE = {("apps.wormpaxos", "policy=rotating")}  # exhaustive: 95-267 s


def command_for(row: Row) -> str:
    """The command line that reproduces a row."""
    parts = ["wormspace", "check", row.name]
    for k, v in row.params.items():
        parts += ["-p", f"{k}={v}"]
    if row.symmetry:
        parts.append("--symmetry")
    if not row.deadlock:
        parts.append("--no-deadlock")
    return " ".join(parts)


def _available(row: Row) -> bool:
    entry = BY_NAME.get(row.name)
    if entry is None:
        return False
    bug = row.params.get("bug")
    if bug is not None:
        choices = entry.params.get("bug")
        return choices is not None and (not choices.choices or bug in choices.choices)
    return True


def environment() -> dict[str, str]:
    """Versions and machine the report ran on."""
    import networkx
    import z3

    return {
        "wormspace": __version__,
        "python": platform.python_version(),
        "z3": z3.get_version_string(),
        "networkx": networkx.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
    }


def run_checks(profile: str, out: IO[str]) -> list[dict[str, Any]]:
    """Run the matrix rows of a profile; print a progress line per row."""
    from wormspace.checker.explore import check

    rows = [r for r in MATRIX if profile in r.profiles and _available(r)]
    results = []
    for i, row in enumerate(rows, 1):
        entry = BY_NAME[row.name]
        model = instantiate(entry.target, entry.params,
                            {k: str(v) for k, v in row.params.items()}, row.name)
        res = check(model, symmetry=row.symmetry, deadlock=row.deadlock)
        doc = result_json(res)
        results.append({
            "layer": row.layer, "module": row.name, "expect": row.expect,
            "options": {"symmetry": row.symmetry, "no-deadlock": not row.deadlock},
            "invariants": list(model.invariants()), "command": command_for(row),
            "result": doc,
        })
        out.write(f"[{i}/{len(rows)}] {command_for(row)}: {res.result} "
                  f"({res.distinct:,} states, {res.seconds:.2f} s)\n")
        out.flush()
    return results


def run_proofs(out: IO[str], profile: str = "quick") -> list[dict[str, Any]]:
    """Run the registered proof suites (with conformance) that exist."""
    import inspect

    from wormspace.checker.prove import run_suite
    from wormspace.checker.registry import load_attr

    results = []
    for name, params in PROOFS:
        entry = BY_NAME.get(name)
        if entry is None or entry.proof is None:
            continue
        shown = " ".join(f"{k}={v}" for k, v in params.items())
        command = f"wormspace prove {name}" + "".join(f" -p {k}={v}" for k, v in params.items())
        t0 = time.perf_counter()
        suite = load_attr(entry.proof)(**params)
        report = run_suite(suite)
        doc = report.to_json()
        conformance: dict[str, Any] = {}
        if entry.conformance and (profile == "full" or (name, shown) not in SLOW_CONFORMANCE):
            conform = load_attr(entry.conformance)
            accepted = inspect.signature(conform).parameters
            conf = conform(**{k: v for k, v in params.items() if k in accepted})
            conformance = conf.to_json() if hasattr(conf, "to_json") else {}
            conformance["ok"] = bool(getattr(conf, "ok", False))
            conformance["summary"] = "holds" if conformance["ok"] else "FAILS"
        elif entry.conformance:
            command += " --no-conformance"
            conformance = {"ok": True, "summary": "not run in the quick profile (minutes; "
                           "the full profile runs it)"}
        ok = bool(doc.get("ok")) and conformance.get("ok", True)
        results.append({
            "name": name + (f" ({shown})" if shown else ""), "command": command, "ok": ok,
            "seconds": time.perf_counter() - t0,
            "obligations": [
                {"name": o["name"], "verdict": o["verdict"], "seconds": o["seconds"],
                 "detail": o.get("cti") or o.get("detail") or ""}
                for o in doc.get("obligations", [])
            ],
            "conformance": conformance,
        })
        out.write(f"{command}: {'ok' if ok else 'FAILED'} "
                  f"({len(doc.get('obligations', []))} obligations)\n")
    return results


#: Trace-test campaigns per layer: (layer, runs in the quick profile, runs in the full one).
CAMPAIGNS: tuple[tuple[str, int, int], ...] = (
    ("wor", 1, 5), ("wos", 1, 5), ("wormpaxos", 1, 5), ("wormlog", 1, 5), ("wormtx", 1, 5))
#: Simulator schedules (all fault kinds) per profile.
SIM_RUNS = {"quick": 300, "full": 5000}


def _fault_text(faults: dict[str, int]) -> str:
    total = sum(faults.values())
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
    return f"{total} ({kinds})" if kinds else "0"


def run_campaigns(profile: str, out: IO[str]) -> list[dict[str, Any]]:
    """A real-cluster fault campaign per layer and a simulator campaign (issue #7's checks)."""
    from wormspace.refinement_tests.campaign import FAULTS, Options, run_campaign

    rows = []
    for layer, quick, full in CAMPAIGNS:
        runs = quick if profile == "quick" else full
        opts = Options(layer=layer, ops=120, faults=FAULTS, seed=7, runs=runs)
        command = f"wormspace refine --layer {layer} --faults all --ops 120 --seed 7 --runs {runs}"
        doc = run_campaign(opts).to_json()
        rows.append({"layer": layer, "where": "real cluster (3 servers)", "runs": doc["runs"],
                     "operations": doc["operations"], "faults": _fault_text(doc["faults"]),
                     "events": doc["events"], "violations": len(doc["violations"]),
                     "events_per_second": doc["events_per_second"], "command": command})
        out.write(f"{command}: {len(doc['violations'])} violations ({doc['operations']} "
                  f"operations, {doc['events']:,} events)\n")
        out.flush()
    from wormspace.impl.sim.schedule import FAULT_KINDS
    from wormspace.refinement_tests.sim_checks import run_campaign as sim_campaign

    runs = SIM_RUNS[profile]
    res = sim_campaign(layer="wor", faults=list(FAULT_KINDS), seed=0, runs=runs,
                       keep_dir=None)
    doc = res.as_json()
    command = f"wormspace refine --layer wor --sim --faults all --seed 0 --runs {runs}"
    rows.append({"layer": "wor (wor.paxos + atomic WOR)", "where": "simulator",
                 "runs": doc["runs"], "operations": doc["operations"],
                 "faults": _fault_text(doc["faults"]), "events": doc["events"],
                 "violations": len(doc["violations"]),
                 "events_per_second": doc["events_per_second"], "command": command})
    out.write(f"{command}: {len(doc['violations'])} violations ({doc['runs']} schedules)\n")
    return rows


def layering(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Layered vs flat: rows of one module whose configurations differ only in ``lower``."""
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        params = {k: v for k, v in row["result"]["params"].items()
                  if k not in ("lower", "rounds", "acceptors")}
        return (row["module"], tuple(sorted(params.items())))

    rows = []
    layered = {key(r): r for r in checks if r["result"]["params"].get("lower") == "wor"}
    for flat in checks:
        if flat["result"]["params"].get("lower") != "wor.paxos":
            continue
        lay = layered.get(key(flat))
        if lay is None:
            continue
        a, b = lay["result"], flat["result"]
        rows.append([flat["command"], f"{a['distinct']:,}", f"{b['distinct']:,}",
                     f"{b['distinct'] / max(a['distinct'], 1):,.0f}x",
                     f"{a['seconds']:.2f}", f"{b['seconds']:.2f}",
                     f"{b['seconds'] / max(a['seconds'], 1e-9):,.0f}x"])
    if not rows:
        return []
    return [{"title": "Layered vs flat", "columns": [
        "configuration (flat)", "states over wor", "states over wor.paxos", "ratio",
        "seconds over wor", "seconds over wor.paxos", "ratio"], "rows": rows,
        "note": "The same upper-layer configuration explored over the atomic WOR spec (layered) "
                "and over the Paxos-WOR protocol (flat): the reduction that verifying the WOR "
                "layer once buys. The quick profile leaves this out (the flat run takes "
                "minutes); see bench/RESULTS.md."}]


def build(profile: str, out: IO[str], *, proofs: bool = True, campaigns: bool = True
          ) -> dict[str, Any]:
    """Run everything of a profile and return the report dict."""
    t0 = time.perf_counter()
    checks = run_checks(profile, out)
    proof_rows = run_proofs(out, profile) if proofs else []
    campaign_rows = run_campaigns(profile, out) if campaigns else []
    return {
        "title": "WormSpace invariant report",
        "generated": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "profile": profile,
        "command": f"wormspace report --profile {profile}",
        "seconds": round(time.perf_counter() - t0, 2),
        "environment": environment(),
        "checks": checks,
        "proofs": proof_rows,
        "comparisons": layering(checks),
        "campaigns": campaign_rows,
    }


def main(profile: str, out_dir: Path, *, proofs: bool = True, campaigns: bool = True) -> int:
    """Build and write the report; exit 0 only if every row has its expected verdict."""
    from wormspace.checker.report import verdict, write_report

    report = build(profile, sys.stdout, proofs=proofs, campaigns=campaigns)
    paths = write_report(report, out_dir)
    bad = [r for r in report["checks"] if verdict(r) not in ("pass", "caught")]
    bad_proofs = [p for p in report["proofs"] if not p["ok"]]
    bad_proofs += [c for c in report["campaigns"] if c["violations"]]
    sys.stdout.write(f"Wrote {', '.join(str(p) for p in paths)} "
                     f"({len(report['checks'])} checks, {len(report['proofs'])} proof suites, "
                     f"{report['seconds']:.1f} s)\n")
    if bad or bad_proofs:
        names = [r["command"] for r in bad] + [p["command"] for p in bad_proofs]
        sys.stdout.write("Unexpected verdicts: " + "; ".join(names) + "\n")
        return 1
    return 0

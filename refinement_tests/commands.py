"""``wormspace refine`` (a fault campaign with its traces checked) and ``wormspace trace-check``
(check recorded trace files).

``register(subparsers)`` adds both to the ``wormspace`` parser. Output, for both::

    runs              1
    operations        154
    faults injected   7 (kill 1, loss 5, tear 1)
    events checked    2,147
    events/s          58,640
    violations        0

``--json FILE`` writes ``runs``, ``operations``, ``faults`` (per kind), ``events``,
``events_per_second`` and ``violations`` (a list: check, message, trace events), and the kept
trace directories. On a violation each one is printed with its trace excerpt and the directory
holding the whole trace, which ``trace-check`` checks again.

Exit codes: 0 no violation; 12 violations (as ``wormspace check`` for an invariant or
refinement); 2 bad usage, or a trace file that cannot be read (named, with its line); 3 the
campaign's cluster could not be started.

``refine --sim`` runs the same layer in the deterministic simulator instead
(``wormspace.impl.sim.campaign.run_campaign`` with the checks of ``sim_checks``), imported only
then.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CLUSTER = 3
EXIT_VIOLATION = 12
SHOW_VIOLATIONS = 10


#: The names the parser offers (the campaign module, heavy to import, has the same tuples:
#: a test keeps them equal). Kept here so that building the ``wormspace`` parser stays cheap.
LAYERS = ("wor", "wos", "wormpaxos", "wormlog", "wormtx")
FAULTS = ("kill", "tear", "pause", "partition", "split", "loss", "dup", "reorder", "delay",
          "stall")
MODELS = ("acceptor", "sharedlog", "smr", "tcommit", "wor", "wor.paxos", "wormlog", "wormpaxos",
          "wormtx", "wos")


def register(subparsers: Any) -> None:
    """Add ``refine`` and ``trace-check`` to the ``wormspace`` parser."""
    r = subparsers.add_parser(
        "refine", help="run a fault campaign on a real local cluster and check its traces",
        description="Start a local cluster with tracing, inject faults through proxies and "
                    "signals while clients run the layer's workload, then check the merged "
                    "trace against the layer's contract.")
    r.add_argument("--layer", required=True, choices=LAYERS)
    r.add_argument("--protocol", choices=["paxos", "chain"], default="paxos")
    r.add_argument("--nodes", type=int, default=3, metavar="N", help="servers (default 3)")
    r.add_argument("--ops", type=int, dest="ops_given", metavar="N",
                   help="operations per run, all clients together (default 150; with --sim, "
                        "calls per client and schedule, default the simulator's)")
    r.add_argument("--faults", default="", metavar="LIST",
                   help=f"comma-separated, or 'all': {','.join(FAULTS)} (default: none)")
    r.add_argument("--seed", type=int, default=0, metavar="S", help="first run's seed")
    r.add_argument("--runs", type=int, dest="runs_given", metavar="N",
                   help="runs, seeds S, S+1, ... (default 1; with --sim 1000 schedules)")
    r.add_argument("--clients", type=int, default=3, metavar="N")
    r.add_argument("--bug", action="append", default=[], metavar="NAME",
                   help="switch on a planted bug (repeatable): serve_trimmed, "
                        "ack_before_persist, arbitrary_adopt, read_without_repair, "
                        "reuse_capture_id")
    r.add_argument("--keep", metavar="DIR", help="keep every run's trace under DIR")
    r.add_argument("--sim", action="store_true",
                   help="run the campaign in the deterministic simulator instead")
    r.add_argument("--json", metavar="FILE", help="write the result as JSON")
    r.set_defaults(func=cmd_refine)

    t = subparsers.add_parser(
        "trace-check", help="check recorded trace files (NDJSON) against a layer's contract",
        description="Read trace files (or directories of them: every *.ndjson), merge them by "
                    "time, and check them. A campaign.json beside the files supplies the "
                    "protocol, server count and segment size unless given here.")
    t.add_argument("files", nargs="+", metavar="FILE")
    t.add_argument("--model", required=True, choices=MODELS)
    t.add_argument("--protocol", choices=["paxos", "chain"])
    t.add_argument("--servers", type=int, metavar="N", help="replicas per segment")
    t.add_argument("--segment-size", type=int, metavar="SIZE")
    t.add_argument("--json", metavar="FILE", help="write the result as JSON")
    t.set_defaults(func=cmd_trace_check)


# -- refine ----------------------------------------------------------------------------------------


def _faults(text: str) -> tuple[str, ...]:
    if text.strip() == "all":
        return FAULTS
    return tuple(f.strip() for f in text.split(",") if f.strip())


def cmd_refine(args: argparse.Namespace) -> int:
    """``wormspace refine``."""
    from wormspace.impl.net.local_cluster import ClusterError

    from .campaign import CampaignError, Options, run_campaign

    try:
        options = Options(layer=args.layer, protocol=args.protocol, nodes=args.nodes,
                          ops=args.ops_given or 150, faults=_faults(args.faults), seed=args.seed,
                          runs=args.runs_given or 1, clients=args.clients, bugs=tuple(args.bug),
                          keep=args.keep)
    except CampaignError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_USAGE
    if args.sim:
        return _refine_sim(args, options)
    print(f"refine {options.layer}: {options.protocol}-WOR, {options.nodes} servers, "
          f"{options.runs} run(s) from seed {options.seed}, faults: "
          f"{', '.join(options.faults) or 'none'}"
          + (f", planted bugs: {', '.join(options.bugs)}" if options.bugs else ""), flush=True)
    # A campaign owns server processes: stop them on SIGTERM too (the finally blocks run).
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_campaign(options, progress=_progress)
    except ClusterError as exc:
        sys.stderr.write(f"Error: the campaign's cluster failed: {exc}\n")
        return EXIT_CLUSTER
    finally:
        signal.signal(signal.SIGTERM, previous)
    doc = result.to_json()
    _print_summary(doc["runs"], doc["operations"], doc["faults"], doc["events"],
                   doc["events_per_second"], doc["violations"], options.layer)
    if result.stuck:
        print(f"stuck calls       {result.stuck} (given up after the campaign's deadline: a "
              "liveness problem, not a safety violation)")
    return _finish(args.json, doc, len(doc["violations"]))


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _progress(run: Any) -> None:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(run.faults.items())) or "none"
    verdict = f"{len(run.violations)} VIOLATION(S)" if run.violations else "ok"
    print(f"  seed {run.seed}: {run.operations} operations, faults: {faults}, "
          f"{run.events} events, {run.seconds:.1f} s: {verdict}", flush=True)


def _refine_sim(args: argparse.Namespace, options: Any) -> int:
    """``refine --sim``: the simulator's campaign with the simulator checks, if installed."""
    try:
        from wormspace.refinement_tests import sim_checks
    except ImportError as exc:
        sys.stderr.write(f"Error: --sim needs the simulator (wormspace.impl.sim and "
                         f"refinement_tests/sim_checks.py), which is not available: {exc}\n")
        return EXIT_USAGE
    run = getattr(sim_checks, "run_campaign", None)
    if run is None:
        sys.stderr.write("Error: --sim: refinement_tests/sim_checks.py has no run_campaign\n")
        return EXIT_USAGE
    from wormspace.impl.net.server import bugs_from_names

    extra = {} if args.ops_given is None else {"ops": args.ops_given}
    try:
        faults = options.faults
        if args.faults.strip() == "all":  # the simulator's own kinds (no split, no torn files)
            from wormspace.impl.sim.schedule import FAULT_KINDS

            faults = tuple(FAULT_KINDS)
        result = run(layer=options.layer, protocol=options.protocol, nodes=options.nodes,
                     clients=min(options.clients, 3), faults=faults or None,
                     seed=options.seed, runs=args.runs_given or 1000,
                     bugs=bugs_from_names(options.bugs), keep_dir=args.keep, **extra)
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"Error: --sim: {exc}\n")
        return EXIT_USAGE
    doc = result.as_json() if hasattr(result, "as_json") else dict(result)
    print(f"refine --sim {options.layer}: {doc.get('runs', 0)} schedules from seed "
          f"{options.seed}, {doc.get('schedules_per_second', 0):,.0f} schedules/s")
    _print_summary(doc.get("runs", 0), doc.get("operations", 0), doc.get("faults", {}),
                   doc.get("events", 0), doc.get("events_per_second", 0.0),
                   [dict(v, trace=doc.get("trace")) for v in doc.get("violations", [])],
                   "wor.paxos")  # the simulator's checks: protocol model + atomic WOR
    return _finish(args.json, doc, len(doc.get("violations", [])))


# -- trace-check -----------------------------------------------------------------------------------


def cmd_trace_check(args: argparse.Namespace) -> int:
    """``wormspace trace-check``."""
    import time

    from wormspace.impl.trace import TraceError

    from .campaign import CampaignError, check_trace, read_trace_files

    described = _campaign_json(args.files)
    protocol = args.protocol or described.get("protocol", "paxos")
    servers = args.servers or described.get("nodes")
    size = args.segment_size or described.get("segment_size")
    try:
        events = read_trace_files(args.files)
        t0 = time.perf_counter()
        violations = check_trace(events, args.model, protocol=protocol, servers=servers,
                                 segment_size=size)
        seconds = time.perf_counter() - t0
    except (TraceError, CampaignError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_USAGE
    faults: dict[str, int] = {}
    for ev in events:
        if ev["kind"] == "fault" and ev.get("fault") not in ("heal", "resume", "restart"):
            faults[ev["fault"]] = faults.get(ev["fault"], 0) + 1
    where = ", ".join(args.files)
    doc: dict[str, Any] = {
        "runs": 1, "operations": sum(1 for e in events if e["kind"] == "invoke"),
        "faults": dict(sorted(faults.items())), "events": len(events),
        "events_per_second": round(len(events) / seconds, 1) if seconds > 0 else 0.0,
        "violations": [{"check": v.check, "message": v.message, "trace": where,
                        "events": [dict(e) for e in v.events[:20]]} for v in violations],
    }
    print(f"trace-check {args.model}: {len(events)} events from {where}")
    _print_summary(doc["runs"], doc["operations"], doc["faults"], doc["events"],
                   doc["events_per_second"], doc["violations"], args.model)
    return _finish(args.json, doc, len(violations))


def _campaign_json(files: Sequence[str]) -> dict[str, Any]:
    """The ``campaign.json`` beside the first file (or in the first directory), if any."""
    first = Path(files[0])
    path = (first if first.is_dir() else first.parent) / "campaign.json"
    try:
        doc = json.loads(path.read_text())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


# -- output ----------------------------------------------------------------------------------------


def _print_summary(runs: int, operations: int, faults: Mapping[str, int], events: int,
                   rate: float, violations: Sequence[Mapping[str, Any]], model: str) -> None:
    total = sum(faults.values())
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
    print(f"runs              {runs}")
    print(f"operations        {operations:,}")
    print(f"faults injected   {total:,}" + (f" ({kinds})" if kinds else ""))
    print(f"events checked    {events:,}")
    print(f"events/s          {rate:,.0f}")
    print(f"violations        {len(violations)}")
    # The first violation of each check first: one of each kind explains more than ten alike.
    firsts: list[Mapping[str, Any]] = []
    for v in violations:
        if all(f.get("check") != v.get("check") for f in firsts):
            firsts.append(v)
    shown = (firsts + [v for v in violations if v not in firsts])[:SHOW_VIOLATIONS]
    for v in shown:
        # (the simulator's violations say ``reason`` and carry an ``excerpt`` of lines)
        print(f"\nVIOLATION [{v.get('check')}] {v.get('message') or v.get('reason')}")
        for ev in v.get("events", [])[:12]:
            print("  " + json.dumps(ev, separators=(",", ":"))[:300])
        for line in v.get("excerpt", [])[:14] if not v.get("events") else []:
            print(f"  {line}")
    if len(violations) > len(shown):
        print(f"\n... and {len(violations) - len(shown)} more violations (all of them: --json)")
    for t in sorted({str(v["trace"]) for v in violations if v.get("trace")}):
        print(f"\ntrace kept in {t}\n  replay: wormspace trace-check {t} --model {model}")


def _finish(json_path: str | None, doc: Mapping[str, Any], violations: int) -> int:
    if json_path:
        try:
            Path(json_path).write_text(json.dumps(doc, indent=1, default=str) + "\n")
        except OSError as exc:
            sys.stderr.write(f"Error: cannot write {json_path}: {exc.strerror}\n")
            return EXIT_USAGE
    return EXIT_VIOLATION if violations else EXIT_OK


__all__ = ["cmd_refine", "cmd_trace_check", "register"]


"""The ``wormspace`` command line.

Subcommands: ``list`` (the catalog), ``check`` (explore a model: BFS or simulation). Exit codes
follow TLC: 0 no error, 11 deadlock, 12 invariant or refinement violated, 13 liveness, 150 a bad
model, 151 bad parameters, 2 bad usage.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wormspace import __version__
from wormspace.catalog import BY_NAME, ENTRIES
from wormspace.checker.model import Model, ModelError, ParameterError
from wormspace.checker.registry import Entry, convert, instantiate, parse_assignments
from wormspace.checker.result import EXIT_BAD_MODEL, EXIT_BAD_PARAMS, EXIT_USAGE, CheckResult


class _Usage(Exception):
    """Bad usage detected after argument parsing."""


def _entry_and_model(name: str, raw_params: Sequence[str]) -> tuple[Entry | None, Model[Any]]:
    raw = parse_assignments(raw_params)
    entry = BY_NAME.get(name)
    if entry is not None:
        return entry, instantiate(entry.target, entry.params, raw, name)
    if ":" not in name:
        known = ", ".join(e.name for e in ENTRIES)
        raise ModelError(f"unknown model {name!r}; registered: {known} "
                         "(or give package.module:attribute)")
    return None, instantiate(name, {}, raw, name)


def cmd_list(args: argparse.Namespace) -> int:
    """Print the catalog."""
    out = sys.stdout
    for kind, title in (("spec", "Specifications"), ("model", "Models")):
        out.write(f"{title}:\n")
        for e in ENTRIES:
            if e.kind != kind:
                continue
            extra = f" (refines {e.refines})" if e.refines else ""
            proof = " [prove]" if e.proof else ""
            out.write(f"  {e.name:<18} {e.description}{extra}{proof}\n")
            for pname, p in e.params.items():
                choices = f"; one of {', '.join(repr(c) for c in p.choices)}" if p.choices else ""
                out.write(f"      -p {pname}={p.default!r:<8} {p.help}{choices}\n")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Explore a model and report like TLC."""
    from wormspace.checker.explore import check
    from wormspace.checker.output import ProgressPrinter, print_header, print_result
    from wormspace.checker.simulate import simulate

    if args.workers < 1:
        raise _Usage("--workers must be at least 1")
    if args.checkpoint is not None and not (args.disk or args.recover):
        raise _Usage("--checkpoint needs --disk DIR (where the checkpoint is written)")
    if args.recover and args.disk:
        raise _Usage("--recover DIR resumes in DIR; do not also give --disk")
    if args.simulate is not None and args.depth is None:
        raise _Usage("--simulate N needs --depth D")
    if args.simulate is None and (args.depth is not None or args.seed is not None):
        raise _Usage("--depth and --seed go with --simulate N")
    _entry, model = _entry_and_model(args.name, args.param)
    out = sys.stdout
    options = []
    if not args.deadlock:
        options.append("deadlock check off")
    if args.symmetry:
        options.append("symmetry")
    if args.workers > 1:
        options.append(f"{args.workers} workers" + (f" on Ray ({args.ray})" if args.ray else ""))
    ref = model.refinement() if args.refinement else None
    if ref is not None:
        options.append(f"refinement of {ref.spec.name}")
    if args.simulate is not None:
        options.append(f"simulation: {args.simulate} behaviours, depth {args.depth}, "
                       f"seed {args.seed or 0}")
    print_header(out, model.name, model.params, options)
    printer = ProgressPrinter(out)
    try:
        if args.simulate is not None:
            if args.symmetry:
                raise _Usage("--symmetry applies to exhaustive search, not to --simulate")
            result: CheckResult = simulate(
                model, behaviours=args.simulate, depth=args.depth, seed=args.seed or 0,
                deadlock=args.deadlock, refinement=args.refinement, progress=printer,
                progress_interval=args.progress_interval)
        else:
            result = check(model, deadlock=args.deadlock, symmetry=args.symmetry,
                           refinement=args.refinement, progress=printer,
                           progress_interval=args.progress_interval, workers=args.workers,
                           invariants=args.inv or None, disk=args.recover or args.disk,
                           checkpoint_minutes=args.checkpoint, recover=bool(args.recover),
                           ray_address=args.ray)
    finally:
        printer.close()
    if args.liveness and result.ok and args.simulate is None:
        from wormspace.checker.liveness_output import run_liveness_cli

        # Safety held; now the temporal properties (this writes --json/--trace/--itf itself).
        out.write("Checking temporal properties...\n")
        return run_liveness_cli(model, args, out)
    print_result(out, result, coverage=not args.no_coverage)
    _write_outputs(args, model, result)
    return result.exit_code


def cmd_prove(args: argparse.Namespace) -> int:
    """Run a model's Z3 proof suite and its conformance check; exit 0 only if all hold."""
    from wormspace.checker.prove import Obligation, run_suite
    from wormspace.checker.registry import load_attr

    entry = BY_NAME.get(args.name)
    if entry is None or entry.proof is None:
        provable = ", ".join(e.name for e in ENTRIES if e.proof) or "none yet"
        raise ModelError(f"no proof suite for {args.name!r} (provable: {provable})")
    out = sys.stdout
    raw = parse_assignments(args.param)
    kwargs = {k: convert(k, v, entry.params[k].default) if k in entry.params else v
              for k, v in raw.items()}
    suite = load_attr(entry.proof)(**kwargs)
    out.write(f"Proving {suite.name}: {len(suite.actions)} actions, one obligation per "
              "(action, invariant conjunct), plus initiation and safety\n")

    def show(ob: Obligation) -> None:
        out.write(f"  {ob.verdict:<8} {ob.seconds:7.3f} s  {ob.name}\n")
        if ob.verdict != "proved" and ob.cti:
            out.write("    " + ob.cti.replace("\n", "\n    ") + "\n")
        out.flush()

    report = run_suite(suite, progress=show)
    doc: dict[str, Any] = report.to_json()
    ok = report.ok
    if entry.conformance and not args.no_conformance:
        conform = load_attr(entry.conformance)
        accepted = inspect.signature(conform).parameters
        conf = conform(**{k: v for k, v in kwargs.items() if k in accepted})
        doc["conformance"] = conf.to_json()
        out.write(f"Conformance (symbolic encoding vs explicit model): {conf.summary}\n")
        ok = ok and bool(conf.ok)
    proved = sum(1 for o in report.obligations if o.verdict == "proved")
    out.write(f"{proved} of {len(report.obligations)} obligations proved in "
              f"{report.seconds:.2f} s: {'all proved' if report.ok else 'NOT all proved'}.\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        out.write(f"Wrote the proof report to {args.json}\n")
    return 0 if ok else 12


def cmd_report(args: argparse.Namespace) -> int:
    """Run the report matrix and write Markdown, HTML and JSON."""
    from wormspace.report import main as report_main

    return report_main(args.profile, Path(args.out), proofs=not args.no_proofs,
                       campaigns=not args.no_campaigns)


def _write_outputs(args: argparse.Namespace, model: Model[Any], result: CheckResult) -> None:
    from wormspace.checker.traces import itf_document, result_json, trace_json

    def write(path: str, text: str, what: str) -> None:
        p = Path(path)
        if p.parent and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        sys.stdout.write(f"Wrote {what} to {p}\n")

    if args.json:
        write(args.json, json.dumps(result_json(result), indent=2) + "\n", "the result")
    if args.trace:
        doc = {"model": result.model, "params": result.params, "result": result.result,
               "violated": result.violated, "trace": trace_json(result.trace)}
        write(args.trace, json.dumps(doc, indent=2, default=str) + "\n", "the trace (JSON)")
    if args.itf:
        write(args.itf, json.dumps(itf_document(result), indent=2) + "\n", "the trace (ITF)")
    if args.dot:
        from wormspace.checker.graph import state_graph, to_dot

        g = state_graph(model, symmetry=args.symmetry)
        write(args.dot, to_dot(model, g),
              f"the state graph ({g.number_of_nodes()} states, {g.number_of_edges()} edges)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs' examples)."""
    parser = argparse.ArgumentParser(
        prog="wormspace",
        description="WormSpace: layered models of write-once registers, an explicit-state "
        "model checker, Z3 proofs and a networked implementation checked against its models.",
    )
    parser.add_argument("--version", action="version", version=f"wormspace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="list registered specifications and models")
    p_list.set_defaults(func=cmd_list)

    p_check = sub.add_parser("check", help="model-check a registered model (or module:attr)")
    p_check.add_argument("name", metavar="NAME", help="registered name or package.module:attribute")
    p_check.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                         help="set a model parameter (repeatable)")
    p_check.add_argument("--no-deadlock", dest="deadlock", action="store_false",
                         help="do not report states without successors")
    p_check.add_argument("--symmetry", action="store_true",
                         help="exact symmetry reduction (one state per orbit)")
    p_check.add_argument("--no-refinement", dest="refinement", action="store_false",
                         help="do not check the model's refinement mapping")
    p_check.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p_check.add_argument("--trace", metavar="FILE", help="write the counterexample as JSON")
    p_check.add_argument("--itf", metavar="FILE", help="write the counterexample as ITF")
    p_check.add_argument("--dot", metavar="FILE", help="write the state graph as Graphviz DOT")
    p_check.add_argument("--simulate", type=int, metavar="N",
                         help="random simulation of N behaviours instead of exhaustive search")
    p_check.add_argument("--depth", type=int, metavar="D", help="steps per simulated behaviour")
    p_check.add_argument("--seed", type=int, metavar="S", help="simulation seed (default 0)")
    p_check.add_argument("--workers", type=int, default=1, metavar="N",
                         help="explore with N processes (same counts as one; default 1)")
    p_check.add_argument("--ray", metavar="ADDRESS",
                         help="explore on Ray actors (--workers of them): 'local' starts a "
                         "private Ray instance, 'auto' or HOST:PORT joins a Ray cluster")
    p_check.add_argument("--disk", metavar="DIR",
                         help="compact store: 8-byte fingerprints in memory, frontier and parent "
                         "pointers in DIR (a run bounded by disk, not memory)")
    p_check.add_argument("--checkpoint", type=float, metavar="MINUTES",
                         help="with --disk: save a checkpoint at most every MINUTES")
    p_check.add_argument("--recover", metavar="DIR", help="resume the checkpointed run in DIR")
    p_check.add_argument("--inv", action="append", metavar="NAME",
                         help="check only this invariant (repeatable; default: all)")
    p_check.add_argument("--liveness", action="store_true",
                         help="after the safety check, check the model's temporal properties "
                         "under its fairness (exit 13 with a lasso when one fails)")
    p_check.add_argument("--property", action="append", metavar="NAME",
                         help="with --liveness: check only this property (repeatable)")
    p_check.add_argument("--no-fairness", action="store_true",
                         help="with --liveness: drop the model's fairness conditions")
    p_check.add_argument("--wf", action="append", metavar="ACTION",
                         help="with --liveness: weak fairness of ACTION, per parameter value "
                         "(repeatable; replaces the model's fairness)")
    p_check.add_argument("--sf", action="append", metavar="ACTION",
                         help="with --liveness: strong fairness of ACTION (as --wf)")
    p_check.add_argument("--max-states", type=int, metavar="N",
                         help="with --liveness: refuse state graphs larger than N")
    p_check.add_argument("--no-coverage", action="store_true", help="omit coverage statistics")
    p_check.add_argument("--progress-interval", type=float, default=5.0, metavar="SECONDS",
                         help="seconds between progress lines (default 5)")
    p_check.set_defaults(func=cmd_check)

    p_prove = sub.add_parser("prove", help="prove a model's inductive invariant with Z3")
    p_prove.add_argument("name", metavar="NAME", help="registered model with a proof suite")
    p_prove.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                         help="suite parameter, e.g. bug=half_quorum")
    p_prove.add_argument("--json", metavar="FILE", help="write every obligation as JSON")
    p_prove.add_argument("--no-conformance", action="store_true",
                         help="skip the bounded conformance check of encoding vs model")
    p_prove.set_defaults(func=cmd_prove)

    p_report = sub.add_parser("report", help="run the check matrix and write the invariant report")
    p_report.add_argument("--profile", choices=("quick", "full"), default="quick",
                          help="quick (minutes, committed in docs/reports) or full")
    p_report.add_argument("--out", metavar="DIR", default="docs/reports",
                          help="output directory (default docs/reports)")
    p_report.add_argument("--no-proofs", action="store_true", help="skip the Z3 proof suites")
    p_report.add_argument("--no-campaigns", action="store_true",
                          help="skip the trace-test campaigns (real cluster and simulator)")
    p_report.set_defaults(func=cmd_report)

    # The implementation's commands (server, cluster, kv, log, tx, demo) register themselves.
    from wormspace.impl import commands as impl_commands

    impl_commands.register(sub)
    # Fault campaigns on real clusters and trace checks (refine, trace-check).
    from wormspace.refinement_tests import commands as refine_commands

    refine_commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args.func(args)
        return code
    except _Usage as exc:
        parser.error(str(exc))  # exits with 2
        return EXIT_USAGE
    except ParameterError as exc:
        sys.stderr.write(f"Error: bad parameter: {exc}\n")
        return EXIT_BAD_PARAMS
    except ModelError as exc:
        sys.stderr.write(f"Error: bad model: {exc}\n")
        return EXIT_BAD_MODEL
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130

"""Liveness results for people and scripts: TLC-style lasso text, JSON, ITF, and the CLI hook.

TLC prints a liveness counterexample as the states of the prefix and cycle, then either
``Back to state K: <Action>`` (the cycle returns to state K) or ``State N: Stuttering`` (the
behaviour stays in its last state forever); we print the same lines. ITF carries the cycle's
start as ``"loop"`` (the ITF ADR's top-level field, which itf-rs reads) and in ``#meta``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .liveness import (
    Fairness,
    LivenessResult,
    Property,
    check_liveness,
    model_fairness,
    model_properties,
    strong,
    weak,
)
from .model import Model, ModelError
from .output import print_coverage, timestamp
from .traces import format_trace, itf_document, result_json, trace_json


def format_lasso(r: LivenessResult) -> str:
    """The counterexample as TLC prints a lasso: states, then ``Back to state K`` or
    ``Stuttering``."""
    text = format_trace(r.trace)
    if r.loop is None:
        return text
    if r.loop_action is None:
        return text + f"\nState {len(r.trace) + 1}: Stuttering\n"
    return text + f"\nBack to state {r.loop + 1}: <{r.loop_label}>\n"


def print_liveness_result(out: IO[str], r: LivenessResult, *, coverage: bool = True) -> None:
    """The verdict, lasso, counts and coverage, in TLC's words where TLC has them."""
    out.write(f"Checking temporal properties for the complete state space with {r.distinct} "
              f"total distinct states at ({timestamp()})\n")
    if r.fairness:
        out.write(f"Fairness: {', '.join(r.fairness)}\n")
    else:
        out.write("Fairness: none (every behaviour may stop: stuttering)\n")
    for name in r.holds:
        out.write(f"Temporal property {name} holds.\n")
    if r.ok:
        out.write("Model checking completed. No error has been found.\n")
    else:
        out.write("Error: Temporal properties were violated.\n")
        out.write(f"Error: {r.message}\n")
        if r.trigger is not None:
            out.write(f"Error: its P holds in state {r.trigger + 1} and its Q never holds from "
                      "there on.\n")
        out.write("Error: The following behavior constitutes a counter-example:\n\n")
        out.write(format_lasso(r))
    out.write(f"Finished checking temporal properties in {r.seconds:.2f}s at {timestamp()}\n")
    out.write(f"{r.generated} states generated, {r.distinct} distinct states found, "
              f"0 states left on queue.\n")
    out.write(f"The depth of the complete state graph search is {r.depth}.\n")
    out.write(f"The state graph has {r.edges} edges (steps to the same state not counted).\n")
    if coverage:
        print_coverage(out, r)


def liveness_json(r: LivenessResult) -> dict[str, Any]:
    """``result_json`` plus what was checked and the lasso's shape."""
    doc = result_json(r)
    doc.update({
        "properties": r.properties,
        "holds": r.holds,
        "fairness": r.fairness,
        "formula": r.formula,
        "loop": r.loop,
        "loop_step": None if r.loop is None else {
            "action": r.loop_action, "params": r.loop_params, "label": r.loop_label},
        "trigger": r.trigger,
        "edges": r.edges,
    })
    return doc


def liveness_itf(r: LivenessResult) -> dict[str, Any]:
    """The lasso as ITF: the states of prefix and cycle, and the index the last loops back to."""
    doc = itf_document(r)
    if r.loop is not None:
        doc["loop"] = r.loop
        doc["#meta"]["loop"] = r.loop
        doc["#meta"]["loop-action"] = r.loop_label
    return doc


def select_properties(model: Model[Any], names: Sequence[str]) -> list[Property]:
    """The model's properties, or just those named (an unknown name is an error)."""
    props = model_properties(model)
    if not names:
        return props
    by_name = {p.name: p for p in props}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ModelError(f"model {model.name!r} has no temporal property {', '.join(unknown)} "
                         f"(properties: {', '.join(by_name) or 'none'})")
    return [by_name[n] for n in names]


def fairness_from_args(model: Model[Any], args: argparse.Namespace) -> list[Fairness]:
    """``--no-fairness``: none; ``--wf A`` / ``--sf A``: exactly those (per parameter value);
    otherwise the model's ``fairness()``."""
    if getattr(args, "no_fairness", False):
        return []
    wf: list[str] = getattr(args, "wf", None) or []
    sf: list[str] = getattr(args, "sf", None) or []
    if wf or sf:
        return [weak(a) for a in wf] + [strong(a) for a in sf]
    return model_fairness(model)


def run_liveness_cli(model: Model[Any], args: argparse.Namespace, out: IO[str]) -> int:
    """Check the model's temporal properties as ``wormspace check --liveness`` does, print the
    outcome TLC-style, write ``--json``/``--trace``/``--itf`` files, return the exit code.

    Reads (all optional on ``args``): ``property`` (names), ``no_fairness``, ``wf``, ``sf``,
    ``symmetry``, ``max_states``, ``no_coverage``, ``json``, ``trace``, ``itf``. Raises
    :class:`ModelError` (exit 150 in the CLI) for an unknown property or fair action.
    """
    props = select_properties(model, getattr(args, "property", None) or [])
    if not props:
        out.write(f"Model {model.name} defines no temporal properties (properties()); "
                  "nothing to check for liveness.\n")
        return 0
    if getattr(args, "symmetry", False):
        out.write("Warning: symmetry is not used for temporal properties (it can hide liveness "
                  "violations); checking them on the full state graph.\n")
    fair = fairness_from_args(model, args)
    kwargs: dict[str, Any] = {}
    if getattr(args, "max_states", None):
        kwargs["max_states"] = args.max_states
    r = check_liveness(model, props, fair, **kwargs)
    print_liveness_result(out, r, coverage=not getattr(args, "no_coverage", False))
    _write_files(args, r, out)
    return r.exit_code


def _write_files(args: argparse.Namespace, r: LivenessResult, out: IO[str]) -> None:
    def write(path: str, doc: Any, what: str) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        out.write(f"Wrote {what} to {p}\n")

    if getattr(args, "json", None):
        write(args.json, liveness_json(r), "the result")
    if getattr(args, "trace", None):
        write(args.trace, {"model": r.model, "params": r.params, "result": r.result,
                           "violated": r.violated, "loop": r.loop, "loop_step": r.loop_label,
                           "trace": trace_json(r.trace)}, "the trace (JSON)")
    if getattr(args, "itf", None):
        write(args.itf, liveness_itf(r), "the trace (ITF)")

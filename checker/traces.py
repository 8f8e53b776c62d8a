"""Counterexample traces: TLC-style text, JSON, and ITF (the trace format of Apalache/Quint).

``variables(s)`` of a model returns readable Python values (dicts, frozensets, strings, ints);
these are converted here:

* text: ``/\\ name = value`` lines with TLA+-like values (``{a, b}``, ``<<x, y>>``,
  ``[k |-> v]``), as TLC prints a behaviour;
* JSON: plain JSON (sets become sorted lists, tuples lists, dict keys strings);
* ITF: ``{"#set": [...]}``, ``{"#tup": [...]}``, ``{"#map": [[k, v], ...]}``,
  ``{"#bigint": "n"}`` for integers, so existing ITF trace viewers can read our traces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .result import CheckResult, TraceStep


def tla_value(v: Any) -> str:
    """A value the way TLC prints it."""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, Mapping):
        if not v:
            return "<<>>"
        return "(" + " @@ ".join(f"{_tla_key(k)} :> {tla_value(x)}" for k, x in v.items()) + ")"
    if isinstance(v, (set, frozenset)):
        return "{" + ", ".join(sorted(tla_value(x) for x in v)) + "}"
    if isinstance(v, (tuple, list)):
        return "<<" + ", ".join(tla_value(x) for x in v) + ">>"
    if v is None:
        return "NULL"
    return str(v)


def _tla_key(k: Any) -> str:
    return str(k) if isinstance(k, str) else tla_value(k)


def format_trace(trace: list[TraceStep], *, spec_name: str | None = None) -> str:
    """The behaviour, TLC style: ``State N: <Action(params)>`` and ``/\\ var = value`` lines.

    Where a refinement was checked, each state also shows the spec's view (``spec: ...``).
    """
    lines = []
    for i, step in enumerate(trace, 1):
        lines.append(f"State {i}: <{step.label}>")
        for name, value in step.variables.items():
            lines.append(f"/\\ {name} = {tla_value(value)}")
        if step.spec_variables is not None:
            for name, value in step.spec_variables.items():
                lines.append(f"   {spec_name or 'spec'}!{name} = {tla_value(value)}")
        lines.append("")
    return "\n".join(lines)


def to_json_value(v: Any) -> Any:
    """Plain JSON for a readable value (sets sorted for stable output)."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
        return v
    if isinstance(v, Mapping):
        return {str(k): to_json_value(x) for k, x in v.items()}
    if isinstance(v, (set, frozenset)):
        return sorted((to_json_value(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, (tuple, list)):
        return [to_json_value(x) for x in v]
    return repr(v)


def to_itf_value(v: Any) -> Any:
    """A value in the ITF encoding."""
    if isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, int):
        return {"#bigint": str(v)}
    if isinstance(v, Mapping):
        return {"#map": [[to_itf_value(k), to_itf_value(x)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)):
        items = [to_itf_value(x) for x in v]
        return {"#set": sorted(items, key=lambda x: json.dumps(x, sort_keys=True))}
    if isinstance(v, tuple):
        return {"#tup": [to_itf_value(x) for x in v]}
    if isinstance(v, list):
        return [to_itf_value(x) for x in v]
    if v is None:
        return {"#unserializable": "None"}
    return {"#unserializable": repr(v)}


def trace_json(trace: list[TraceStep]) -> list[dict[str, Any]]:
    """The trace as a list of ``{action, params, state}`` (``state`` = readable variables)."""
    out = []
    for step in trace:
        item: dict[str, Any] = {
            "action": step.action,
            "params": to_json_value(step.params),
            "state": to_json_value(step.variables),
        }
        if step.spec_variables is not None:
            item["spec_state"] = to_json_value(step.spec_variables)
        out.append(item)
    return out


def itf_document(result: CheckResult) -> dict[str, Any]:
    """The counterexample as an ITF document (``#meta``, ``vars``, ``states``)."""
    trace = result.trace
    names: list[str] = list(trace[0].variables) if trace else []
    states = []
    for i, step in enumerate(trace):
        st: dict[str, Any] = {"#meta": {"index": i, "action": step.label}}
        for name, value in step.variables.items():
            st[name] = to_itf_value(value)
        states.append(st)
    return {
        "#meta": {
            "format": "ITF",
            "format-description": "https://apalache-mc.org/docs/adr/015adr-trace.html",
            "source": f"wormspace check {result.model}",
            "description": f"{result.result}: {result.violated or ''}".strip(),
        },
        "vars": names,
        "states": states,
    }


def result_json(result: CheckResult) -> dict[str, Any]:
    """The ``--json`` document scripts and reports read."""
    return {
        "model": result.model,
        "params": to_json_value(result.params),
        "mode": result.mode,
        "symmetry": result.symmetry,
        "deadlock_check": result.deadlock_check,
        "refinement": result.refinement_checked,
        "result": result.result,
        "violated": result.violated,
        "message": result.message,
        "distinct": result.distinct,
        "generated": result.generated,
        "depth": result.depth,
        "left_on_queue": result.left_on_queue,
        "seconds": round(result.seconds, 4),
        "collision_probability": result.collision_probability,
        "coverage": result.coverage,
        "levels": result.levels,
        "behaviours": result.behaviours,
        "trace": trace_json(result.trace),
    }

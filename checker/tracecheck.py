"""Trace validation: does some behaviour of a model explain an observed trace?

The method of TLA+ trace validation (Cirstea, Kuppe, Loillier, Merz, 2024): an implementation
logs a sequence of events, each naming the model action it performed, its parameters and the
parts of the state it changed. The checker keeps the set of model states consistent with the
events so far; for each event it first lets the model take *silent* steps (actions the
implementation does not log, bounded in number), then takes the event's action with matching
parameters and keeps the successors whose observed variables match. The first event that
leaves no state is reported, with the states that were still possible just before it.

Everything WormSpace-specific (which action an event is, which variables it observes) is in
the caller's :class:`EventMap`; this module knows only models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Action, Model

#: A recorded event: at least ``action``; ``params`` and ``observed`` are optional.
Event = Mapping[str, Any]


@dataclass(frozen=True)
class EventMap:
    """How events relate to a model.

    ``action(event)`` names the model action an event is (``None``: the event changes nothing
    the model sees and is skipped); ``params_match(event, params)`` says whether an action
    instance can be the event; ``observed_match(event, state)`` whether a successor agrees
    with what the event observed. ``silent`` are the actions that may happen between events
    without being logged (at most ``max_silent`` of them in a row).
    """

    action: Callable[[Event], str | None]
    params_match: Callable[[Event, tuple[Any, ...]], bool] = lambda e, p: True
    observed_match: Callable[[Event, Any], bool] = lambda e, s: True
    silent: frozenset[str] = frozenset()
    max_silent: int = 4


@dataclass
class TraceCheckResult:
    """The verdict: ``ok``, or the first unexplained event with the states still possible."""

    ok: bool
    events: int
    checked: int
    seconds: float
    failed_index: int | None = None
    failed_event: Event | None = None
    reason: str = ""
    possible_before: list[Any] = field(default_factory=list)
    max_frontier: int = 0

    @property
    def events_per_second(self) -> float:
        """Events checked per second."""
        return self.checked / self.seconds if self.seconds > 0 else float(self.checked)


def validate_trace(model: Model[Any], events: Sequence[Event], emap: EventMap, *,
                   max_frontier: int = 100_000, keep: int = 5) -> TraceCheckResult:
    """Search ``model`` for a behaviour that explains ``events`` (see the module docstring)."""
    t0 = time.perf_counter()
    actions: dict[str, Action[Any]] = {a.name: a for a in model.actions()}
    silent = [actions[name] for name in emap.silent if name in actions]
    unknown = {emap.action(e) for e in events} - set(actions) - {None}
    if unknown:
        raise ValueError(f"events name actions the model {model.name!r} does not have: "
                         f"{', '.join(sorted(str(u) for u in unknown))}")
    frontier: set[Any] = set(model.init_states())
    largest = len(frontier)
    checked = 0
    for i, event in enumerate(events):
        name = emap.action(event)
        if name is None:
            checked += 1
            continue
        act = actions[name]
        closure = _silent_closure(frontier, silent, emap.max_silent, max_frontier)
        nxt: set[Any] = set()
        for s in closure:
            for params, t in act.successors(s):
                if emap.params_match(event, params) and emap.observed_match(event, t):
                    nxt.add(t)
        if not nxt:
            return TraceCheckResult(
                ok=False, events=len(events), checked=checked,
                seconds=time.perf_counter() - t0, failed_index=i, failed_event=event,
                reason=_explain(act, closure, event, emap),
                possible_before=[dict(model.variables(s)) for s in list(closure)[:keep]],
                max_frontier=largest)
        if len(nxt) > max_frontier:
            raise ValueError(f"more than {max_frontier} model states explain the first {i + 1} "
                             "events: the events observe too little of the state")
        frontier = nxt
        largest = max(largest, len(frontier))
        checked += 1
    return TraceCheckResult(ok=True, events=len(events), checked=checked,
                            seconds=time.perf_counter() - t0, max_frontier=largest)


def _silent_closure(states: set[Any], silent: Iterable[Action[Any]], depth: int,
                    limit: int) -> set[Any]:
    """``states`` and every state reachable from them in at most ``depth`` silent steps."""
    out = set(states)
    layer = set(states)
    acts = list(silent)
    for _ in range(depth):
        if not acts or not layer:
            break
        new = {t for s in layer for a in acts for _p, t in a.successors(s)} - out
        out |= new
        layer = new
        if len(out) > limit:
            raise ValueError(f"silent steps reach more than {limit} states; lower max_silent")
    return out


def _explain(act: Action[Any], states: set[Any], event: Event, emap: EventMap) -> str:
    enabled = [(p, t) for s in states for p, t in act.successors(s)]
    if not enabled:
        return f"action {act.name} is not enabled in any state the trace can be in"
    params_ok = [(p, t) for p, t in enabled if emap.params_match(event, p)]
    if not params_ok:
        shown = sorted({act.describe(p) for p, _t in enabled})[:5]
        return (f"{act.name} is enabled, but not with the event's parameters "
                f"(possible: {', '.join(shown)})")
    return (f"{act.name} with these parameters is enabled, but no successor matches what the "
            "event observed")

"""Checking a Paxos-WOR trace (simulated, or recorded on a real cluster) against the models.

:func:`check_trace` runs four checks on one trace and returns every violation as a readable dict
(what is wrong, the trace excerpt that shows it, the model states when there are some):

``wor.paxos``
    per WOR, the server and message events against the Paxos-WOR model by trace validation
    (:mod:`.wor_events`): the first event no behaviour of the model explains;
``linearizability``
    per data WOR, the client history against the WOR's value semantics
    (``spec/wor_history.check_values``, near-linear): writes that returned ``PREEMPTED``, timed
    out or met a trim are indeterminate (they may or may not take effect);
``wor``
    per data WOR with a small history (at most ``exact_limit`` calls), the history against the
    atomic WOR spec itself (``spec/wor.linearizable``), capture ids included: a ``write``
    without capture id is, per attempt, a capture then a write with its capture id (the
    attempt's first accept splits them);
``trim``
    once an acceptor durably trimmed a segment it answers ``TRIMMED`` about it (``wor.paxos``
    has no trim, so this is checked here). With ``wos=True``, also the WOS layer's "trim is
    final" (``docs/layers/wos.md``, guarantee 3): once a ``trim`` call returned, or any call
    answered ``TRIMMED``, every call on the segment that starts later answers ``TRIMMED`` (or
    nothing). The WOR layer's campaigns leave it off: it is a property of the segment layer.

:func:`run_campaign` is the simulator campaign (``impl/sim/campaign.py``) with these checks; it is
what ``wormspace refine --sim`` calls. Two Hypothesis strategies feed the refinement tests:
:func:`schedules` builds schedules call by call (good for bugs that one or two calls show, and
it shrinks to the fewest calls), :func:`seeded_schedules` samples the campaign's own random
schedules by seed (for races that need many calls and faults to line up) and shrinks them by
dropping calls and faults.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st
from wormspace.checker.linearizability import Operation
from wormspace.impl.core.bugs import NO_BUGS, Bugs
from wormspace.impl.sim import campaign as sim_campaign
from wormspace.impl.sim.schedule import (
    FAULT_KINDS,
    NODE_FAULTS,
    OP_KINDS,
    SEGMENT_SIZE,
    FaultSpec,
    OpSpec,
    Schedule,
    random_schedule,
)
from wormspace.spec import wor as wor_spec
from wormspace.spec.wor_history import check_values

from . import wor_events as we
from .wor_events import CONDITIONS, REPLIES, REQUESTS, Key, show_event, show_value

#: Calls per WOR up to which the exact spec check runs (it searches interleavings).
EXACT_LIMIT = 12
#: Trace events shown around a violation.
EXCERPT = 14


@dataclass
class CallRecord:
    """One client call and what it did to each WOR (found from the messages it sent)."""

    node: str
    id: int
    op: str
    args: Mapping[str, Any]
    start: int  # trace index of the invoke
    end: int | None = None  # trace index of the response
    result: Any = None
    wors: list[Key] = field(default_factory=list)
    segments: set[int] = field(default_factory=set)
    # per WOR: attempts (ballot, index of its first prepare, index of its first accept)
    attempts: dict[Key, list[list[Any]]] = field(default_factory=dict)

    def result_for(self, key: Key) -> Any:
        """The part of the result about ``key`` (range calls answer per offset)."""
        if self.op in ("write_range", "capture_range") and isinstance(self.result, list):
            lo = self.args.get("lo")
            if isinstance(lo, int) and 0 <= key[2] - lo < len(self.result):
                return self.result[key[2] - lo]
            return None
        return self.result

    def own_value(self, key: Key) -> str | None:
        """The value (hex) this call writes to ``key``, if it writes one."""
        return we.own_value(self.op, self.args, key)


def client_calls(events: Sequence[Mapping[str, Any]]) -> list[CallRecord]:
    """Every client call of a trace with the WORs its messages touched, in invocation order."""
    open_: dict[str, CallRecord] = {}
    out: list[CallRecord] = []
    for i, ev in enumerate(events):
        kind, node = ev["kind"], ev["node"]
        if kind == "invoke":
            call = CallRecord(node, ev["id"], ev["op"], ev.get("args") or {}, i)
            open_[node] = call
            out.append(call)
        elif kind == "response" and node in open_:
            done = open_.pop(node)
            done.end, done.result = i, ev["result"]
        elif kind == "send" and node in open_ and ev["msg"].get("t") in REQUESTS:
            call = open_[node]
            for t, key, f in we.split_request(ev["msg"]):
                if t == "trim":
                    call.segments.add(int(key))
                    continue
                if t not in ("prepare", "accept", "read"):
                    continue
                if key not in call.wors:
                    call.wors.append(key)
                    call.segments.add(key[0])
                if t in ("prepare", "accept"):
                    b = tuple(f["ballot"])
                    att = call.attempts.setdefault(key, [])
                    if t == "prepare" and (not att or att[-1][0] != b):
                        att.append([b, i, None])
                    elif t == "accept" and att and att[-1][0] == b and att[-1][2] is None:
                        att[-1][2] = i
    return out


# -- the checks ---------------------------------------------------------------------------------


@dataclass
class TraceReport:
    """What :func:`check_trace` found (``violations`` empty: the trace passed every check)."""

    events: int
    model_events: int
    wors: int
    exact_checked: int
    violations: list[dict[str, Any]]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.violations


def check_trace(events: Sequence[Mapping[str, Any]], *, exact_limit: int = EXACT_LIMIT,
                acceptors: Sequence[str] | None = None, wos: bool = False) -> TraceReport:
    """Run the four checks of the module docstring on ``events`` (in the order they happened)."""
    t0 = time.perf_counter()
    calls = client_calls(events)
    violations = check_trims(events, calls, wos=wos)
    histories = _histories(calls)
    exact = 0
    for key, ops in histories.items():
        violations += _value_check(events, key, ops)
        if len(ops) <= exact_limit:
            exact += 1
            violations += _exact_check(events, key, ops)
    model_events = 0
    projections = we.project(events, acceptors=acceptors)
    for key, proj in sorted(projections.items()):
        model_events += len(proj.events)
        verdict = we.check_wor(proj)
        if not verdict.ok:
            assert verdict.event is not None
            idx = int(verdict.event["index"])
            violations.append({
                "check": "wor.paxos", "wor": list(key), "reason": verdict.explanation,
                "model_reason": verdict.result.reason, "event_index": idx,
                "event": show_event(events[idx]),
                "excerpt": excerpt(events, idx, key),
                "model_states": verdict.result.possible_before[:2],
                "numbering": {"acceptors": list(proj.numbering.acceptors),
                              "clients": list(proj.numbering.clients),
                              "values": {f"v{i + 1}": show_value(v)
                                         for i, v in enumerate(proj.values)}}})
    violations.sort(key=lambda v: v["event_index"])  # the earliest (usually the cause) first
    return TraceReport(len(events), model_events, len(projections), exact, violations,
                       time.perf_counter() - t0)


def check_trims(events: Sequence[Mapping[str, Any]], calls: Sequence[CallRecord], *,
                wos: bool = False) -> list[dict[str, Any]]:
    """The trim contract: an acceptor that durably trimmed a segment serves it no more; with
    ``wos``, no call that starts after a ``trim`` call returned or a call answered ``TRIMMED``
    is served by the segment."""
    out: list[dict[str, Any]] = []
    trimmed: dict[str, set[int]] = {}
    reported: set[tuple[str, int]] = set()
    for i, ev in enumerate(events):
        node = ev["node"]
        if ev["kind"] == "persist":
            if ev["change"] == "trim":
                trimmed.setdefault(node, set()).add(int(ev["segment"]))
                continue
            if ev["change"] in ("promise", "accept") and ev["wor"][0] in trimmed.get(node, ()):
                seg = int(ev["wor"][0])
                if (node, seg) not in reported:
                    reported.add((node, seg))
                    out.append(_trim_violation(
                        events, i, f"{node} persisted a change to {_wor(ev['wor'])} after it "
                        f"durably trimmed segment {seg} (the segment's state was dropped)"))
        elif ev["kind"] == "send" and ev["msg"].get("t") in REPLIES and node in trimmed:
            for t, key, r in we.split_reply(ev["msg"]):
                if key[0] in trimmed[node] and r.get("status") in ("ok", "preempted"):
                    if (node, key[0]) not in reported:
                        reported.add((node, key[0]))
                        out.append(_trim_violation(
                            events, i, f"{node} answered {t} {r.get('status')} about "
                            f"{_wor(list(key))} after it durably trimmed segment {key[0]}: "
                            "a trimmed segment must answer TRIMMED"))
    if not wos:
        return out
    done: dict[int, int] = {}  # segment -> index where it was first reported trimmed
    for c in calls:
        if c.end is None:
            continue
        if c.op == "trim" and c.result == "OK":
            segs = c.segments or {int(c.args.get("segment", -1))}
        elif c.result == "TRIMMED":
            segs = {k[0] for k in c.wors}
        else:
            continue
        for seg in segs:
            done[seg] = min(done.get(seg, c.end), c.end)
    for c in calls:
        if c.op == "trim" or c.end is None:
            continue
        for key in c.wors:
            when = done.get(key[0])
            if when is not None and c.start > when and _served(c, key):
                out.append({
                    "check": "trim", "wor": list(key),
                    "reason": f"{c.node}'s {c.op} of {_wor(list(key))} started after segment "
                              f"{key[0]} was reported trimmed (event {when}) and returned "
                              f"{_result(c.result_for(key))} instead of TRIMMED",
                    "event_index": c.end, "event": show_event(events[c.end]),
                    "excerpt": excerpt(events, c.end, key)})
                break
    return out


def _served(c: CallRecord, key: Key) -> bool:
    r = c.result_for(key)
    if c.op == "capture":
        return isinstance(r, dict)
    if c.op in ("write", "write_range"):
        return r in ("OK", "ALREADY_WRITTEN")
    return c.op == "read" and isinstance(r, str) and r not in ("TIMEOUT", "TRIMMED", "CONTENTION",
                                                                "SEALED")


def _trim_violation(events: Sequence[Mapping[str, Any]], i: int, reason: str) -> dict[str, Any]:
    return {"check": "trim", "wor": None, "reason": reason, "event_index": i,
            "event": show_event(events[i]), "excerpt": excerpt(events, i, None)}


# -- linearizability --------------------------------------------------------------------------


def _histories(calls: Sequence[CallRecord]) -> dict[Key, list[tuple[CallRecord, Key]]]:
    """The calls on each data WOR (trim and metadata WORs are not client data)."""
    out: dict[Key, list[tuple[CallRecord, Key]]] = {}
    for c in calls:
        if c.op not in ("read", "write", "capture", "write_range"):
            continue
        for key in c.wors:
            if key[1] == "data":
                out.setdefault(key, []).append((c, key))
    return out


def _value_check(events: Sequence[Mapping[str, Any]], key: Key,
                 ops: list[tuple[CallRecord, Key]]) -> list[dict[str, Any]]:
    history: list[Operation] = []
    for c, k in ops:
        r = c.result_for(k)
        if c.op == "read":
            done = isinstance(r, str) and (r == "EMPTY" or r not in CONDITIONS)
            history.append(Operation(c.node, k, "read", None, c.start,
                                     c.end if done else None, r if done else None))
        elif c.op in ("write", "write_range"):
            kind = "unsafe_write" if c.op == "write" and c.args.get("cid") == 0 else "write"
            res = r if r in ("OK", "PREEMPTED", "ALREADY_WRITTEN") else None
            history.append(Operation(c.node, k, kind, c.own_value(k), c.start,
                                     c.end if res is not None else None, res))
    out = []
    for v in check_values(history):
        shown = [f"{o.client} {o.op}" + (f"({show_value(o.arg)})" if o.arg is not None else "")
                 + f" -> {_result(o.result)} over events [{o.start}, {o.end if o.end is not None else '...'}]"
                 for o in v.operations]
        last = int(max((o.end for o in v.operations if o.end is not None),
                       default=ops[-1][0].start))  # event indices, as this history has them
        reason = v.reason
        for hexed in {o.arg for o in v.operations if isinstance(o.arg, str)} | {
                o.result for o in v.operations if isinstance(o.result, str)}:
            if hexed not in CONDITIONS:
                reason = reason.replace(repr(hexed), show_value(hexed))
        out.append({"check": "linearizability", "wor": list(key),
                    "reason": f"{_wor(list(key))}: {reason}", "operations": shown,
                    "event_index": last, "event": show_event(events[last]),
                    "excerpt": excerpt(events, last, key)})
    return out


#: One event of a spec history with where it happened: (trace index, order, event, text).
_Step = tuple[int, int, tuple[int, str, str, int], str]


def _exact_check(events: Sequence[Mapping[str, Any]], key: Key,
                 ops: list[tuple[CallRecord, Key]]) -> list[dict[str, Any]]:
    """The history against the atomic WOR spec, capture ids included."""
    clients = sorted({c.node for c, _ in ops})
    values: list[str] = []
    steps: list[_Step] = []
    for c, k in ops:
        _spec_steps(c, k, clients.index(c.node), values, steps)
    steps.sort(key=lambda s: (s[0], s[1]))
    bad = wor_spec.linearizable([s[2] for s in steps], len(clients), max(1, len(values)))
    if bad is None:
        return []
    idx = steps[bad][0]
    shown = [f"{'>> ' if n == bad else '   '}event {s[0]}: {s[3]}"
             for n, s in enumerate(steps[:bad + 1])][-12:]
    return [{"check": "wor", "wor": list(key),
             "reason": f"{_wor(list(key))}: the atomic WOR spec cannot explain '{steps[bad][3]}' "
                       "after the history before it",
             "operations": shown, "event_index": idx, "event": show_event(events[idx]),
             "excerpt": excerpt(events, idx, key)}]


def _spec_steps(c: CallRecord, k: Key, cl: int, values: list[str], steps: list[_Step]) -> None:
    """Append call ``c``'s invocations and responses on WOR ``k`` as spec history events
    (client ``cl``; ``values`` numbers the values, 1, 2...)."""

    def val(h: str | None) -> int:
        if h is None:
            return 0
        if h not in values:
            values.append(h)
        return values.index(h) + 1

    def add(i: int, kind: str, what: str, v: int = 0, text: str = "") -> None:
        steps.append((i, len(steps), (cl, kind, what, v), f"{c.node} {text or what}"))

    r, end = c.result_for(k), c.end
    outcome = r if r in ("OK", "PREEMPTED", "ALREADY_WRITTEN") else "TIMEOUT"
    if c.op == "read":
        add(c.start, "invoke", "read")
        if end is not None:
            code = ("EMPTY" if r == "EMPTY" else f"v{val(r)}"
                    if isinstance(r, str) and r not in CONDITIONS else "TIMEOUT")
            add(end, "return", code, text=f"read -> {_result(r)}")
    elif c.op == "capture":
        add(c.start, "invoke", "capture")
        if end is not None:
            code = "CAPTURED" if isinstance(r, dict) else "PREEMPTED" if r == "CONTENTION" else "TIMEOUT"
            add(end, "return", code, text=f"capture -> {code}")
    elif c.op == "write" and c.args.get("cid") is not None:
        kind = "unsafe_write" if c.args.get("cid") == 0 else "write"
        own = c.own_value(k)
        add(c.start, "invoke", kind, val(own), f"{kind}({show_value(own)})")
        if end is not None:
            add(end, "return", outcome, text=f"{kind} -> {_result(r)}")
    else:  # a write without capture id: per attempt, a capture then a write
        own = c.own_value(k)
        attempts = c.attempts.get(k, [])
        for n, (b, prep, acc) in enumerate(attempts):
            last = n == len(attempts) - 1
            stop = end if last else attempts[n + 1][1]  # the next attempt's first prepare
            add(c.start if n == 0 else prep, "invoke", "capture", text=f"capture at {b}")
            if acc is None:  # the capture did not complete
                code = "PREEMPTED" if not last or outcome == "PREEMPTED" else "TIMEOUT"
                if stop is not None:
                    add(stop, "return", code, text=f"capture at {b} -> {code}")
                continue
            add(acc, "return", "CAPTURED", text=f"capture at {b} -> CAPTURED")
            add(acc, "invoke", "write", val(own), f"write({show_value(own)}) at {b}")
            code = outcome if last else "PREEMPTED"
            if stop is not None:
                add(stop, "return", code, text=f"write at {b} -> {code}")


# -- excerpts -----------------------------------------------------------------------------------


def excerpt(events: Sequence[Mapping[str, Any]], index: int, key: Key | None,
            size: int = EXCERPT) -> list[str]:
    """The ``size`` events up to ``index`` that concern WOR ``key`` (or any event, for None),
    faults included, one line each; the event at ``index`` is marked ``>>``."""
    out: list[str] = []
    i = index
    while i >= 0 and len(out) < size:
        ev = events[i]
        if key is None or _concerns(ev, key) or ev["kind"] == "fault" or i == index:
            out.append((">> " if i == index else "   ") + f"[{i}] " + show_event(ev))
        i -= 1
    return out[::-1]


def _concerns(ev: Mapping[str, Any], key: Key) -> bool:
    kind = ev["kind"]
    if kind in ("send", "recv"):
        msg = ev["msg"]
        t = msg.get("t")
        parts = we.split_request(msg) if t in REQUESTS else we.split_reply(msg)
        return any(p[1] == key or (p[0] == "trim" and p[1] == key[0]) for p in parts)
    if kind == "persist":
        return (ev.get("wor") is not None and tuple(ev["wor"]) == key) or (
            ev["change"] == "trim" and ev.get("segment") == key[0])
    if kind in ("invoke", "response"):
        return True
    return False


def _wor(w: Sequence[Any]) -> str:
    return f"WOR [{w[0]}, {w[1]}, {w[2]}]"


def _result(r: Any) -> str:
    return we.show_result(r)


# -- campaigns and schedules ------------------------------------------------------------------


def trace_checker(events: Sequence[Mapping[str, Any]]) -> sim_campaign.CheckOutcome:
    """:func:`check_trace` in the form the simulator campaign calls."""
    rep = check_trace(events)
    return sim_campaign.CheckOutcome(rep.violations, rep.events, rep.seconds)


def run_campaign(*, layer: str = "wor", protocol: str = "paxos", nodes: int = 3, clients: int = 2,
                 ops: int = 6, faults: Sequence[str] | None = None, seed: int = 0, runs: int = 100,
                 bugs: Bugs = NO_BUGS, keep_dir: str | None = None, shrink: bool = True,
                 stop_at_first: bool = True) -> sim_campaign.CampaignResult:
    """A simulator campaign checked by :func:`check_trace` (the API behind ``refine --sim``);
    see :func:`wormspace.impl.sim.campaign.run_campaign` for the parameters."""
    return sim_campaign.run_campaign(
        layer=layer, protocol=protocol, nodes=nodes, clients=clients, ops=ops,
        faults=FAULT_KINDS if faults is None else faults, seed=seed, runs=runs, bugs=bugs,
        check=trace_checker, keep_dir=keep_dir, shrink=shrink, stop_at_first=stop_at_first)


def schedules(*, acceptors: int = 3, clients: tuple[int, int] = (1, 3), ops: tuple[int, int] = (0, 8),
              kinds: Sequence[str] = OP_KINDS, addresses: Sequence[int] = (0, 1, 4),
              faults: Sequence[str] = FAULT_KINDS, max_faults: int = 3,
              rates: Sequence[float] = (0.0, 0.1, 0.25)) -> st.SearchStrategy[Schedule]:
    """Hypothesis strategy of schedules: ``clients`` and ``ops`` are (min, max) counts, ``kinds``
    the calls, ``faults`` the fault kinds, ``rates`` the loss/dup probabilities to pick from.
    Examples shrink towards fewer calls, fewer faults, a quieter network and seed 0."""
    unknown = sorted(set(faults) - set(FAULT_KINDS)) + sorted(set(kinds) - set(OP_KINDS))
    if unknown:
        raise ValueError(f"unknown fault or call kind(s): {', '.join(unknown)}")
    node_faults = [k for k in NODE_FAULTS if k in faults]
    places = [a for a in addresses if a % SEGMENT_SIZE != SEGMENT_SIZE - 1 or "write_range" not in kinds]
    fault_specs = st.builds(FaultSpec, st.integers(0, 5_000), st.sampled_from(node_faults or ["kill"]),
                            st.integers(0, acceptors - 1), st.integers(200, 8_000))
    pauses = st.sampled_from([0, 0, 50, 300, 1_000, 3_000])

    @st.composite
    def build(draw: st.DrawFn) -> Schedule:
        n = draw(st.integers(*clients))
        calls = draw(st.lists(st.builds(OpSpec, st.integers(1, n), st.sampled_from(list(kinds)),
                                        st.sampled_from(places), pauses),
                              min_size=ops[0], max_size=ops[1]))
        calls = [o if o.kind != "write_range" or o.address % SEGMENT_SIZE != SEGMENT_SIZE - 1
                 else OpSpec(o.client, "write", o.address, o.pause) for o in calls]
        fault_list = draw(st.lists(fault_specs, max_size=max_faults if node_faults else 0))
        return Schedule(
            seed=draw(st.integers(0, 2**32 - 1)), acceptors=acceptors, clients=n,
            ops=tuple(calls), faults=tuple(fault_list),
            loss=draw(st.sampled_from(list(rates))) if "loss" in faults else 0.0,
            dup=draw(st.sampled_from(list(rates))) if "dup" in faults else 0.0,
            delay=draw(st.sampled_from([0.0, 0.05, 0.2])) if "delay" in faults else 0.0,
            reorder=draw(st.booleans()) if "reorder" in faults else False)

    return build()


def seeded_schedules(**profile: Any) -> st.SearchStrategy[Schedule]:
    """Hypothesis strategy for rare races: Hypothesis chooses a seed, ``random_schedule`` (with
    ``profile``: its keyword arguments) makes the schedule the campaign would run, and one
    draw per call, per fault and per network fault says whether to keep it. Generation keeps
    nearly everything (so the search samples the campaign's distribution); shrinking drops
    what the failure does not need, one item at a time, as delta debugging does."""
    keep = st.sampled_from([False] + [True] * 31)  # shrinks towards False: drop the item

    @st.composite
    def build(draw: st.DrawFn) -> Schedule:
        base = random_schedule(random.Random(draw(st.integers(0, 2**32 - 1))), **profile)
        ops = tuple(o for o in base.ops if draw(keep))
        fault_list = tuple(f for f in base.faults if draw(keep))
        loss, dup, delay = (getattr(base, k) if draw(keep) else 0.0
                            for k in ("loss", "dup", "delay"))
        return replace(base, ops=ops, faults=fault_list, reorder=base.reorder and draw(keep),
                       loss=loss, dup=dup, delay=delay)

    return build()

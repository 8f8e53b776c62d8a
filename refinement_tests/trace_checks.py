"""The checks of a recorded trace: fault campaigns' (:mod:`.campaign`) and
``wormspace trace-check``'s.

What is checked, per layer:

* every layer: the servers' durable state changes (``persist`` events) keep acceptor safety:
  a promise never decreases, no WOR of a trimmed segment changes, all acceptors accept one value
  per ballot, and (Paxos-WOR) once a majority accepted a value at a ballot, every accept at a
  higher ballot carries that value; no reply reveals a promise or accept before its ``persist``.
* ``wor`` (Paxos-WOR): also every WOR's messages against the ``wor.paxos`` model by trace
  validation, and small histories against the atomic WOR spec itself (the simulator's checks,
  ``refinement_tests/sim_checks.py``, which real traces can use since clients record sends).
* ``wor``: each WOR's client history against the atomic WOR (``spec/wor_history.py``: a
  register goes from EMPTY to one value once, reads are linearizable, writes that timed out or
  were preempted may take effect later), and capture ids: a capture that starts after another
  returned gets a higher id, and a write with capture id ``b`` is not OK once a capture with a
  higher id had returned before it was invoked (docs/layers/wor.md, guarantees 4 and 7).
* ``wos``: the above for data WORs (ranges included), the metadata WOR of each segment as a
  WOR (``alloc`` a write that wins or not, ``check`` a read; one winner per segment), and no
  answer but TRIMMED from a segment after a trim returned or any call on it answered TRIMMED.
* ``wormpaxos``: the SMR contract: each replica applies at increasing addresses, its applied
  sequence is a prefix of one sequence, every applied command was proposed (with that payload)
  and is applied once, every acknowledged proposal is applied, in real-time order; and the KV
  history is linearizable per key.
* ``wormlog``: the shared-log contract: no two appends get one address, every answer about an
  address reveals one entry (the appended value, or JUNK), in real-time order (never EMPTY
  after an entry was seen, nothing but TRIMMED after a trim), and ``check_tail`` is above
  every append that returned before it began.
* ``wormtx``: TCommit consistency: no resource manager commits a transaction another aborts,
  and a transaction commits only if every chosen vote is YES.

The application layers are also checked at the WOR and WOS levels below them (their client
calls are in the same trace). The state-machine and shared-log histories go to the contracts'
own history checkers, ``spec/smr.py`` and ``spec/sharedlog.py``; the KV history to the generic
linearizability checker (``checker/linearizability.py``) with a register per key.

:func:`check_trace` checks merged trace events against a model (a key of :data:`MODELS`);
:func:`read_trace_files` reads NDJSON trace files into one event list.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wormspace.checker.linearizability import Operation, check_history
from wormspace.impl import trace
from wormspace.impl.trace import Span, TraceError
from wormspace.spec.wor_history import check_values

#: Trace-check models: the layers' checks, by layer or specification name.
MODELS = {"wor": "wor", "wos": "wos", "wormpaxos": "wormpaxos", "smr": "wormpaxos",
          "wormlog": "wormlog", "sharedlog": "wormlog", "wormtx": "wormtx", "tcommit": "wormtx",
          "acceptor": "acceptor", "wor.paxos": "wor.paxos"}
#: The result of a call whose outcome is unknown (no quorum answered in time).
UNKNOWN = "TIMEOUT"
#: Results that are conditions, not answers about the state.
_CONDITIONS = (UNKNOWN, "CONTENTION", "TRIMMED", "NOT_ALLOCATED", "SEALED")


class CampaignError(ValueError):
    """Bad campaign options (a layer, fault or bug that does not exist; a bad count)."""


@dataclass(frozen=True)
class Violation:
    """One broken property: which check, why, and the trace events that show it."""

    check: str
    message: str
    events: tuple[Mapping[str, Any], ...] = ()

    def excerpt(self, limit: int = 12) -> str:
        """The events as NDJSON lines (the trace excerpt to read)."""
        lines = [json.dumps(dict(e), separators=(",", ":"))[:400] for e in self.events[:limit]]
        if len(self.events) > limit:
            lines.append(f"... {len(self.events) - limit} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


# -- checking a trace ------------------------------------------------------------------------------


def check_trace(events: Sequence[Mapping[str, Any]], model: str, *, protocol: str = "paxos",
                servers: int | None = None, segment_size: int | None = None) -> list[Violation]:
    """Check merged trace ``events`` against ``model`` (a key of :data:`MODELS`).

    ``servers``: replicas per segment (default: the servers seen in the trace; campaigns use
    one replica set); ``segment_size``: the cluster's (for the shared log's trim rule).
    Raises :class:`TraceError` if the events cannot be read as a trace.
    """
    layer = MODELS.get(model)
    if layer is None:
        raise CampaignError(f"unknown model {model!r} (models: {', '.join(sorted(MODELS))})")
    try:
        spans = trace.spans(events)
    except TraceError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceError(f"malformed event in trace: {type(exc).__name__}: {exc}") from None
    index = _EventIndex(events)
    try:
        out = check_acceptors(events, protocol=protocol, servers=servers)
        if layer == "acceptor":
            return out
        if layer == "wor.paxos":
            return out + check_paxos_model(events)
        out += check_wor_layer(spans, index)
        if layer != "wor":
            out += check_wos_layer(spans, index)
        if layer == "wormpaxos":
            out += check_wormpaxos(events, spans, index)
        elif layer == "wormlog":
            out += check_wormlog(spans, index, segment_size)
        elif layer == "wormtx":
            out += check_wormtx(events, spans, index)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise TraceError(f"an event lacks what the {model} checks need: "
                         f"{type(exc).__name__}: {exc}") from None
    return out


class _EventIndex:
    """Finds the invoke/response events of a span (for trace excerpts)."""

    def __init__(self, events: Iterable[Mapping[str, Any]]) -> None:
        self.by_op: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
        for ev in events:
            if ev["kind"] in ("invoke", "response"):
                self.by_op[(ev["node"], ev["id"])].append(ev)

    def of(self, *spans: Span | None) -> tuple[Mapping[str, Any], ...]:
        out: list[Mapping[str, Any]] = []
        for s in spans:
            if s is not None:
                out += self.by_op.get((s.node, s.id), [])
        return tuple(sorted(out, key=lambda e: e["time"]))


def _t(ns: int | None, t0: int) -> float | None:
    return None if ns is None else (ns - t0) / 1e9


def _failed(s: Span, *, trimmed_too: bool = True) -> bool:
    """The call gave no answer about the state: no response, TIMEOUT, an error, or (with
    ``trimmed_too``) a condition such as TRIMMED or NOT_ALLOCATED."""
    r = s.result
    if s.end is None or r == UNKNOWN or r == "CONTENTION" or (isinstance(r, dict) and "error" in r):
        return True
    return trimmed_too and isinstance(r, str) and r in _CONDITIONS


# -- acceptor safety (server persist events) --------------------------------------------------------


def check_acceptors(events: Sequence[Mapping[str, Any]], *, protocol: str = "paxos",
                    servers: int | None = None) -> list[Violation]:
    """Acceptor safety from the servers' ``persist`` and ``send`` events (see module doc)."""
    out: list[Violation] = []
    nodes = sorted({e["node"] for e in events if e["kind"] in ("persist", "recv")})
    n = servers or len(nodes)
    majority = n // 2 + 1
    promised: dict[tuple[str, Hashable], tuple[tuple[int, ...], Mapping[str, Any]]] = {}
    accepted: dict[tuple[str, Hashable], tuple[int, ...]] = {}
    trimmed: dict[tuple[str, int], Mapping[str, Any]] = {}
    at_ballot: dict[tuple[tuple[Any, ...], tuple[int, ...]], tuple[str, Mapping[str, Any]]] = {}
    voters: dict[tuple[tuple[Any, ...], tuple[int, ...], str], set[str]] = defaultdict(set)
    first_accept: dict[tuple[tuple[Any, ...], tuple[int, ...], str], Mapping[str, Any]] = {}
    for ev in events:
        kind, node = ev["kind"], ev["node"]
        if kind == "persist":
            change = ev["change"]
            if change == "trim":
                trimmed.setdefault((node, ev["segment"]), ev)
                continue
            if change not in ("promise", "accept"):
                continue
            w = tuple(ev["wor"])
            trim_ev = trimmed.get((node, w[0]))
            if trim_ev is not None and not ev.get("recovered"):
                out.append(Violation("acceptor.trimmed", f"{node} changed WOR {list(w)} after "
                                     f"trimming segment {w[0]} (it serves a trimmed segment)",
                                     (trim_ev, ev)))
                trimmed.pop((node, w[0]))  # report once per segment and server
            p = tuple(ev["promised"])
            old = promised.get((node, w))
            if old is not None and p < old[0]:
                out.append(Violation("acceptor.promise", f"{node}'s promise on WOR {list(w)} "
                                     f"went down from {list(old[0])} to {list(p)}", (old[1], ev)))
            if old is None or p >= old[0]:
                promised[(node, w)] = (p, ev)
            if change == "accept":
                b, v = tuple(ev["accepted"]), ev["value"]
                accepted[(node, w)] = max(accepted.get((node, w), b), b)
                prev = at_ballot.setdefault((w, b), (v, ev))
                if prev[0] != v:
                    out.append(Violation("acceptor.ballot", f"two values accepted for WOR "
                                         f"{list(w)} at ballot {list(b)}: {_short(prev[0])} "
                                         f"({prev[1]['node']}) and {_short(v)} ({node})",
                                         (prev[1], ev)))
                    at_ballot[(w, b)] = (v, ev)  # report each further change once
                voters[(w, b, v)].add(node)
                first_accept.setdefault((w, b, v), ev)
        elif kind == "send" and protocol == "paxos" and isinstance(ev.get("msg"), dict):
            out += _check_ack(ev, promised, accepted)
    if protocol == "paxos":
        out += _check_chosen(voters, first_accept, majority)
    return out


def _check_chosen(voters: Mapping[tuple[tuple[Any, ...], tuple[int, ...], str], set[str]],
                  first: Mapping[tuple[tuple[Any, ...], tuple[int, ...], str], Mapping[str, Any]],
                  majority: int) -> list[Violation]:
    """Once a value is accepted by a majority at a ballot, higher ballots carry only it."""
    per_wor: dict[tuple[Any, ...], list[tuple[tuple[int, ...], str]]] = defaultdict(list)
    chosen: dict[tuple[Any, ...], tuple[tuple[int, ...], str]] = {}
    for (w, b, v), who in voters.items():
        per_wor[w].append((b, v))
        if len(who) >= majority and (w not in chosen or b < chosen[w][0]):
            chosen[w] = (b, v)
    out = []
    for w, (b, v) in chosen.items():
        bad = sorted((b2, v2) for b2, v2 in per_wor[w] if b2 > b and v2 != v)
        if bad:
            b2, v2 = bad[0]
            out.append(Violation("acceptor.chosen", f"WOR {list(w)}: {_short(v)} was chosen at "
                                 f"ballot {list(b)} (a majority accepted it), but {_short(v2)} "
                                 f"was accepted at the higher ballot {list(b2)}",
                                 (first[(w, b, v)], first[(w, b2, v2)])))
    return out


def _check_ack(ev: Mapping[str, Any], promised: Mapping[tuple[str, Hashable], Any],
               accepted: Mapping[tuple[str, Hashable], tuple[int, ...]]) -> list[Violation]:
    """A reply may reveal only durable state: its promise or accept was persisted before."""
    msg, node = ev["msg"], ev["node"]
    t = msg.get("t")
    if t in ("promise_range", "accepted_range"):
        replies = msg.get("results") or []
    elif t in ("promise", "accepted", "read_reply"):
        replies = [msg]
    else:
        return []
    out = []
    for r in replies:
        if r.get("status") != "ok":
            continue
        w = tuple(r["wor"])
        if r["t"] == "promise":
            have = promised.get((node, w))
            need = tuple(r["ballot"])
            if have is None or have[0] < need:
                out.append(Violation("acceptor.ack", f"{node} promised ballot {list(need)} on "
                                     f"WOR {list(w)} before persisting it", (ev,)))
        else:
            acc = r.get("ballot") if r["t"] == "accepted" else r.get("accepted")
            if acc is None:
                continue
            got = accepted.get((node, w))
            if got is None or got < tuple(acc):
                what = "acknowledged an accept" if r["t"] == "accepted" else "revealed a value"
                out.append(Violation("acceptor.ack", f"{node} {what} at ballot {list(acc)} on "
                                     f"WOR {list(w)} before persisting it", (ev,)))
    return out


def _bytes_repr(hexvalue: Any) -> Any:
    """A traced value (hex) in readable, one-to-one form: its text when it is printable UTF-8
    (and does not start with ``0x``), else ``0x`` and the hex."""
    if not isinstance(hexvalue, str):
        return hexvalue
    try:
        text = bytes.fromhex(hexvalue).decode()
    except (ValueError, UnicodeDecodeError):
        return "0x" + hexvalue
    return text if text.isprintable() and not text.startswith("0x") else "0x" + hexvalue


def _short(hexvalue: Any) -> str:
    if not isinstance(hexvalue, str):
        return repr(hexvalue)
    try:
        raw = bytes.fromhex(hexvalue)
        text = raw.decode()
        if text.isprintable():
            return repr(text)
    except (ValueError, UnicodeDecodeError):
        pass
    return f"0x{hexvalue[:24]}" + ("..." if len(hexvalue) > 24 else "")


# -- the protocol model (trace validation against wor.paxos) ---------------------------------------


def check_paxos_model(events: Sequence[Mapping[str, Any]]) -> list[Violation]:
    """The servers' and clients' messages of each WOR against the ``wor.paxos`` model by trace
    validation, and the calls against the atomic WOR (``refinement_tests/sim_checks.py``, the
    checks the simulator's traces get). Needs the clients' ``send`` events and one call at a
    time per client node (the ``wor`` campaign's traces have both)."""
    from wormspace.refinement_tests import sim_checks, wor_events

    try:
        report = sim_checks.check_trace(events)
    except wor_events.ProjectionError as exc:
        raise TraceError(f"the trace cannot be checked against wor.paxos: {exc}") from None
    out = []
    for v in report.violations:
        i = v.get("event_index")
        shown = (events[i],) if isinstance(i, int) and 0 <= i < len(events) else ()
        why = v.get("reason", "")
        if v.get("model_reason"):
            why += f" (model: {v['model_reason']})"
        out.append(Violation(f"model.{v.get('check', '?')}", why, shown))
    return out


# -- the WOR layer (client histories) --------------------------------------------------------------


@dataclass(frozen=True)
class _Cap:
    key: Hashable
    ballot: tuple[int, ...]
    start: int
    end: int
    span: Span


@dataclass(frozen=True)
class _CidWrite:
    key: Hashable
    cid: tuple[int, ...]
    start: int
    ok: bool
    span: Span


def _wor_ops(spans: Sequence[Span]) -> tuple[list[tuple[Operation, Span]], list[_Cap],
                                              list[_CidWrite]]:
    """Data-WOR operations of the client calls (single and range), keyed by address."""
    ops: list[tuple[Operation, Span]] = []
    caps: list[_Cap] = []
    cid_writes: list[_CidWrite] = []
    t0 = min((s.start for s in spans), default=0)

    def add(s: Span, address: int, op: str, arg: Any, result: Any) -> None:
        who = (s.node, s.id)
        if op == "read":
            if result in (None, UNKNOWN) or not isinstance(result, str) or result in (
                    "TRIMMED", "NOT_ALLOCATED", "SEALED", "CONTENTION"):
                return
            ops.append((Operation(who, address, "read", None, _t(s.start, t0) or 0.0,
                                  _t(s.end, t0), result if result == "EMPTY"
                                  else _bytes_repr(result)), s))
        elif op == "write":
            if result in ("NOT_ALLOCATED", "SEALED"):
                return  # refused before it reached the register
            known = result in ("OK", "PREEMPTED", "ALREADY_WRITTEN")
            ops.append((Operation(who, address, "write", _bytes_repr(arg), _t(s.start, t0) or 0.0,
                                  _t(s.end, t0) if known else None, result if known else None),
                        s))

    for s in spans:
        a, r = s.args, s.result
        if s.op == "capture" and "address" in a:
            if isinstance(r, dict) and "ballot" in r and s.end is not None:
                caps.append(_Cap(a["address"], tuple(r["ballot"]), s.start, s.end, s))
        elif s.op == "read" and "address" in a and "segment" in a:
            add(s, a["address"], "read", None, r)
        elif s.op == "write" and "address" in a and "segment" in a:
            add(s, a["address"], "write", a["value"], r)
            if isinstance(a.get("cid"), list):
                cid_writes.append(_CidWrite(a["address"], tuple(a["cid"]), s.start, r == "OK", s))
        elif s.op in ("capture_range", "write_range") and "address" in a:
            base = a["address"]
            if s.op == "capture_range":
                if isinstance(r, list) and s.end is not None:
                    caps += [_Cap(base + i, tuple(c["ballot"]), s.start, s.end, s)
                             for i, c in enumerate(r)]
            else:
                outs = r if isinstance(r, list) else [None] * len(a["values"])
                cids = a.get("cids") or [None] * len(a["values"])
                for i, (v, o) in enumerate(zip(a["values"], outs)):
                    add(s, base + i, "write", v, o)
                    if isinstance(cids[i], list):
                        cid_writes.append(_CidWrite(base + i, tuple(cids[i]), s.start, o == "OK", s))
    return ops, caps, cid_writes


def check_wor_layer(spans: Sequence[Span], index: _EventIndex) -> list[Violation]:
    """Each data WOR's history against the atomic WOR, and capture-id order (module doc)."""
    ops, caps, cid_writes = _wor_ops(spans)
    out = []
    by_op = {id(o): s for o, s in ops}
    for v in check_values([o for o, _ in ops]):
        out.append(Violation("wor.linearizable", f"address {v.key}: {v.reason}",
                             index.of(*(by_op.get(id(o)) for o in v.operations))))
    out += _capture_order(caps, index)
    out += _cid_writes(caps, cid_writes, index)
    return out


def _capture_order(caps: list[_Cap], index: _EventIndex) -> list[Violation]:
    """A capture invoked after another returned has a higher capture id."""
    out = []
    by_key: dict[Hashable, list[_Cap]] = defaultdict(list)
    for c in caps:
        by_key[c.key].append(c)
    for key, cs in by_key.items():
        ended = sorted(cs, key=lambda c: c.end)
        best: _Cap | None = None
        i = 0
        for c in sorted(cs, key=lambda c: c.start):
            while i < len(ended) and ended[i].end < c.start:
                if best is None or ended[i].ballot > best.ballot:
                    best = ended[i]
                i += 1
            if best is not None and c.ballot <= best.ballot:
                out.append(Violation("wor.capture_order", f"address {key}: a capture returned id "
                                     f"{list(c.ballot)} after an earlier capture had returned "
                                     f"{list(best.ballot)} (capture ids must increase)",
                                     index.of(best.span, c.span)))
                break
    return out


def _cid_writes(caps: list[_Cap], writes: list[_CidWrite], index: _EventIndex) -> list[Violation]:
    """A write with capture id b is not OK once a capture with a higher id had returned."""
    out = []
    by_key: dict[Hashable, list[_Cap]] = defaultdict(list)
    for c in caps:
        by_key[c.key].append(c)
    for w in writes:
        if not w.ok:
            continue
        later = [c for c in by_key.get(w.key, ()) if c.end < w.start and c.ballot > w.cid]
        if later:
            c = min(later, key=lambda c: c.end)
            out.append(Violation("wor.capture_id", f"address {w.key}: a write with capture id "
                                 f"{list(w.cid)} returned OK although capture {list(c.ballot)} "
                                 "had returned before it was invoked",
                                 index.of(c.span, w.span)))
    return out


# -- the WOS layer (segments) ----------------------------------------------------------------------


def check_wos_layer(spans: Sequence[Span], index: _EventIndex) -> list[Violation]:
    """Metadata WORs (alloc/check), one alloc winner per segment, nothing after TRIMMED."""
    out: list[Violation] = []
    t0 = min((s.start for s in spans), default=0)
    meta: list[tuple[Operation, Span]] = []
    winners: dict[int, list[Span]] = defaultdict(list)
    for s in spans:
        seg, r = s.args.get("segment"), s.result
        if seg is None:
            continue
        who, start, end = (s.node, s.id), _t(s.start, t0) or 0.0, _t(s.end, t0)
        if s.op == "alloc":
            known = r in (True, False)
            meta.append((Operation(who, ("meta", seg), "write", _bytes_repr(s.args["meta"]), start,
                                   end if known else None,
                                   ("OK" if r else "ALREADY_WRITTEN") if known else None), s))
            if r is True:
                winners[seg].append(s)
        elif s.op == "check" and isinstance(r, str) and r not in ("TRIMMED", UNKNOWN, "SEALED",
                                                                 "CONTENTION"):
            meta.append((Operation(who, ("meta", seg), "read", None, start, end,
                                   "EMPTY" if r == "NOT_ALLOCATED" else _bytes_repr(r)), s))
        elif r == "NOT_ALLOCATED" and s.end is not None:
            # A data call refused because its segment's metadata WOR read EMPTY.
            meta.append((Operation(who, ("meta", seg), "read", None, start, end, "EMPTY"), s))
    for seg, ws in winners.items():
        if len(ws) > 1:
            out.append(Violation("wos.alloc", f"segment {seg}: {len(ws)} allocs won (one may)",
                                 index.of(*ws[:4])))
    by_op = {id(o): s for o, s in meta}
    for v in check_values([o for o, _ in meta]):
        key: Any = v.key  # ("meta", segment), as _wor_ops made it
        out.append(Violation("wos.meta", f"segment {key[1]} metadata: {v.reason}",
                             index.of(*(by_op.get(id(o)) for o in v.operations))))
    out += _after_trim(spans, index)
    return out


def _after_trim(spans: Sequence[Span], index: _EventIndex) -> list[Violation]:
    """Once a trim returned, or any call on the segment answered TRIMMED, calls invoked later
    answer TRIMMED (or fail)."""
    first: dict[int, Span] = {}
    for s in spans:
        seg = s.args.get("segment")
        if seg is None or s.end is None:
            continue
        if s.result == "TRIMMED" or (s.op == "trim" and s.result == "OK"):
            prev = first.get(seg)
            if prev is None or prev.end is None or s.end < prev.end:
                first[seg] = s
    out = []
    for seg, t in sorted(first.items()):
        assert t.end is not None
        late = [s for s in spans if s.args.get("segment") == seg and s.start > t.end
                and not _failed(s, trimmed_too=False) and s.result != "TRIMMED"
                and not (s.op == "trim" and s.result == "OK")]
        if late:
            s = min(late, key=lambda s: s.start)
            out.append(Violation("wos.trimmed", f"segment {seg}: {s.op} answered "
                                 f"{_show_result(s.result)} after the segment was trimmed "
                                 f"({t.op} answered {_show_result(t.result)} before it began)",
                                 index.of(t, s)))
    return out


def _show_result(r: Any) -> str:
    if isinstance(r, str) and r and all(c in "0123456789abcdef" for c in r) and len(r) % 2 == 0:
        return _short(r)
    return json.dumps(r)[:80]


# -- WormPaxos (state-machine replication) ---------------------------------------------------------


def check_wormpaxos(events: Sequence[Mapping[str, Any]], spans: Sequence[Span],
                    index: _EventIndex) -> list[Violation]:
    """The proposals and applied commands against the SMR contract (``spec/smr.py``: order,
    agreement, prefix, proposed, once, acknowledged, real time), applied payloads equal the
    proposed ones, and the KV history is linearizable per key."""
    from wormspace.impl.apps.wormpaxos import MAX_BATCH, decode_entry
    from wormspace.spec import smr

    t0 = min((e["time"] for e in events), default=0)
    proposals: list[smr.Proposal] = []
    payload_of: dict[Hashable, Span] = {}
    for s in spans:
        if s.op == "propose":
            proposed = (s.args["pid"][0], s.args["pid"][1])
            payload_of.setdefault(proposed, s)
            proposals.append(smr.Proposal(s.node, proposed, _t(s.start, t0) or 0.0, _t(s.end, t0),
                                          None if _failed(s) else smr.OK))
    applies: dict[Hashable, list[tuple[int, Hashable]]] = defaultdict(list)
    apply_ev: dict[tuple[str, Hashable], Mapping[str, Any]] = {}
    out: list[Violation] = []
    for ev in events:
        if ev["kind"] != "apply":
            continue
        kind, pid, payload = decode_entry(bytes.fromhex(ev["value"]))
        if kind != "cmd" or pid is None or payload is None:
            continue
        # A batch entry holds several commands at one address, applied in order of ``pos``
        # (always < MAX_BATCH: a longer batch reads as a NO-OP), so address * MAX_BATCH + pos
        # is an increasing log position for the checker. ``value`` is the command alone.
        applies[ev["node"]].append((ev["index"] * MAX_BATCH + ev.get("pos", 0), pid))
        apply_ev.setdefault((ev["node"], pid), ev)
        prop = payload_of.get(pid)
        if prop is not None and prop.args.get("payload") != payload.hex():
            out.append(Violation("smr.payload", f"{ev['node']} applied command {list(pid)} at "
                                 f"address {ev['index']} with payload {_short(payload.hex())}, "
                                 f"not the proposed {_short(prop.args.get('payload'))}",
                                 (*index.of(prop), ev)))
    def show(i: int) -> str:  # the combined index, as the trace has it: address.pos
        address, pos = divmod(i, MAX_BATCH)
        return f"{address}.{pos}"

    for line in smr.check_history(proposals, applies, linearizable=True, show=show):
        shown = [ev for (node, pid), ev in apply_ev.items() if repr(pid) in line][:4]
        shown += [e for p in proposals if repr(p.command) in line
                  for e in index.of(payload_of.get(p.command))][:4]
        out.append(Violation("smr." + line.split(":", 1)[0], line, tuple(shown)))
    out += _kv_linearizable(spans, index)
    return out


def _kv_linearizable(spans: Sequence[Span], index: _EventIndex) -> list[Violation]:
    """Per key, puts and gets are linearizable against a register."""
    t0 = min((s.start for s in spans), default=0)
    history = []
    by_op: dict[int, Span] = {}
    for s in spans:
        if s.op == "put":
            done = not _failed(s)
            o = Operation((s.node, s.id), s.args["key"], "put", s.args["value"],
                          _t(s.start, t0) or 0.0, _t(s.end, t0) if done else None, None)
        elif s.op == "get" and not _failed(s):
            o = Operation((s.node, s.id), s.args["key"], "get", None, _t(s.start, t0) or 0.0,
                          _t(s.end, t0), s.result)
        else:
            continue
        history.append(o)
        by_op[id(o)] = s

    def register(state: Any, o: Operation) -> list[tuple[Any, Any]]:
        return [(o.arg, None)] if o.op == "put" else [(state, state)]

    res = check_history(history, register, None)
    if res.ok:
        return []
    shown = res.unexplained[:3] or res.linearized[-3:]
    return [Violation("smr.linearizable", f"key {res.failed_key!r}: the KV history is not "
                      f"linearizable ({len(res.linearized)} operations explained, then none of "
                      f"{len(res.unexplained)} fits)",
                      index.of(*(by_op.get(id(o)) for o in shown)))]


# -- WormLog (shared log) --------------------------------------------------------------------------


def check_wormlog(spans: Sequence[Span], index: _EventIndex, segment_size: int | None = None
                  ) -> list[Violation]:
    """The log calls (``append``, ``read``, ``fill``, ``check_tail``, ``trim``) against the
    shared-log contract (``spec/sharedlog.py``): unique addresses, one entry per address,
    real-time order of answers, trims, tails. Holes may read JUNK without a fill: a new
    sequencer fills its predecessors' unused addresses."""
    from wormspace.spec import sharedlog

    t0 = min((s.start for s in spans), default=0)
    ops: list[sharedlog.LogOp] = []
    by_address: dict[int, list[Span]] = defaultdict(list)
    for s in spans:
        if s.op not in sharedlog.HISTORY_OPS or "segment" in s.args:
            continue  # client-level calls (they carry a segment) are checked by the WOS layer
        start, end = _t(s.start, t0) or 0.0, _t(s.end, t0)
        r = s.result
        if s.op == "append":
            ops.append(sharedlog.LogOp(s.node, "append", s.args["value"],
                                       r if type(r) is int else "failed", start, end))
            if type(r) is int:
                by_address[r].append(s)
        elif s.op in ("read", "fill"):
            a = s.args["address"]
            by_address[a].append(s)
            if _failed(s, trimmed_too=False) or not isinstance(r, str):
                ops.append(sharedlog.LogOp(s.node, s.op, a, None, start, None))
            else:
                status = r.lower() if r in ("JUNK", "EMPTY", "TRIMMED") else "data"
                ops.append(sharedlog.LogOp(s.node, s.op, a, (status, r if status == "data"
                                                              else None), start, end))
        elif s.op == "check_tail":
            if type(r) is int:
                ops.append(sharedlog.LogOp(s.node, "check_tail", None, r, start, end))
        elif s.op == "trim":
            ops.append(sharedlog.LogOp(s.node, "trim", s.args["prefix"],
                                       "ok" if isinstance(r, list) else "failed", start,
                                       end if isinstance(r, list) else None))
    out = []
    for line in sharedlog.check_history(ops, junk_needs_fill=False, segment_size=segment_size):
        m = re.search(r"address (\d+)", line)
        shown = index.of(*by_address.get(int(m.group(1)), [])[:6]) if m else ()
        what = "tail" if line.startswith("check_tail") else "address"
        out.append(Violation(f"sharedlog.{what}", line, shown))
    return out


# -- WormTX (atomic commitment) --------------------------------------------------------------------


def check_wormtx(events: Sequence[Mapping[str, Any]], spans: Sequence[Span],
                 index: _EventIndex) -> list[Violation]:
    """TCommit consistency: one decision per transaction; COMMIT only with every vote YES."""
    from wormspace.impl.apps.wormtx import COMMIT, YES

    out: list[Violation] = []
    decided: dict[int, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for ev in events:
        if ev["kind"] == "decide":
            decided[ev["tx"]].setdefault(ev.get("rm", ev["node"]), ev)
    votes: dict[int, dict[str, Span]] = defaultdict(dict)
    rms_of: dict[int, list[str]] = {}
    for s in spans:
        if s.op == "vote":
            rms_of[s.args["tx"]] = s.args["rms"]
            if s.end is not None and isinstance(s.result, str) and s.result != UNKNOWN:
                votes[s.args["tx"]][s.args["rm"]] = s
    for tx, by_rm in sorted(decided.items()):
        outcomes = {ev["decision"] for ev in by_rm.values()}
        if len(outcomes) > 1:
            evs = sorted(by_rm.values(), key=lambda e: e["time"])
            out.append(Violation("tcommit.consistent", f"transaction {tx}: "
                                 + ", ".join(f"{rm} decided {ev['decision']}"
                                             for rm, ev in sorted(by_rm.items())), tuple(evs)))
            continue
        if COMMIT in outcomes:
            no = {rm: s for rm, s in votes.get(tx, {}).items() if s.result != YES.hex()}
            if no:
                rm, s = sorted(no.items())[0]
                out.append(Violation("tcommit.votes", f"transaction {tx} committed although "
                                     f"{rm}'s chosen vote is {_short(s.result)}",
                                     (*index.of(s), *by_rm.values())))
    return out


def read_trace_files(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read and merge trace files (a directory stands for its ``*.ndjson`` files)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.ndjson"))
            if not found:
                raise TraceError(f"{p}: a directory without trace files (*.ndjson)")
            files += found
        else:
            files.append(p)
    events: list[dict[str, Any]] = trace.read_all(files)
    return events


__all__ = [
    "MODELS", "UNKNOWN", "CampaignError", "Violation", "check_acceptors", "check_paxos_model",
    "check_trace", "check_wor_layer", "check_wormlog", "check_wormpaxos", "check_wormtx",
    "check_wos_layer", "read_trace_files",
]

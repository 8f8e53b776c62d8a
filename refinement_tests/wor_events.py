"""Trace events of a Paxos-WOR cluster as steps of the ``wor.paxos`` model, one WOR at a time.

:func:`project` turns a trace (``impl/trace.py`` events of servers and clients, simulated or
real) into, per WOR, a list of *model events*: the ``wor.paxos`` action each trace event
performs, its parameters in the model's numbering, and what it lets us observe of the model's
state. :func:`paxos_event_map` is the :class:`~wormspace.checker.tracecheck.EventMap` that
``validate_trace`` needs for them, and :func:`check_wor` runs the validation and, on failure,
says in the implementation's words what no behaviour of the model explains.

Each WOR is checked on its own: Paxos keeps no state shared between registers, so a trace is
explained iff each WOR's projection is.

**Numbering.** Acceptor ``a`` of the model is the ``a``-th server node (natural order). Client
``c`` is the client node with the ``c``-th smallest client id (the second half of its ballots),
so that ballot ``(r, id)`` becomes ``(r-1)*C + c + 1``: the model's ballot of client ``c`` in
its ``r``-th round, with the order of ballots preserved. Values are numbered 1, 2... in order of
first appearance; ballot ``(0, 0)`` (the unsafe write) is 0.

**Which trace event is which action.**

===================================  ===============================================================
trace event                          model event
===================================  ===============================================================
server ``persist`` (durable)          ``Promise(a, b)`` if only the promise changed, else
                                      ``Accept(a, b, v)``; observed: the acceptor's whole state
server ``send`` of a reply            ``Observe``: the reply shows the acceptor's state (all of it
                                      for promise and read replies, the promise for accepted); a
                                      reply revealing a state that is not durable is unexplained
client ``send`` of a prepare at a     ``Capture(c)``, observed: its ballot is the model client's
new ballot                            next one. Rounds the client spent elsewhere (other WORs,
                                      reads that needed no repair) are ``Capture``/``Timeout``
                                      pairs, so its round numbers match
client's first ``accept`` at a        ``CaptureDone(c)`` (when it follows the capture) and
ballot                                ``Write(c, own)``; observed: the proposal carries the sent
                                      value. Ballot 0: ``UnsafeWrite(c, v)``
client ``response``                   ``CaptureDone``, ``WriteDone(c, ret)``, or ``Timeout`` for an
                                      attempt that ended without a result; a read that returned a
                                      value: ``Observe`` that the value is chosen
client abandons an attempt            ``Timeout(c)`` (a new ballot, or read messages, follow)
===================================  ===============================================================

A read that returns from its first phase (a quorum agreeing, or all empty) is not a model action
(the model's read always prepares): only its value is checked (``chosen``); a read's repair is a
capture and a write. The trim WOR's write is not reported by the ``trim`` call, so it ends with
``Timeout``. After an acceptor durably trims a segment, its events about that segment are left to
the trim checks (``sim_checks``), since ``wor.paxos`` has no trim.

**What a trace must contain**: the client nodes' ``send`` events (they carry ballots and values;
their ``peer`` is the server's node name) besides their ``invoke``/``response``, and the
servers' ``persist`` and reply ``send`` events. A client node runs one call at a time (the
model's clients do). ``acceptors`` (see :func:`numbering`) overrides the server list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wormspace.checker.model import Action
from wormspace.checker.tracecheck import EventMap, TraceCheckResult, validate_trace
from wormspace.model.wor import paxos

#: A WOR as traces write it: ``[segment, kind, offset]`` (as a tuple).
Key = tuple[int, str, int]
Ballot = tuple[int, int]

REQUESTS = frozenset({"prepare", "accept", "read", "trim", "seal", "prepare_range", "accept_range"})
REPLIES = frozenset({"promise", "accepted", "read_reply", "trim_reply", "seal_reply",
                     "promise_range", "accepted_range"})
#: Results that are conditions, not values (``impl/net/client.py``).
CONDITIONS = frozenset({"EMPTY", "NOT_ALLOCATED", "TIMEOUT", "TRIMMED", "SEALED", "CONTENTION",
                        "OK", "PREEMPTED", "ALREADY_WRITTEN"})
ZERO: Ballot = (0, 0)

# Client phases as this projection tracks them (mirroring the model's).
IDLE, HOLD, CAPTURING, WRITING, UWRITING = "idle", "hold", "capturing", "writing", "uwriting"
ACTIVE = (CAPTURING, WRITING, UWRITING)


class ProjectionError(ValueError):
    """The trace cannot be projected (missing events, unknown nodes or ballots)."""


# -- numbering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Numbering:
    """How trace names map to model numbers (see the module docstring)."""

    acceptors: tuple[str, ...]
    clients: tuple[str, ...]
    client_ids: tuple[int, ...]

    def acceptor(self, node: str) -> int:
        try:
            return self.acceptors.index(node)
        except ValueError:
            raise ProjectionError(f"node {node!r} is not one of the acceptors "
                                  f"{', '.join(self.acceptors)}") from None

    def ballot(self, b: Ballot) -> int:
        """The model ballot of trace ballot ``b``."""
        if b == ZERO:
            return 0
        try:
            c = self.client_ids.index(b[1])
        except ValueError:
            raise ProjectionError(f"ballot {list(b)} belongs to no client node of the trace "
                                  f"(client ids: {list(self.client_ids)})") from None
        return (b[0] - 1) * len(self.clients) + c + 1

    def trace_ballot(self, m: int) -> Ballot:
        """Inverse of :meth:`ballot`."""
        if m == 0:
            return ZERO
        r, c = divmod(m - 1, len(self.clients))
        return (r + 1, self.client_ids[c])


def show_value(hexed: str | None) -> str:
    """A value for people: its text if printable ASCII, else its hex."""
    if hexed is None:
        return "-"
    try:
        text = bytes.fromhex(hexed).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return "0x" + hexed
    return repr(text) if text.isprintable() else "0x" + hexed


def show_ballot(b: Ballot | None) -> str:
    return "-" if b is None else f"({b[0]},{b[1]})"


def _natural(name: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"(\D*)(\d+)(.*)", name)
    return (m.group(1), int(m.group(2)), m.group(3)) if m else (name, -1, "")


def _ballot(x: Any) -> Ballot:
    return (int(x[0]), int(x[1]))


def _key(x: Any) -> Key:
    return (int(x[0]), str(x[1]), int(x[2]))


def numbering(events: Sequence[Mapping[str, Any]], *,
              acceptors: Sequence[str] | None = None) -> Numbering:
    """The numbering of a trace: its server nodes (or ``acceptors``, which a trace needs when
    some server of the replica set recorded nothing) and its client nodes."""
    servers: set[str] = set()  # nodes that recorded server events
    peers: set[str] = set()  # where clients sent requests (names as the clients saw them)
    invoked: set[str] = set()
    senders: dict[str, set[int]] = {}
    for ev in events:
        kind, node = ev["kind"], ev["node"]
        if kind == "invoke":
            invoked.add(node)
        elif kind == "persist":
            servers.add(node)
        elif kind in ("send", "recv"):
            t = ev["msg"].get("t")
            if t in REQUESTS:
                if kind == "send":
                    used = senders.setdefault(node, set())
                    b = ev["msg"].get("ballot")
                    if b is not None and tuple(b) != ZERO:
                        used.add(int(b[1]))
                    peers.add(ev["peer"])
                else:
                    servers.add(node)
            elif t in REPLIES and kind == "send":
                servers.add(node)
    silent = sorted(invoked - set(senders))
    if silent:
        raise ProjectionError(
            f"client node(s) {', '.join(silent)} recorded calls but no message sends: the "
            "client driver must record send events for refinement checks")
    ids: dict[str, int] = {}
    for node, seen in senders.items():
        if len(seen) > 1:
            raise ProjectionError(f"client node {node!r} sent ballots of several client ids "
                                  f"{sorted(seen)}")
        m = re.fullmatch(r"c(\d+)", node)
        ids[node] = seen.pop() if seen else int(m.group(1)) if m else 0
    with_id = sorted((i, n) for n, i in ids.items() if i)
    without = sorted(n for n, i in ids.items() if not i)
    if len({i for i, _ in with_id}) != len(with_id):
        raise ProjectionError(f"two client nodes share a client id: {with_id}")
    order = [n for _, n in with_id] + without
    if acceptors is None:  # a server that recorded nothing is known from the clients' sends
        acceptors = sorted(servers | peers, key=_natural)
    acc = tuple(acceptors)
    return Numbering(acc, tuple(order), tuple(ids[n] for n in order))


# -- the model, with an observation step --------------------------------------------------------


@dataclass
class ObservedPaxos(paxos.PaxosWOR):
    """``wor.paxos`` plus ``Observe``, a step that changes nothing: an event that only looks at
    the state (a reply, a read's value) maps to it and is checked by ``observed_match``.

    Trace validation never uses symmetry, so :meth:`canonical` is refused.
    """

    def canonical(self, s: paxos.State) -> paxos.State:
        raise NotImplementedError("ObservedPaxos is for trace validation (no symmetry)")

    def actions(self) -> Sequence[Action[paxos.State]]:
        return [*super().actions(), Action("Observe", lambda s: [((), s)], ())]


def paxos_model(params: Mapping[str, Any]) -> ObservedPaxos:
    """The model a projection is checked against (``params`` from :class:`WorProjection`)."""
    return ObservedPaxos(**params)


def paxos_event_map(params: Mapping[str, Any]) -> EventMap:
    """The event map of model events for a model with ``params``: the action is named by the
    event, parameters match where the event gives them (None: any), and the observation (see
    :func:`observed`) must hold in the successor."""
    model = paxos_model(params)
    return EventMap(
        action=lambda e: e["action"],
        params_match=lambda e, p: all(x is None or x == y for x, y in zip(e["params"], p)),
        observed_match=lambda e, s: observed(model, e.get("observe"), s))


def observed(model: paxos.PaxosWOR, obs: tuple[Any, ...] | None, s: paxos.State) -> bool:
    """Whether model state ``s`` shows what ``obs`` says was observed."""
    if obs is None:
        return True
    what = obs[0]
    if what == "acceptor":
        return bool(s[0][obs[1]] == obs[2])
    if what == "promised":
        return bool(s[0][obs[1]][0] == obs[2])
    if what == "ballot":
        c = obs[1]
        return bool(model.current_ballot(c, s[5][c][1]) == obs[2])
    if what == "proposal":
        return (obs[1], obs[2]) in s[3]
    if what == "chosen":
        return any(v == obs[1] for _b, v in model.chosen(s))
    raise ValueError(f"unknown observation {what!r}")


# -- projection --------------------------------------------------------------------------------


@dataclass
class _Client:
    """One client on one WOR: its model phase, ballot, rounds used, and the value it sent."""

    phase: str = IDLE
    ballot: Ballot | None = None
    rounds: int = 0
    sent: str | None = None


@dataclass
class WorProjection:
    """One WOR's model events, the model parameters they need, and the numbering."""

    wor: Key
    numbering: Numbering
    events: list[dict[str, Any]] = field(default_factory=list)
    values: list[str] = field(default_factory=list)  # model value v is values[v - 1] (hex)
    clients: dict[int, _Client] = field(default_factory=dict)
    durable: dict[int, tuple[Ballot, Ballot | None, str | None]] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """Parameters of :class:`ObservedPaxos` for this WOR."""
        return {"acceptors": len(self.numbering.acceptors),
                "clients": max(1, len(self.numbering.clients)),
                "values": max(1, len(self.values)),
                "rounds": max([1, *(c.rounds for c in self.clients.values())]),
                "unsafe": True}

    def value(self, hexed: str) -> int:
        """The model number of a value (numbered on first sight)."""
        try:
            return self.values.index(hexed) + 1
        except ValueError:
            self.values.append(hexed)
            return len(self.values)

    def show_value(self, v: int) -> str:
        return show_value(self.values[v - 1]) if 0 < v <= len(self.values) else "-"

    def client(self, c: int) -> _Client:
        cl = self.clients.get(c)
        if cl is None:
            cl = self.clients[c] = _Client()
        return cl

    def add(self, action: str, params: tuple[Any, ...], index: int, what: str,
            observe: tuple[Any, ...] | None = None) -> None:
        self.events.append({"action": action, "params": params, "observe": observe,
                            "index": index, "what": what})


@dataclass
class _Call:
    """A client node's call in progress."""

    op: str
    args: Mapping[str, Any]
    index: int
    wors: list[Key] = field(default_factory=list)

    def own_value(self, wor: Key, sent: str) -> str:
        """The value this call itself writes to ``wor`` (for a read's repair: what it sends)."""
        own = own_value(self.op, self.args, wor)
        return sent if own is None else own


def own_value(op: str, args: Mapping[str, Any], wor: Key) -> str | None:
    """The value (hex) a client call writes to ``wor`` by its arguments, if it writes one."""
    if op == "write" and isinstance(args.get("value"), str):
        return str(args["value"])
    if op == "alloc" and isinstance(args.get("meta"), str):
        return str(args["meta"])
    if op == "write_range":
        vals, lo = args.get("values"), args.get("lo")
        if isinstance(vals, list) and isinstance(lo, int) and 0 <= wor[2] - lo < len(vals):
            return str(vals[wor[2] - lo])
    return None


def split_request(msg: Mapping[str, Any]) -> list[tuple[str, Any, Mapping[str, Any]]]:
    """A request as per-WOR parts: ``(kind, key, fields)``; ranges become one part per offset;
    ``trim`` and ``seal`` give ``(kind, segment or epoch, msg)``."""
    t = msg["t"]
    if t in ("prepare", "accept", "read"):
        return [(t, _key(msg["wor"]), msg)]
    if t == "prepare_range":
        return [("prepare", (msg["segment"], "data", o), msg) for o in range(msg["lo"], msg["hi"])]
    if t == "accept_range":
        return [("accept", (msg["segment"], "data", o), {"ballot": msg["ballot"], "value": v})
                for o, v in zip(range(msg["lo"], msg["hi"]), msg["values"])]
    if t == "trim":
        return [("trim", msg["segment"], msg)]
    return [(t, msg.get("epoch"), msg)]


def split_reply(msg: Mapping[str, Any]) -> list[tuple[str, Key, Mapping[str, Any]]]:
    """A reply as per-WOR parts ``(kind, key, fields)`` (range replies: one per offset; a range
    refused as a whole gives one part per offset with its status)."""
    t = msg["t"]
    if t in ("promise", "accepted", "read_reply"):
        return [(t, _key(msg["wor"]), msg)]
    if t in ("promise_range", "accepted_range"):
        if msg["results"]:
            return [(r["t"], _key(r["wor"]), r) for r in msg["results"]]
        single = "promise" if t == "promise_range" else "accepted"
        return [(single, (msg["segment"], "data", o), {"status": msg["status"]})
                for o in range(msg["lo"], msg["hi"])]
    return []


class _Projector:
    """The pass over a trace that builds every WOR's :class:`WorProjection`."""

    def __init__(self, num: Numbering) -> None:
        self.num = num
        self.wors: dict[Key, WorProjection] = {}
        self.calls: dict[str, _Call] = {}
        self.client_of = {n: i for i, n in enumerate(num.clients)}
        self.server_set = set(num.acceptors)
        self.trims: dict[int, set[int]] = {}  # segment -> acceptors that durably trimmed it

    def wor(self, key: Key) -> WorProjection:
        w = self.wors.get(key)
        if w is None:
            w = self.wors[key] = WorProjection(key, self.num)
        return w

    def run(self, events: Sequence[Mapping[str, Any]]) -> dict[Key, WorProjection]:
        for i, ev in enumerate(events):
            kind, node = ev["kind"], ev["node"]
            if kind == "persist" and node in self.server_set:
                self.persist(i, node, ev)
            elif kind == "send" and node in self.server_set:
                if ev["msg"].get("t") in REPLIES:
                    self.reply(i, node, ev)
            elif kind == "send" and node in self.client_of:
                if ev["msg"].get("t") in REQUESTS:
                    self.request(i, node, ev)
            elif kind == "invoke" and node in self.client_of:
                self.calls[node] = _Call(ev["op"], ev.get("args") or {}, i)
            elif kind == "response" and node in self.client_of:
                self.response(i, node, ev)
        return self.wors

    # -- servers --------------------------------------------------------------------------------

    def persist(self, i: int, node: str, ev: Mapping[str, Any]) -> None:
        a = self.num.acceptor(node)
        change = ev["change"]
        if change == "trim":
            self.trims.setdefault(int(ev["segment"]), set()).add(a)
            return
        if change not in ("promise", "accept"):
            return
        w = self.wor(_key(ev["wor"]))
        if a in self.trims.get(w.wor[0], ()):
            return  # wor.paxos has no trim: the trim checks look at this
        prom = _ballot(ev["promised"])
        acc = _ballot(ev["accepted"]) if ev.get("accepted") is not None else None
        val = ev.get("value")
        prev = w.durable.get(a, (ZERO, None, None))
        new = (prom, acc, val)
        w.durable[a] = new
        state = self.model_state(w, new)
        if (acc, val) != prev[1:] and acc is not None and val is not None:
            mb = self.num.ballot(acc)
            w.add("Accept", (a, mb, w.value(val)), i,
                  f"{node} durably accepts {show_value(val)} at {show_ballot(acc)}",
                  ("acceptor", a, state))
        elif prom != prev[0]:
            w.add("Promise", (a, self.num.ballot(prom)), i,
                  f"{node} durably promises {show_ballot(prom)}", ("acceptor", a, state))

    def model_state(self, w: WorProjection, st: tuple[Ballot, Ballot | None, str | None]
                    ) -> tuple[int, int, int]:
        prom, acc, val = st
        return (self.num.ballot(prom), self.num.ballot(acc) if acc is not None else 0,
                w.value(val) if val is not None else 0)

    def reply(self, i: int, node: str, ev: Mapping[str, Any]) -> None:
        a = self.num.acceptor(node)
        for t, key, r in split_reply(ev["msg"]):
            if r.get("status") not in ("ok", "preempted"):
                continue
            if a in self.trims.get(key[0], ()):
                continue
            w = self.wor(key)
            if t == "accepted":
                p = _ballot(r["promised"])
                w.add("Observe", (), i, f"{node} replies accepted showing promise {show_ballot(p)}",
                      ("promised", a, self.num.ballot(p)))
                continue
            acc = _ballot(r["accepted"]) if r.get("accepted") is not None else None
            st = (_ballot(r["promised"]), acc, r.get("value"))
            w.add("Observe", (), i,
                  f"{node} replies {t} showing promise {show_ballot(st[0])}, accepted "
                  f"{show_value(st[2])} at {show_ballot(acc)}",
                  ("acceptor", a, self.model_state(w, st)))

    # -- clients --------------------------------------------------------------------------------

    def request(self, i: int, node: str, ev: Mapping[str, Any]) -> None:
        c = self.client_of[node]
        call = self.calls.get(node)
        for t, key, f in split_request(ev["msg"]):
            if t == "trim":
                self.trim_sent(i, node, c, int(key))
                continue
            if t not in ("prepare", "accept", "read"):
                continue
            w = self.wor(key)
            if call is not None and key not in call.wors:
                call.wors.append(key)
            if t == "prepare":
                self.prepare(i, node, c, w, _ballot(f["ballot"]))
            elif t == "accept":
                sent = str(f["value"])
                own = call.own_value(key, sent) if call is not None else sent
                self.accept(i, node, c, w, _ballot(f["ballot"]), sent, own)
            else:
                cl = w.client(c)
                if cl.phase in ACTIVE:
                    self.timeout(i, node, c, w, "reads again")

    def timeout(self, i: int, node: str, c: int, w: WorProjection, why: str) -> None:
        w.add("Timeout", (c,), i, f"{node} abandons its attempt ({why})")
        w.client(c).phase = IDLE

    def prepare(self, i: int, node: str, c: int, w: WorProjection, b: Ballot) -> None:
        cl = w.client(c)
        if cl.phase == CAPTURING and cl.ballot == b:
            return  # a resend
        if cl.phase in ACTIVE:
            self.timeout(i, node, c, w, f"new ballot {show_ballot(b)}")
        clients = len(self.num.clients)
        while cl.rounds + 1 < b[0]:  # rounds this client spent elsewhere
            cl.rounds += 1
            skipped = (cl.rounds - 1) * clients + c + 1
            w.add("Capture", (c,), i, f"{node} round {cl.rounds} (used elsewhere)",
                  ("ballot", c, skipped))
            w.add("Timeout", (c,), i, f"{node} round {cl.rounds} (used elsewhere)")
        cl.rounds += 1
        w.add("Capture", (c,), i, f"{node} captures with ballot {show_ballot(b)}",
              ("ballot", c, self.num.ballot(b)))
        cl.phase, cl.ballot, cl.sent = CAPTURING, b, None

    def accept(self, i: int, node: str, c: int, w: WorProjection, b: Ballot, sent: str,
               own: str) -> None:
        cl = w.client(c)
        v, mv = w.value(own), w.value(sent)
        if b == ZERO:
            if cl.phase == UWRITING and cl.sent == sent:
                return
            if cl.phase in ACTIVE:
                self.timeout(i, node, c, w, "unsafe write")
            w.add("UnsafeWrite", (c, v), i, f"{node} writes {show_value(sent)} unsafely (ballot 0)",
                  ("proposal", 0, mv))
            cl.phase, cl.sent = UWRITING, sent
            return
        if cl.phase == WRITING and cl.ballot == b and cl.sent == sent:
            return  # a resend
        if cl.phase == CAPTURING and cl.ballot == b:
            w.add("CaptureDone", (c,), i, f"{node}'s capture {show_ballot(b)} completes")
        elif cl.phase in ACTIVE:
            self.timeout(i, node, c, w, f"writes at {show_ballot(b)}")
        w.add("Write", (c, v), i, f"{node} proposes {show_value(sent)} at {show_ballot(b)}"
              + (f" (its own value {show_value(own)})" if own != sent else ""),
              ("proposal", self.num.ballot(b), mv))
        cl.phase, cl.ballot, cl.sent = WRITING, b, sent

    def trim_sent(self, i: int, node: str, c: int, segment: int) -> None:
        w = self.wors.get((segment, "trim", 0))
        if w is not None and w.client(c).phase in ACTIVE:
            self.timeout(i, node, c, w, "its trim call moves on to applying the trim")

    def response(self, i: int, node: str, ev: Mapping[str, Any]) -> None:
        call = self.calls.pop(node, None)
        if call is None:
            return
        c = self.client_of[node]
        res = ev["result"]
        for key in call.wors:
            w = self.wors[key]
            cl = w.client(c)
            r = _result_for(call, key, res)
            if call.op in ("capture", "capture_range") and isinstance(r, dict):
                if cl.phase == CAPTURING:
                    w.add("CaptureDone", (c,), i, f"{node}'s capture returns {show_ballot(cl.ballot)}")
                    cl.phase = HOLD
                    continue
            elif r in ("OK", "ALREADY_WRITTEN") and call.op in ("write", "alloc", "write_range"):
                if cl.phase in (WRITING, UWRITING):
                    w.add("WriteDone", (c, r), i, f"{node}'s write returns {r}")
                    cl.phase = IDLE
                    continue
            elif call.op in ("read", "check") and isinstance(r, str) and r not in CONDITIONS:
                if cl.phase == WRITING:
                    w.add("WriteDone", (c, "OK"), i, f"{node}'s read repair completes")
                    cl.phase = IDLE
                elif cl.phase in ACTIVE:
                    self.timeout(i, node, c, w, "its read returns")
                w.add("Observe", (), i, f"{node}'s read returns {show_value(r)}",
                      ("chosen", w.value(r)))
                continue
            elif call.op in ("read", "check") and r in ("EMPTY", "NOT_ALLOCATED"):
                if cl.phase == CAPTURING:
                    w.add("CaptureDone", (c,), i, f"{node}'s read repair capture finds nothing")
                    cl.phase = HOLD
                    continue
            if cl.phase in ACTIVE:
                self.timeout(i, node, c, w, f"its call returns {_short(r)}")


def _result_for(call: _Call, key: Key, res: Any) -> Any:
    """The part of a call's result about ``key`` (range calls answer per offset)."""
    if call.op in ("write_range", "capture_range") and isinstance(res, list):
        lo = call.args.get("lo")
        if isinstance(lo, int) and 0 <= key[2] - lo < len(res):
            return res[key[2] - lo]
        return None
    if call.op == "alloc" and isinstance(res, bool):
        return "OK" if res else "ALREADY_WRITTEN"
    return res


def _short(x: Any) -> str:
    return x if isinstance(x, str) else repr(x)[:40]


def project(events: Sequence[Mapping[str, Any]], *,
            acceptors: Sequence[str] | None = None) -> dict[Key, WorProjection]:
    """Every WOR's model events (see the module docstring). ``acceptors`` names the server
    nodes in model order (default: every server node of the trace, in natural order)."""
    return _Projector(numbering(events, acceptors=acceptors)).run(events)


# -- checking and explaining -------------------------------------------------------------------


@dataclass
class WorVerdict:
    """The trace validation of one WOR, explained in the trace's words on failure."""

    wor: Key
    result: TraceCheckResult
    event: dict[str, Any] | None = None
    explanation: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.result.ok)


def check_wor(projection: WorProjection) -> WorVerdict:
    """Validate one WOR's model events against ``wor.paxos``."""
    params = projection.params
    model = paxos_model(params)
    emap = paxos_event_map(params)
    result = validate_trace(model, projection.events, emap)
    if result.ok:
        return WorVerdict(projection.wor, result)
    assert result.failed_index is not None
    event = projection.events[result.failed_index]
    states = _frontier(model, projection.events[:result.failed_index], emap)
    return WorVerdict(projection.wor, result, event, explain(projection, event, states))


def _frontier(model: paxos.PaxosWOR, events: Iterable[Mapping[str, Any]],
              emap: EventMap) -> list[paxos.State]:
    """The model states that explain ``events`` (re-run to show the state before a failure)."""
    acts = {a.name: a for a in model.actions()}
    states = set(model.init_states())
    for e in events:
        act = acts[str(emap.action(e))]
        states = {t for s in states for p, t in act.successors(s)
                  if emap.params_match(e, p) and emap.observed_match(e, t)}
    return sorted(states, key=repr)


def explain(w: WorProjection, event: Mapping[str, Any], states: Sequence[paxos.State]) -> str:
    """Why no state of the model explains ``event``, in trace names (one possible state)."""
    num = w.numbering
    head = f"{_show_key(w.wor)}: {event['what']}"
    if not states:
        return head + ": no model state explains the events before it"
    s = states[0]
    quorum = len(num.acceptors) // 2 + 1

    def a_name(a: int) -> str:
        return num.acceptors[a]

    def ballot(m: int) -> str:
        return show_ballot(num.trace_ballot(m))

    def acc_state(a: int) -> str:
        p, b, v = s[0][a]
        return (f"promised {ballot(p)}, accepted "
                + (f"{w.show_value(v)} at {ballot(b)}" if v else "nothing"))

    act, params, obs = event["action"], event["params"], event.get("observe")
    if act == "Observe" and obs is not None and obs[0] in ("acceptor", "promised"):
        a = obs[1]
        return (f"{head}, but {a_name(a)}'s durable state is {acc_state(a)}: the reply reveals "
                "a state that was not durable (or never existed)")
    if act == "Observe" and obs is not None and obs[0] == "chosen":
        votes = _votes(s, w, num)
        return (f"{head}, but no quorum ({quorum} of {len(num.acceptors)}) has accepted "
                f"{w.show_value(obs[1])} at one ballot (durable votes: {votes})")
    if act in ("Promise", "Accept"):
        a = params[0]
        what = "prepared" if act == "Promise" else "proposed"
        if act == "Accept" and (params[1], params[2]) not in s[3]:
            return (f"{head}, but no client {what} {w.show_value(params[2])} at "
                    f"{ballot(params[1])} (proposals: {_proposals(s, w, num)})")
        return f"{head}, but before it {a_name(a)} had {acc_state(a)}"
    if act == "Capture" and obs is not None:
        c = params[0]
        rnd = s[5][c][1]
        return (f"{head}, but {num.clients[c]} already used round {rnd}: a capture needs a "
                f"fresh ballot above {ballot(_cur(s, c, len(num.clients)))}")
    if act in ("CaptureDone",):
        c = params[0]
        b = num.trace_ballot(_cur(s, c, len(num.clients)))
        who = sorted(a_name(n) for n, bb, _mb, _mv in s[2] if bb == num.ballot(b))
        return (f"{head}, but only {who or 'no acceptor'} durably promised {show_ballot(b)} "
                f"(a quorum is {quorum})")
    if act == "Write":
        c = params[0]
        if s[5][c][0] != paxos.HOLD:
            return (f"{head}, but {num.clients[c]} holds no completed capture to write with "
                    f"(it is {paxos.PHASE_NAMES[s[5][c][0]]})")
        mb = _cur(s, c, len(num.clients))
        proms = sorted((a_name(n), ballot(bb2), w.show_value(mv)) for n, bb, bb2, mv in s[2]
                       if bb == mb)
        reported = ", ".join(f"{n}: {v} at {b}" if v != "-" else f"{n}: nothing"
                             for n, b, v in proms)
        return (f"{head}, but Paxos must carry the value of the highest ballot that its "
                f"capture's promises report ({reported or 'no promises'})")
    if act == "WriteDone":
        return (f"{head}, but its proposal is not accepted by a quorum (durable votes: "
                f"{_votes(s, w, num)})")
    if act == "UnsafeWrite":
        return f"{head}, but another ballot-0 proposal exists ({_proposals(s, w, num)})"
    return head + " is not a step of wor.paxos here"


def _cur(s: paxos.State, c: int, clients: int) -> int:
    """Client ``c``'s current model ballot in ``s`` (as ``PaxosWOR.current_ballot``)."""
    rnd = s[5][c][1]
    return (rnd - 1) * clients + c + 1 if rnd else 0


def _votes(s: paxos.State, w: WorProjection, num: Numbering) -> str:
    out = sorted(f"{num.acceptors[n]} {w.show_value(v)}@{show_ballot(num.trace_ballot(b))}"
                 for n, b, v in s[4])
    return ", ".join(out) or "none"


def _proposals(s: paxos.State, w: WorProjection, num: Numbering) -> str:
    out = sorted(f"{w.show_value(v)}@{show_ballot(num.trace_ballot(b))}" for b, v in s[3])
    return ", ".join(out) or "none"


def _show_key(k: Key) -> str:
    return f"WOR [{k[0]}, {k[1]}, {k[2]}]"


# -- reading traces ---------------------------------------------------------------------------


def show_event(ev: Mapping[str, Any]) -> str:
    """One trace event as a line a person reads (for excerpts)."""
    t = f"{ev['time'] / 1e6:9.3f}ms {ev['node']:>4}"
    kind = ev["kind"]
    if kind in ("send", "recv"):
        arrow = "->" if kind == "send" else "<-"
        return f"{t} {arrow} {ev['peer']:<4} {_show_msg(ev['msg'])}"
    if kind == "persist":
        ch = ev["change"]
        if ch in ("promise", "accept"):
            acc = (f" accepted {show_value(ev.get('value'))} at {show_ballot(_ballot(ev['accepted']))}"
                   if ev.get("accepted") is not None else "")
            return (f"{t} persist {_show_key(_key(ev['wor']))} promised "
                    f"{show_ballot(_ballot(ev['promised']))}{acc}")
        return f"{t} persist {ch} " + str(ev.get("segment", ev.get("epoch", "")))
    if kind == "invoke":
        return f"{t} invoke #{ev['id']} {ev['op']} {_show_args(ev.get('args') or {})}"
    if kind == "response":
        return f"{t} return #{ev['id']} {ev['op']} -> {show_result(ev['result'])}"
    if kind == "fault":
        return f"{t} FAULT {ev['fault']} {ev['target']} {ev.get('detail') or ''}"
    return f"{t} {kind} " + str({k: v for k, v in ev.items() if k not in ('node', 'time', 'seq', 'kind')})


def _show_msg(m: Mapping[str, Any]) -> str:
    t = m.get("t", "?")
    parts = [t]
    if "wor" in m:
        parts.append(_show_key(_key(m["wor"]))[4:])
    if "segment" in m and "wor" not in m:
        parts.append(f"seg {m['segment']}" + (f" [{m['lo']},{m['hi']})" if "lo" in m else ""))
    if "status" in m:
        parts.append(m["status"])
    if m.get("ballot") is not None:
        parts.append("b=" + show_ballot(_ballot(m["ballot"])))
    if "value" in m and t == "accept":
        parts.append("v=" + show_value(m["value"]))
    if "values" in m:
        parts.append("v=" + ",".join(show_value(v) for v in m["values"]))
    if t in ("promise", "read_reply", "accepted") and m.get("promised") is not None:
        parts.append("promised " + show_ballot(_ballot(m["promised"])))
    if t in ("promise", "read_reply") and m.get("accepted") is not None:
        parts.append(f"has {show_value(m.get('value'))}@{show_ballot(_ballot(m['accepted']))}")
    if m.get("results"):
        parts.append("[" + "; ".join(_show_msg(r) for r in m["results"]) + "]")
    return " ".join(parts)


def _show_args(a: Mapping[str, Any]) -> str:
    out = []
    for k, v in a.items():
        if k in ("value", "meta"):
            v = show_value(v)
        elif k == "values" and isinstance(v, list):
            v = "[" + ", ".join(show_value(x) for x in v) + "]"
        out.append(f"{k}={v}")
    return " ".join(out)


def show_result(r: Any) -> str:
    """A call's result as people read it (values as text, captures with their ballot)."""
    if isinstance(r, str) and r not in CONDITIONS:
        return show_value(r)
    if isinstance(r, dict) and "ballot" in r:
        return f"captured {show_ballot(_ballot(r['ballot']))}" + (
            f" adopting {show_value(r['adopted'])}" if r.get("adopted") else "")
    if isinstance(r, list):
        return "[" + ", ".join(show_result(x) for x in r) + "]"
    return str(r)


__all__ = [
    "Key", "Numbering", "ObservedPaxos", "ProjectionError", "WorProjection", "WorVerdict",
    "check_wor", "explain", "numbering", "observed", "own_value", "paxos_event_map", "paxos_model",
    "project",
    "show_event", "show_result", "show_value",
]

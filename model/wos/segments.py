"""WormSpace segments over write-once registers: the WOS module, refining ``spec/wos.py``.

Every segment is a **metadata WOR**, a **trim WOR** and one **data WOR per offset**, each an
instance of a lower WOR model driven through a :class:`~wormspace.model.wos.plug.WorPlug`: the
atomic WOR spec (``lower="wor"``, the layered way) or Paxos-WOR (``lower="wor.paxos"``, flat).
The module never looks inside a register; it invokes operations and reads its own answers.

Client protocol (one operation at a time; every client step first passes the servers' gate:
a request carrying an old configuration is answered ``SEALED`` and teaches the client the new
one, a request to a dropped segment is answered ``TRIMMED``):

* ``alloc(s, m)``: capture the metadata WOR, write ``m``; ``OK`` -> ``META + m``;
  ``ALREADY_WRITTEN`` -> read the winner -> ``META + w``; ``PREEMPTED`` -> ``PREEMPTED``.
* ``check(s)``: read the metadata WOR (``EMPTY`` -> ``NOT_ALLOCATED``), then the trim WOR: empty ->
  ``META + m``; written -> the trim is *partly applied*: complete it (``CompleteTrim``: the
  servers drop the segment), then answer ``TRIMMED``.
* ``trim(s)``: capture the trim WOR, write it; then ``CompleteTrim``, then ``TRIMMED``.
* ``capture``/``write``/``read`` of ``[lo, hi)``: unless the client already knows the segment is
  allocated (allocation is write-once, so that knowledge never goes stale), read the metadata
  WOR first (``EMPTY`` -> ``NOT_ALLOCATED``); then issue the operation on every WOR of the range
  in one round (a write only where the client holds a capture id: ``NOT_CAPTURED`` elsewhere);
  the per-register steps interleave freely; answer the per-address codes.
* ``listen(s)``: past the gate, the servers record the client as a subscriber and answer ``OK``.
  When a data WOR of a segment that is not dropped *becomes written* (its value in the plug's
  view of the lower state goes from ``EMPTY`` to ``v`` in a step), the servers queue the
  notification ``(s, offset, v)`` for every subscriber; ``Notify`` delivers a client's oldest
  queued one; dropping a segment discards its queued ones. Earlier writes are not replayed.

The servers' state is modelled where the WORs cannot hold it: the configuration (``epoch``,
bumped by ``Seal``) and per segment whether it was dropped. Ghost variables, read only by the
refinement mapping and the invariants: the metadata values and trims that were invoked, whether
the segment was unallocated when each operation was invoked, and a monitor of answers given by
a dropped segment.

``bug`` seeds one mistake (see ``BUGS``) for the mutation tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError, Refinement
from wormspace.model.wos.plug import LOWERS, Inst, WorPlug
from wormspace.spec import wor
from wormspace.spec import wos as spec
from wormspace.spec.wos import (
    ALLOC,
    ALREADY_WRITTEN,
    CAPTURE,
    CAPTURED,
    CHECK,
    DATA_OPS,
    EMPTY,
    IDLE,
    LISTEN,
    META,
    NONE,
    NOT_ALLOCATED,
    NOT_CAPTURED,
    OK,
    PREEMPTED,
    READ,
    SEALED,
    TIMEOUT,
    TRIM,
    TRIMMED,
    VALUE,
    WRITE,
)

#: The seeded bugs.
BUGS = {
    "alloc_without_capture": "alloc writes the metadata WOR with an unsafe write, no capture",
    "trim_not_completed": "check meets a written trim WOR and answers TRIMMED without completing it",
    "batch_write_unchecked": "write_range skips the capture check (unsafe writes where no cid is held)",
    "sealed_accept": "servers accept requests of a sealed configuration",
    "notify_unwritten": "servers notify subscribers when a write request reaches a data WOR, "
                        "before (and whether or not) it takes effect",
}

# Client stages: what the client waits for.
START, ENS, CAP, WR, RDW, RDT, COMPLETE, FINAL, DISP = range(9)
STAGE_NAMES = ("start", "reading meta", "capturing", "writing", "reading winner",
               "reading trim", "completing trim", "trim done", "dispatched")
# Register roles within a segment: metadata, trim, then data offsets.
META_W, TRIM_W, DATA_W = 0, 1, 2

# State: (epoch, segs, wors, clients, notes)
#   segs     per segment (dropped, mprop, tprop, served_after_drop)
#   wors     per register an instance (lower state, unsafe writes); register of segment s,
#            role r is s * (size + 2) + r
#   clients  per client (op, seg, lo, hi, arg, stage, mask, g, ep, left, known, ret)
#            known: bitmask of segments the client knows are allocated
#   notes    per client (subscribed segments, queued notifications, delivered notifications),
#            the servers' subscriptions and outboxes and the client's inbox; the same shape
#            as the spec's (spec.subscribe/push/notify operate on both)
Seg = tuple[int, int, int, int]
Client = tuple[int, int, int, int, int, int, int, int, int, int, int, Any]
State = tuple[int, tuple[Seg, ...], tuple[Inst, ...], tuple[Client, ...], tuple[spec.Note, ...]]


@dataclass
class Segments(Model[State]):
    """The WOS module for ``segments`` segments of ``size`` addresses (see the module doc)."""

    segments: int = 1
    size: int = 1
    clients: int = 2
    values: int = 1
    metas: int = 2
    replica_sets: int = 1
    epochs: int = 2
    ops: int = 2
    timeouts: bool = False
    menu: str = "alloc,check,trim,capture,write,read"
    workload: str = "alloc1,write1,trim/alloc2,check"
    lower: str = "wor"
    acceptors: int = 3
    rounds: int = 1
    bug: str = ""
    plugs: tuple[WorPlug, WorPlug, WorPlug] = field(init=False, repr=False)
    wos: spec.WOS = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bug and self.bug not in BUGS:
            raise ParameterError(f"wos.segments: unknown bug {self.bug!r}; one of {sorted(BUGS)}")
        if self.lower not in LOWERS:
            raise ParameterError(f"wos.segments: lower must be one of {', '.join(LOWERS)}")
        if self.lower == "wor.paxos" and not self.timeouts:
            # Paxos answers PREEMPTED only through its Timeout; without it a preempted write
            # would hang, and the spec would have to promise what Paxos cannot.
            raise ParameterError("wos.segments: lower=wor.paxos needs timeouts=true")
        self.wos = spec.WOS(self.segments, self.size, self.clients, self.values, self.metas,
                            self.replica_sets, self.epochs, self.ops, self.timeouts, self.menu,
                            self.workload)
        self.name = "wos.segments"
        self.params = {"segments": self.segments, "size": self.size, "clients": self.clients,
                       "values": self.values, "metas": self.metas,
                       "replica_sets": self.replica_sets, "epochs": self.epochs, "ops": self.ops,
                       "timeouts": self.timeouts, "menu": self.menu,
                       "workload": self.workload, "lower": self.lower,
                       "bug": self.bug}
        extra: dict[str, Any] = {}
        if self.lower == "wor.paxos":
            extra = {"acceptors": self.acceptors, "rounds": self.rounds}
            self.params.update(extra)
        # One plug per register role: the metadata WOR holds metadata, the trim WOR one value.
        self.plugs = (WorPlug(self.lower, self.clients, self.metas, give_up=self.timeouts, **extra),
                      WorPlug(self.lower, self.clients, 1, give_up=self.timeouts, **extra),
                      WorPlug(self.lower, self.clients, self.values, give_up=self.timeouts,
                              **extra))
        self._stride = self.size + 2

    # -- registers -----------------------------------------------------------------------------

    def reg_index(self, s: int, role: int) -> int:
        """The index in ``wors`` of segment ``s``'s register ``role`` (META_W, TRIM_W, DATA_W+off)."""
        return s * self._stride + role

    def plug(self, role: int) -> WorPlug:
        """The plug driving registers of ``role``."""
        return self.plugs[min(role, DATA_W)]

    # -- model interface -----------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        wors = tuple(self.plug(r).init() for _s in range(self.segments)
                     for r in range(self._stride))
        cl = tuple((IDLE, 0, 0, 0, 0, START, 0, 0, 0, self.wos.budget(c), 0, NONE)
                   for c in range(self.clients))
        return [(0, ((0, 0, 0, 0),) * self.segments, wors, cl,
                 ((0, (), ()),) * self.clients)]

    def actions(self) -> Sequence[Action[State]]:
        acts: list[Action[State]] = [
            Action("InvokeAlloc", self._invoke_alloc, ("c", "s", "meta")),
            Action("InvokeCheck", lambda st: self._invoke(st, CHECK), ("c", "s")),
            Action("InvokeTrim", lambda st: self._invoke(st, TRIM), ("c", "s")),
            Action("InvokeCapture", lambda st: self._invoke(st, CAPTURE), ("c", "s", "lo", "hi")),
            Action("InvokeWrite", lambda st: self._invoke(st, WRITE), ("c", "s", "lo", "hi", "v")),
            Action("InvokeRead", lambda st: self._invoke(st, READ), ("c", "s", "lo", "hi")),
            Action("InvokeListen", lambda st: self._invoke(st, LISTEN), ("c", "s")),
            Action("Proceed", lambda st: self._client_steps(st, False), ("c", "step")),
            Action("CompleteTrim", self._complete_trim, ("c", "s")),
            Action("Respond", lambda st: self._client_steps(st, True), ("c", "ret")),
            Action("Seal", self._seal, ("epoch",)),
            Action("Notify", spec.notify, ("c", "s", "off", "v")),
            Action("Terminated", spec.terminated, ()),
        ]
        for role, label in ((META_W, "Meta"), (TRIM_W, "Trim"), (DATA_W, "Data")):
            for act in self.plug(role).internal:
                acts.append(Action(f"{label}.{act.name}", self._lower_step(role, act),
                                   ("s", "off", "p") if role == DATA_W else ("s", "p")))
        return acts

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        invs: dict[str, Callable[[State], bool]] = {
            "AllocUnique": self.alloc_unique,
            "TrimIsFinal": self.trim_is_final,
            "TrimmedNeverServes": lambda st: not any(g[3] for g in st[1]),
            "WorContractRespected": lambda st: all(i[1] & (i[1] - 1) == 0 for i in st[2]),
            "NotifiedIsWritten": lambda st: spec.notified_is_written(
                st[4], lambda s, o: self.plugs[DATA_W].reg(st[2][self.reg_index(s, DATA_W + o)])),
            "NotifiedOnce": lambda st: spec.notified_once(st[4]),
        }
        # Each register keeps the lower layer's own invariants (write-once among them).
        for name, inv in self.plugs[0].invariants().items():
            invs[f"WOR.{name}"] = functools.partial(_every_register, inv)
        return invs

    def refinement(self) -> Refinement[State, spec.State]:
        return Refinement(self.wos, self.to_spec,
                          "alloc takes effect when the metadata WOR is written, trim when the "
                          "servers drop the segment; data registers map through the lower "
                          "layer's own mapping; notifications map one to one")

    def variables(self, st: State) -> Mapping[str, Any]:
        epoch, segs, wors, cl = st[:4]
        out: dict[str, Any] = {"epoch": epoch}
        for s, (dropped, mprop, tprop, served) in enumerate(segs):
            regs = {}
            for r in range(self._stride):
                p, inst = self.plug(r), wors[self.reg_index(s, r)]
                name = ("meta", "trim")[r] if r < DATA_W else f"off{r - DATA_W}"
                regs[name] = dict(p.model.variables(inst[0]))
                if inst[1]:
                    regs[name]["unsafe_writers"] = [f"c{c}" for c in range(self.clients)
                                                    if inst[1] >> c & 1]
            out[f"seg{s}"] = {"dropped": bool(dropped),
                              "alloc_invoked": [f"meta{m}" for m in range(1, self.metas + 1)
                                                if mprop >> m & 1],
                              "trim_invoked": bool(tprop), "served_after_drop": bool(served),
                              "registers": regs}
        out["clients"] = {f"c{c}": _show(x) for c, x in enumerate(cl)}
        if any(n != (0, (), ()) for n in st[4]):
            out["notifications"] = {f"c{c}": spec.show_note(n) for c, n in enumerate(st[4])}
        return out

    # -- invariants ------------------------------------------------------------------------------

    def alloc_unique(self, st: State) -> bool:
        """At most one metadata value per segment, and every client told ``META + w`` about a
        segment was told the value its metadata WOR holds."""
        meta = self.plugs[META_W]
        for x in st[3]:
            ret = x[11]
            if isinstance(ret, int) and ret >= META:
                if meta.reg(st[2][self.reg_index(x[1], META_W)]) != ret - META:
                    return False
        return True

    def trim_is_final(self, st: State) -> bool:
        """A dropped segment's trim WOR is written, and a client told ``TRIMMED`` about a segment
        sees it dropped."""
        trim = self.plugs[TRIM_W]
        for s, g in enumerate(st[1]):
            if g[0] and not trim.reg(st[2][self.reg_index(s, TRIM_W)]):
                return False
        return all(x[11] != TRIMMED or st[1][x[1]][0] for x in st[3])

    # -- invocations ---------------------------------------------------------------------------

    def _start(self, st: State, c: int, op: int, s: int, lo: int, hi: int, arg: int) -> State:
        x = st[3][c]
        g = int(not self.plugs[META_W].reg(st[2][self.reg_index(s, META_W)]))  # ghost
        return _client(st, c, (op, s, lo, hi, arg, START, 0, g, x[8], x[9] - 1, x[10], NONE))

    def _invoke_alloc(self, st: State) -> list[tuple[tuple[int, ...], State]]:
        out: list[tuple[tuple[int, ...], State]] = []
        for (c, s, _lo, _hi, m), t in self._wos_invocations(st, ALLOC):
            dropped, mprop, tprop, served = t[1][s]
            out.append(((c, s, m), _seg(t, s, (dropped, mprop | 1 << m, tprop, served))))
        return out

    def _invoke(self, st: State, op: int) -> list[tuple[tuple[int, ...], State]]:
        out: list[tuple[tuple[int, ...], State]] = []
        for (c, s, lo, hi, v), t in self._wos_invocations(st, op):
            if op == TRIM:
                dropped, mprop, _tp, served = t[1][s]
                t = _seg(t, s, (dropped, mprop, 1, served))
            p = ((c, s) if op in (CHECK, TRIM, LISTEN) else
                 (c, s, lo, hi, v) if op == WRITE else (c, s, lo, hi))
            out.append((p, t))
        return out

    def _wos_invocations(self, st: State, op: int) -> list[tuple[tuple[int, ...], State]]:
        """Every way an idle client with operations left may invoke ``op`` (as in the spec)."""
        ranges = self.wos.ranges if op in DATA_OPS else [(0, 0)]
        args = (range(1, self.metas + 1) if op == ALLOC else
                range(1, self.values + 1) if op == WRITE else (0,))
        out: list[tuple[tuple[int, ...], State]] = []
        for c, x in enumerate(st[3]):
            if x[0] != IDLE or not x[9]:
                continue
            for s in range(self.segments):
                for lo, hi in ranges:
                    for a in args:
                        if not self.wos.may_invoke(c, x[9], (op, s, lo, hi, a)):
                            continue
                        out.append(((c, s, lo, hi, a), self._start(st, c, op, s, lo, hi, a)))
        return out

    # -- the client protocol -------------------------------------------------------------------

    def _waits_on(self, x: Client) -> list[int]:
        """The registers (by role) whose answer the client is waiting for."""
        op, stage, mask = x[0], x[5], x[6]
        if stage in (ENS, RDW):
            return [META_W]
        if stage in (CAP, WR):
            return [META_W if op == ALLOC else TRIM_W]
        if stage == RDT:
            return [TRIM_W]
        if stage == DISP:
            return [DATA_W + o for o in range(x[2], x[3]) if mask >> o & 1]
        return []

    def _gate(self, st: State, x: Client) -> int:
        """The servers' answer before serving a request: SEALED, TRIMMED, or NONE (serve it)."""
        if x[8] < st[0] and self.bug != "sealed_accept":
            return SEALED
        if st[1][x[1]][0]:
            return TRIMMED
        return NONE

    def _client_steps(self, st: State, respond: bool) -> list[tuple[tuple[Any, ...], State]]:
        out: list[tuple[tuple[Any, ...], State]] = []
        for c, x in enumerate(st[3]):
            if x[0] == IDLE or x[5] == COMPLETE:
                continue
            regs = [self.reg_index(x[1], r) for r in self._waits_on(x)]
            if not all(self.plug(r).idle(st[2][i], c)
                       for r, i in zip(self._waits_on(x), regs)):
                continue
            gate = self._gate(st, x)
            steps: list[tuple[Any, Any]] = ([(None, gate)] if gate != NONE
                                            else self._protocol(st, c, x))
            for label, res in steps:  # label None: an answer; else the next state
                if label is not None and not respond:
                    out.append(((c, label), res))
                elif label is None and respond:
                    out.append(((c, spec.code_name(res)), self._answer(st, c, x, res)))
        return out

    def _answer(self, st: State, c: int, x: Client, code: Any) -> State:
        """The client answers ``code``: idle again, keeping its segment, configuration,
        knowledge and the answer (the same shape as the spec's ``answered``)."""
        ep = st[0] if code == SEALED else x[8]
        t = _client(st, c, (IDLE, x[1], 0, 0, 0, START, 0, 0, ep, x[9], x[10], code))
        if x[0] == LISTEN and code == OK:
            t = spec.subscribe(t, c, x[1])
        informative = code not in (SEALED, TRIMMED, PREEMPTED, TIMEOUT)
        dropped, mprop, tprop, served = st[1][x[1]]
        if dropped and informative and not served:  # monitor: a dropped segment answered
            t = _seg(t, x[1], (dropped, mprop, tprop, 1))
        return t

    def _protocol(self, st: State, c: int, x: Client) -> list[tuple[str | None, Any]]:
        """The client's next step past the gate: ``(label, next state)`` to proceed, or
        ``(None, code)`` to answer."""
        op, s, lo, hi, arg, stage = x[:6]
        wors = st[2]

        def ret(role: int) -> int:
            return self.plug(role).ret(wors[self.reg_index(s, role)], c)

        def go(role: int, wop: int, a: int, new_stage: int, label: str,
               new_x: Client | None = None) -> list[tuple[str | None, Any]]:
            i = self.reg_index(s, role)
            succ = self.plug(role).invoke(wors[i], c, wop, a)
            if not succ:  # the lower model refused the invocation (e.g. Paxos rounds spent)
                return [(None, TIMEOUT)]
            y = (new_x or x)[:5] + (new_stage,) + (new_x or x)[6:]
            return [(label, _client(_wor(st, i, w), c, y)) for w in succ]

        if stage == START:
            if op == LISTEN:
                return [(None, OK)]  # subscribed (see _answer)
            if op == ALLOC:
                if self.bug == "alloc_without_capture":
                    return go(META_W, wor.UWRITE, arg, WR, f"unsafe-write meta{arg}")
                return go(META_W, wor.CAPTURE, 0, CAP, "capture meta")
            if op == CHECK or not x[10] >> s & 1:
                return go(META_W, wor.READ, 0, ENS, "read meta")
            return self._main(st, c, x)
        if stage == ENS:
            r = ret(META_W)
            if r >= VALUE:
                if op == CHECK:
                    y = x[:4] + (r - VALUE,) + x[5:]
                    return go(TRIM_W, wor.READ, 0, RDT, "read trim", y)
                y = x[:10] + (x[10] | 1 << s, x[11])
                return self._main(st, c, y)
            return [(None, NOT_ALLOCATED if r == EMPTY else TIMEOUT)]
        if stage == CAP:
            r = ret(META_W if op == ALLOC else TRIM_W)
            if r != CAPTURED:
                return [(None, r)]
            if op == ALLOC:
                return go(META_W, wor.WRITE, arg, WR, f"write meta{arg}")
            return go(TRIM_W, wor.WRITE, 1, WR, "write trim")
        if stage == WR:
            if op == ALLOC:
                r = ret(META_W)
                if r == OK:
                    return [(None, META + arg)]
                if r == ALREADY_WRITTEN:
                    return go(META_W, wor.READ, 0, RDW, "read winner")
                return [(None, r)]
            r = ret(TRIM_W)
            if r in (OK, ALREADY_WRITTEN):
                return [("trim written", _client(st, c, x[:5] + (COMPLETE,) + x[6:]))]
            return [(None, r)]
        if stage == RDW:
            r = ret(META_W)
            return [(None, META + r - VALUE if r >= VALUE else
                     PREEMPTED if r == EMPTY else TIMEOUT)]
        if stage == RDT:
            r = ret(TRIM_W)
            if r == EMPTY:
                return [(None, META + arg)]
            if r >= VALUE:  # a partly applied trim: complete it before answering
                if self.bug == "trim_not_completed":
                    return [(None, TRIMMED)]
                return [("trim met", _client(st, c, x[:5] + (COMPLETE,) + x[6:]))]
            return [(None, TIMEOUT)]
        if stage == DISP:
            codes = tuple(ret(DATA_W + o) if x[6] >> o & 1 else NOT_CAPTURED
                          for o in range(lo, hi))
            return [(None, codes)]
        return []  # FINAL: the gate answers TRIMMED

    def _main(self, st: State, c: int, x: Client) -> list[tuple[str | None, Any]]:
        """Past the allocation check: trim's capture, or a data op's round to its registers."""
        op, s, lo, hi, arg = x[:5]
        if op == TRIM:
            i = self.reg_index(s, TRIM_W)
            succ = self.plugs[TRIM_W].invoke(st[2][i], c, wor.CAPTURE)
            if not succ:
                return [(None, TIMEOUT)]
            return [("capture trim", _client(_wor(st, i, w), c, x[:5] + (CAP,) + x[6:]))
                    for w in succ]
        data = self.plugs[DATA_W]
        results: list[tuple[int, State]] = [(0, st)]
        for o in range(lo, hi):
            i = self.reg_index(s, DATA_W + o)
            wop = {CAPTURE: wor.CAPTURE, WRITE: wor.WRITE, READ: wor.READ}[op]
            if op == WRITE and not data.holds(st[2][i], c):
                if self.bug != "batch_write_unchecked":
                    continue  # no capture id for this address: NOT_CAPTURED
                wop = wor.UWRITE
            succ = data.invoke(st[2][i], c, wop, arg)
            if not succ:
                return [(None, TIMEOUT)]
            results = [(mask | 1 << o, self._became_written(t, _wor(t, i, w), s))
                       for mask, t in results for w in succ]
            if op == WRITE and self.bug == "notify_unwritten":
                results = [(mask, spec.push(t, s, o, arg)) for mask, t in results]
        label = f"{spec.OP_NAMES[op]} round"
        return [(label, _client(t, c, x[:5] + (DISP, mask) + x[7:])) for mask, t in results]

    def _complete_trim(self, st: State) -> list[tuple[tuple[int, int], State]]:
        out = []
        for c, x in enumerate(st[3]):
            if x[5] == COMPLETE:
                s = x[1]
                _d, mprop, tprop, served = st[1][s]
                t = spec.discard_notes(_seg(st, s, (1, mprop, tprop, served)), s)
                out.append(((c, s), _client(t, c, x[:5] + (FINAL,) + x[6:])))
        return out

    def _seal(self, st: State) -> list[tuple[tuple[int], State]]:
        if st[0] + 1 < self.epochs:
            return [((st[0] + 1,), (st[0] + 1, *st[1:]))]
        return []

    def _lower_step(self, role: int, act: Action[Any]) -> Callable[[State], list[Any]]:
        plug, per_seg = self.plug(role), self.size if role == DATA_W else 1

        def step(st: State) -> list[Any]:
            out: list[tuple[tuple[Any, ...], State]] = []
            for s in range(self.segments):
                for k in range(per_seg):
                    i = self.reg_index(s, role + k)
                    for p, w in plug.steps(act, st[2][i]):
                        t = _wor(st, i, w)
                        if role == DATA_W:
                            out.append(((s, k, p), self._became_written(st, t, s)))
                        else:
                            out.append(((s, p), t))
            return out
        return step

    def _became_written(self, before: State, after: State, s: int) -> State:
        """``after`` with a notification queued for the subscribers of every data WOR of
        segment ``s`` whose value, in the plug's view, went from EMPTY to v (not if dropped)."""
        if before[1][s][0] or not any(n[0] >> s & 1 for n in after[4]):
            return after
        data = self.plugs[DATA_W]
        for o in range(self.size):
            i = self.reg_index(s, DATA_W + o)
            if before[2][i] is not after[2][i] and not data.reg(before[2][i]):
                v = data.reg(after[2][i])
                if v:
                    after = spec.push(after, s, o, v)
        return after

    # -- refinement mapping --------------------------------------------------------------------

    def to_spec(self, st: State) -> spec.State:
        """The refinement mapping onto ``spec.WOS``."""
        epoch, segs, wors, cl, notes = st
        meta_p, data_p = self.plugs[META_W], self.plugs[DATA_W]
        out_segs = []
        for s, (dropped, mprop, tprop, _served) in enumerate(segs):
            data = []
            for o in range(self.size):
                w = data_p.view(wors[self.reg_index(s, DATA_W + o)][0])
                slots = list(w[3])
                for c, x in enumerate(cl):
                    waiting = x[0] in DATA_OPS and x[5] == DISP and x[1] == s and x[6] >> o & 1
                    y = slots[c]
                    if not waiting and y[0] == wor.IDLE and (y[1] or y[4]):
                        slots[c] = (wor.IDLE, 0, 0, y[3], NONE)  # as the spec's settle()
                data.append((w[0], w[1], w[2], tuple(slots)))
            meta = meta_p.reg(wors[self.reg_index(s, META_W)])
            out_segs.append((meta, mprop, dropped, tprop, tuple(data)))
        out_cl = []
        for x in cl:
            op, s, lo, hi, arg, stage, mask, g, ep, left, _known, ret = x
            if op == IDLE:
                out_cl.append((IDLE, s, 0, 0, 0, 0, 0, 0, ep, left, ret))
            else:
                disp = int(stage == DISP)
                out_cl.append((op, s, lo, hi, 0 if op == CHECK else arg, disp,
                               mask if disp else 0, g, ep, left, NONE))
        return (epoch, tuple(out_segs), tuple(out_cl), notes)


def _client(st: State, c: int, x: Client) -> State:
    cl = st[3]
    return (st[0], st[1], st[2], cl[:c] + (x,) + cl[c + 1:], st[4])


def _seg(st: State, s: int, g: Seg) -> State:
    return (st[0], st[1][:s] + (g,) + st[1][s + 1:], st[2], st[3], st[4])


def _wor(st: State, i: int, w: Inst) -> State:
    return (st[0], st[1], st[2][:i] + (w,) + st[2][i + 1:], st[3], st[4])


def _show(x: Client) -> str:
    op, s, lo, hi, arg, stage, mask, _g, ep, left, known, ret = x
    if op == IDLE:
        text = "idle"
    elif op in DATA_OPS:
        text = f"{spec.OP_NAMES[op]}(s{s}[{lo}:{hi}]" + (f", v{arg})" if op == WRITE else ")")
        text += f" {STAGE_NAMES[stage]}" + (f" mask={mask:b}" if stage == DISP else "")
    else:
        text = f"{spec.OP_NAMES[op]}(s{s}" + (f", meta{arg})" if op == ALLOC else ")")
        text += f" {STAGE_NAMES[stage]}"
    text += f" ep={ep} left={left}"
    if known:
        text += f" knows-allocated={known:b}"
    if ret != NONE:
        text += f" ret={spec.code_name(ret)}"
    return text


def _every_register(inv: Callable[[Any], bool], st: State) -> bool:
    """A register invariant of the lower layer, in every register of ``st``."""
    return all(inv(i[0]) for i in st[2])

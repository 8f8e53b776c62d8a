"""The atomic WormSpace interface (WOS): segments of write-once registers, allocation, trimming
and sealed configurations. The contract in words is ``docs/layers/wos.md``; this is its
executable form, registered as ``wos``.

The address space is a sequence of segments of ``size`` addresses; address ``a`` is offset
``a % size`` of segment ``a // size``, served by replica set ``segment % P``
(:func:`locate`, :func:`replica_set`). Per segment the interface offers:

* ``alloc(s, meta)``: the first allocation wins; every answer names the winner (``META + m``);
* ``check(s)``: ``META + m`` if allocated with ``m``, else ``NOT_ALLOCATED``;
* ``trim(s)``: afterwards every operation on the segment answers ``TRIMMED``;
* ``capture``/``write``/``read`` of a range ``[lo, hi)`` of offsets (one address is a range of
  one), with one WOR-contract code per address; ``write`` writes only the addresses the client
  holds a capture id for (``NOT_CAPTURED`` for the others);
* ``seal()``: a new configuration; requests of the old one are answered ``SEALED`` and the client
  learns the new configuration; nothing written is lost (registers are untouched);
* ``listen(s)``: ``OK`` subscribes the client to the segment (atomically at the response); from
  then on every data WOR of the segment that becomes written (``EMPTY`` -> ``v``, while the
  segment is not trimmed) queues the notification ``(s, offset, v)`` for every subscriber, and
  ``Notify(c)`` delivers the client's oldest pending notification. No replay of earlier writes;
  a trim discards the segment's pending notifications.

Workload. Clients invoke operations from ``menu``, at most ``ops`` each, or, with ``workload``
(e.g. ``"alloc1,trim/alloc2,check"``, see :func:`parse_workload`), exactly the script given per
client; all interleavings and all register behaviours are still explored. A bounded workload
ends in the ``Terminated`` stutter, not in a deadlock. With ``timeouts`` a client may give up.

Atomicity. Allocation and trimming follow the WOR pattern: invoking ``alloc(s, m)`` *proposes*
``m`` and invoking ``trim(s)`` proposes the trim; a proposal takes effect atomically at some
point (``MetaTakesEffect``, ``TrimTakesEffect``), possibly after its invoker gave up, exactly as a
half-written WOR is finished by a later capture or read. Answers are decided by the state at the
response. The data of a segment *is* one atomic WOR (``spec/wor.py``) per offset, embedded here
unchanged: a data operation is dispatched atomically (``Dispatch``: allocated, not trimmed,
current configuration) to the WORs of its range, which then behave as the WOR contract says,
and its answer is gated once more at the response.

State (plain ints and tuples)::

    (epoch, segments, clients, notes)
    epoch     the current configuration (0 .. epochs-1)
    segment   (meta, mprop, trimmed, tprop, data)
      meta      0, or the winning metadata 1..M
      mprop     bitmask of metadata some alloc was invoked with
      trimmed   0/1
      tprop     1 once some trim was invoked
      data      per offset, an atomic WOR state (reg, owner, proposed, slots), see spec/wor.py
    client    (op, seg, lo, hi, arg, disp, mask, g, ep, left, ret)
      disp      data op: 1 once dispatched to its WORs
      mask      bitmask of the offsets it was dispatched to
      g         1 if the segment was unallocated when the op was invoked (justifies NOT_ALLOCATED)
      ep        the configuration the client knows (requests carry it)
      left      operations the client may still invoke (the workload bound ``ops``)
      ret       NONE while pending; a code; or, for a data op, a tuple of per-address codes
    note      per client (subs, pending, delivered)
      subs      bitmask of the segments the client listens to
      pending   notifications (s, offset, v) not yet delivered, oldest first
      delivered notifications delivered, in order
    Each address is written once, so a client holds at most one notification per address.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError
from wormspace.spec import wor

# Operations.
IDLE, ALLOC, CHECK, TRIM, CAPTURE, WRITE, READ, LISTEN = range(8)
OP_NAMES = ("idle", "alloc", "check", "trim", "capture", "write", "read", "listen")
DATA_OPS = (CAPTURE, WRITE, READ)

# Codes: the WOR's (NONE, CAPTURED, PREEMPTED, OK, ALREADY_WRITTEN, EMPTY, TIMEOUT, VALUE + v)
# plus the segment-level ones below. VALUE + v needs v < 20.
NONE, CAPTURED, PREEMPTED, OK, ALREADY_WRITTEN, EMPTY, TIMEOUT = range(7)
NOT_CAPTURED, NOT_ALLOCATED, TRIMMED = 7, 8, 9
VALUE = wor.VALUE
SEALED = 30
META = 40  # META + m: the segment is allocated, with metadata m
_NAMES = {NOT_CAPTURED: "NOT_CAPTURED", NOT_ALLOCATED: "NOT_ALLOCATED", TRIMMED: "TRIMMED",
          SEALED: "SEALED"}

Seg = tuple[int, int, int, int, tuple[wor.State, ...]]
Client = tuple[int, int, int, int, int, int, int, int, int, int, Any]
Note = tuple[int, tuple[tuple[int, int, int], ...], tuple[tuple[int, int, int], ...]]
State = tuple[int, tuple[Seg, ...], tuple[Client, ...], tuple[Note, ...]]

#: The atomic WOR's internal actions, which run inside every data register of the interface.
WOR_INTERNAL = ("WriteTakesEffect", "ProposedTakesEffect", "CaptureReturns", "Respond", "GiveUp")
#: The atomic WOR's invocation action per operation.
WOR_INVOKE = {wor.CAPTURE: "InvokeCapture", wor.WRITE: "InvokeWrite",
              wor.UWRITE: "InvokeUnsafeWrite", wor.READ: "InvokeRead"}


def locate(address: int, size: int) -> tuple[int, int]:
    """Address -> (segment, offset)."""
    if address < 0 or size < 1:
        raise ValueError("addresses are >= 0 and segments have at least one address")
    return address // size, address % size


def replica_set(segment: int, replica_sets: int) -> int:
    """The replica set serving ``segment`` (segments are partitioned round-robin)."""
    return segment % replica_sets


def code_name(code: Any) -> str:
    """A readable code: ``OK``, ``v2``, ``meta1``, ``TRIMMED``, or a tuple of those."""
    if isinstance(code, tuple):
        return "(" + ", ".join(code_name(x) for x in code) + ")"
    if code >= META:
        return f"meta{code - META}"
    if code in _NAMES:
        return _NAMES[code]
    return wor.ret_name(code)


def wor_invoke(acts: Mapping[str, Action[wor.State]], s: wor.State, c: int, op: int,
               arg: int) -> list[wor.State]:
    """The successors of WOR state ``s`` by client ``c`` invoking ``op`` (with value ``arg``),
    obtained by running the WOR spec's own invocation action (``acts``: its actions by name)."""
    want = (c,) if op in (wor.CAPTURE, wor.READ) else (c, arg)
    return [t for p, t in acts[WOR_INVOKE[op]].successors(s) if p == want]


@dataclass
class WOS(Model[State]):
    """The atomic WormSpace interface (see the module docstring)."""

    segments: int = 1
    size: int = 1
    clients: int = 2
    values: int = 2
    metas: int = 2
    replica_sets: int = 1
    epochs: int = 2
    ops: int = 2
    timeouts: bool = False
    menu: str = "alloc,check,trim,capture,write,read"
    workload: str = ""
    wor_model: wor.WOR = field(init=False)
    _wor_acts: dict[str, Action[wor.State]] = field(init=False, repr=False)
    ranges: list[tuple[int, int]] = field(init=False, repr=False)
    allowed: frozenset[int] = field(init=False, repr=False)
    script: tuple[tuple[tuple[int, int, int, int, int], ...], ...] | None = field(
        init=False, repr=False)

    def __post_init__(self) -> None:
        if min(self.segments, self.size, self.clients, self.values, self.metas,
               self.replica_sets, self.epochs, self.ops) < 1:
            raise ParameterError("wos: every parameter must be at least 1")
        if self.values >= 20 or self.metas >= 20:
            raise ParameterError("wos: values and metas must be below 20")
        self.name = "wos"
        self.params = {"segments": self.segments, "size": self.size, "clients": self.clients,
                       "values": self.values, "metas": self.metas,
                       "replica_sets": self.replica_sets, "epochs": self.epochs,
                       "ops": self.ops, "timeouts": self.timeouts, "menu": self.menu,
                       "workload": self.workload}
        self.allowed = parse_menu(self.menu)
        self.script = parse_workload(self.workload, self.clients, self.segments, self.size)
        self.wor_model = wor.WOR(self.clients, self.values)
        self._wor_acts = {a.name: a for a in self.wor_model.actions()}
        self.ranges = [(lo, hi) for lo in range(self.size) for hi in range(lo + 1, self.size + 1)]

    # -- model interface ---------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        w0 = next(iter(self.wor_model.init_states()))
        seg: Seg = (0, 0, 0, 0, (w0,) * self.size)
        return [(0, (seg,) * self.segments,
                 tuple((IDLE, 0, 0, 0, 0, 0, 0, 0, 0, self.budget(c), NONE)
                       for c in range(self.clients)), ((0, (), ()),) * self.clients)]

    def budget(self, c: int) -> int:
        """How many operations client ``c`` invokes in all."""
        return self.ops if self.script is None else len(self.script[c])

    def may_invoke(self, c: int, left: int, inv: tuple[int, int, int, int, int]) -> bool:
        """Whether client ``c`` with ``left`` operations to go may invoke ``inv`` =
        ``(op, s, lo, hi, arg)``: anything on the menu, or the next step of its script."""
        if self.script is None:
            return inv[0] in self.allowed
        prog = self.script[c]
        return prog[len(prog) - left] == inv

    def actions(self) -> Sequence[Action[State]]:
        acts = [
            Action("InvokeAlloc", self._invoke_alloc, ("c", "s", "meta")),
            Action("InvokeCheck", lambda s: self._invoke(s, CHECK), ("c", "s")),
            Action("InvokeTrim", self._invoke_trim, ("c", "s")),
            Action("InvokeCapture", lambda s: self._invoke_data(s, CAPTURE), ("c", "s", "lo", "hi")),
            Action("InvokeWrite", lambda s: self._invoke_data(s, WRITE),
                   ("c", "s", "lo", "hi", "v")),
            Action("InvokeRead", lambda s: self._invoke_data(s, READ), ("c", "s", "lo", "hi")),
            Action("InvokeListen", lambda s: self._invoke(s, LISTEN), ("c", "s")),
            Action("Dispatch", self._dispatch, ("c",)),
            Action("MetaTakesEffect", self._meta_effect, ("s", "meta")),
            Action("TrimTakesEffect", self._trim_effect, ("s",)),
            Action("Respond", self._respond, ("c", "ret")),
            Action("Seal", self._seal, ("epoch",)),
            Action("Notify", notify, ("c", "s", "off", "v")),
            Action("Terminated", terminated, ()),
        ]
        for name in WOR_INTERNAL:
            if name == "GiveUp" and not self.timeouts:
                continue
            acts.append(Action(f"Data.{name}", self._data_step(name), ("s", "off", "p")))
        return acts

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "MetaWasProposed": lambda st: all(g[0] == 0 or g[1] >> g[0] & 1 for g in st[1]),
            "TrimWasProposed": lambda st: all(not g[2] or g[3] for g in st[1]),
            "TrimmedWasAllocated": lambda st: all(not g[2] or g[0] for g in st[1]),
            "AllocAnswersAgree": self.alloc_answers_agree,
            "NotifiedIsWritten": lambda st: notified_is_written(
                st[3], lambda s, o: st[1][s][4][o][0]),
            "NotifiedOnce": lambda st: notified_once(st[3]),
        }

    def variables(self, st: State) -> Mapping[str, Any]:
        epoch, segs, cl = st[:3]
        out: dict[str, Any] = {"epoch": epoch}
        for i, (meta, mprop, trimmed, tprop, data) in enumerate(segs):
            out[f"seg{i}"] = {
                "meta": f"meta{meta}" if meta else "-",
                "proposed_meta": [f"meta{m}" for m in range(1, self.metas + 1) if mprop >> m & 1],
                "trimmed": bool(trimmed), "trim_proposed": bool(tprop),
                "data": {f"off{o}": dict(self.wor_model.variables(w)) for o, w in enumerate(data)},
            }
        out["clients"] = {f"c{c}": show_client(x) for c, x in enumerate(cl)}
        if any(n != (0, (), ()) for n in st[3]):
            out["notifications"] = {f"c{c}": show_note(n) for c, n in enumerate(st[3])}
        return out

    # -- invariants --------------------------------------------------------------------------

    @staticmethod
    def alloc_answers_agree(st: State) -> bool:
        """Every client whose last answer was ``META + m`` about segment s agrees with s."""
        return all(not isinstance(x[10], int) or x[10] < META or st[1][x[1]][0] == x[10] - META
                   for x in st[2])

    # -- invocations -------------------------------------------------------------------------

    def _idle(self, st: State, op: int) -> Iterator[int]:
        return (c for c in range(self.clients) if st[2][c][0] == IDLE and st[2][c][9])

    def _start(self, st: State, c: int, op: int, s: int, lo: int, hi: int, arg: int) -> State:
        g = int(st[1][s][0] == 0)
        ep, left = st[2][c][8], st[2][c][9]
        return _client(st, c, (op, s, lo, hi, arg, 0, 0, g, ep, left - 1, NONE))

    def _invoke(self, st: State, op: int) -> list[tuple[tuple[int, int], State]]:
        return [((c, s), self._start(st, c, op, s, 0, 0, 0))
                for c in self._idle(st, op) for s in range(self.segments)
                if self.may_invoke(c, st[2][c][9], (op, s, 0, 0, 0))]

    def _invoke_alloc(self, st: State) -> list[tuple[tuple[int, int, int], State]]:
        out = []
        for c in self._idle(st, ALLOC):
            for s in range(self.segments):
                for m in range(1, self.metas + 1):
                    if not self.may_invoke(c, st[2][c][9], (ALLOC, s, 0, 0, m)):
                        continue
                    t = self._start(st, c, ALLOC, s, 0, 0, m)
                    meta, mprop, tr, tp, data = t[1][s]
                    out.append(((c, s, m), _seg(t, s, (meta, mprop | 1 << m, tr, tp, data))))
        return out

    def _invoke_trim(self, st: State) -> list[tuple[tuple[int, int], State]]:
        out = []
        for (c, s), t in self._invoke(st, TRIM):
            meta, mprop, tr, _tp, data = t[1][s]
            out.append(((c, s), _seg(t, s, (meta, mprop, tr, 1, data))))
        return out

    def _invoke_data(self, st: State, op: int) -> list[tuple[tuple[int, ...], State]]:
        out: list[tuple[tuple[int, ...], State]] = []
        args = range(1, self.values + 1) if op == WRITE else (0,)
        for c in self._idle(st, op):
            for s in range(self.segments):
                for lo, hi in self.ranges:
                    for v in args:
                        if not self.may_invoke(c, st[2][c][9], (op, s, lo, hi, v)):
                            continue
                        p = (c, s, lo, hi, v) if op == WRITE else (c, s, lo, hi)
                        out.append((p, self._start(st, c, op, s, lo, hi, v)))
        return out

    # -- internal steps ----------------------------------------------------------------------

    def _dispatch(self, st: State) -> list[tuple[tuple[int], State]]:
        """A data op reaches its WORs, atomically: allocated, not trimmed, current epoch."""
        epoch, segs, cl = st[:3]
        out = []
        for c, (op, s, lo, hi, arg, disp, _m, g, ep, left, _r) in enumerate(cl):
            meta, _mprop, trimmed, _tprop, data = segs[s]
            if op not in DATA_OPS or disp or not meta or trimmed or ep != epoch:
                continue
            for mask, new in self.dispatch_to(data, c, op, lo, hi, arg):
                t = written(st, s, new)
                out.append(((c,), _client(t, c, (op, s, lo, hi, arg, 1, mask, g, ep, left,
                                                 NONE))))
        return out

    def dispatch_to(self, data: tuple[wor.State, ...], c: int, op: int, lo: int, hi: int,
                    arg: int) -> list[tuple[int, tuple[wor.State, ...]]]:
        """Invoke ``op`` on the WORs of offsets ``[lo, hi)`` for client ``c``: every possible
        ``(mask, new data)``. A write goes only to the offsets whose capture id c holds."""
        wop = {CAPTURE: wor.CAPTURE, WRITE: wor.WRITE, READ: wor.READ}[op]
        results: list[tuple[int, tuple[wor.State, ...]]] = [(0, data)]
        for off in range(lo, hi):
            w = data[off]
            if op == WRITE and not (w[3][c][0] == wor.IDLE and w[3][c][3]):
                continue  # no capture id for this address: answered NOT_CAPTURED
            succ = wor_invoke(self._wor_acts, w, c, wop, arg)
            results = [(mask | 1 << off, d[:off] + (t,) + d[off + 1:])
                       for mask, d in results for t in succ]
        return results

    def _meta_effect(self, st: State) -> list[tuple[tuple[int, int], State]]:
        out = []
        for s, (meta, mprop, trimmed, tprop, data) in enumerate(st[1]):
            if meta == 0:
                for m in range(1, self.metas + 1):
                    if mprop >> m & 1:
                        out.append(((s, m), _seg(st, s, (m, mprop, trimmed, tprop, data))))
        return out

    def _trim_effect(self, st: State) -> list[tuple[tuple[int], State]]:
        return [((s,), discard_notes(_seg(st, s, (meta, mprop, 1, tprop, data)), s))
                for s, (meta, mprop, trimmed, tprop, data) in enumerate(st[1])
                if tprop and meta and not trimmed]

    def _data_step(self, name: str) -> Callable[[State], list[tuple[tuple[Any, ...], State]]]:
        act = self._wor_acts[name]

        def step(st: State) -> list[tuple[tuple[Any, ...], State]]:
            out = []
            for s, (_meta, _mprop, _trimmed, _tprop, data) in enumerate(st[1]):
                for off, w in enumerate(data):
                    for p, t in act.successors(w):
                        new = data[:off] + (t,) + data[off + 1:]
                        out.append(((s, off, p), written(st, s, new)))
            return out
        return step

    def _seal(self, st: State) -> list[tuple[tuple[int], State]]:
        if st[0] + 1 < self.epochs:
            return [((st[0] + 1,), (st[0] + 1, *st[1:]))]
        return []

    # -- responses ---------------------------------------------------------------------------

    def answers(self, st: State, c: int) -> list[Any]:
        """The answers client ``c``'s pending operation may be given now."""
        epoch, segs, cl = st[:3]
        op, s, lo, hi, _arg, disp, mask, g, ep, _left, _r = cl[c]
        meta, _mp, trimmed, _tp, data = segs[s]
        if op == IDLE:
            return []
        if disp and any(data[o][3][c][0] != wor.IDLE for o in range(lo, hi) if mask >> o & 1):
            return []  # still waiting for its WORs
        stale = ep < epoch
        codes: list[Any] = [SEALED] if stale else []
        if not stale:
            if trimmed:
                codes.append(TRIMMED)
            elif op in (ALLOC, CHECK) and meta:
                codes.append(META + meta)
            elif disp:
                codes.append(tuple(data[o][3][c][4] if mask >> o & 1 else NOT_CAPTURED
                                   for o in range(lo, hi)))
            elif op == LISTEN:
                codes.append(OK)  # subscribed (see _respond)
            if not trimmed and op not in (ALLOC, LISTEN) and not disp and (g or not meta):
                codes.append(NOT_ALLOCATED)
        if not disp and self.timeouts:
            codes.append(TIMEOUT)  # a client may give up on any undispatched operation
        if op in (ALLOC, TRIM):
            codes.append(PREEMPTED)  # promises nothing: the proposal may still take effect
        return codes

    def _respond(self, st: State) -> list[tuple[tuple[int, str], State]]:
        out = []
        epoch, _segs, cl = st[:3]
        for c, (op, s, _lo, _hi, _arg, disp, _m, _g, _ep, _left, _r) in enumerate(cl):
            for code in self.answers(st, c):
                t = st
                if disp:  # the WORs' answers have been read: forget them (see settle)
                    meta, mprop, trimmed, tprop, data = st[1][s]
                    t = _seg(t, s, (meta, mprop, trimmed, tprop, settle(data, c)))
                if op == LISTEN and code == OK:
                    t = subscribe(t, c, s)
                out.append(((c, code_name(code)), _client(t, c, answered(cl[c], code, epoch))))
        return out


def parse_menu(menu: str) -> frozenset[int]:
    """``"alloc,trim"`` -> the operations clients may invoke."""
    names = [n.strip() for n in menu.split(",") if n.strip()]
    bad = [n for n in names if n not in OP_NAMES[1:]]
    if bad or not names:
        raise ParameterError(f"menu: unknown operation(s) {', '.join(bad) or '(none)'}; "
                             f"choose from {', '.join(OP_NAMES[1:])}")
    return frozenset(OP_NAMES.index(n) for n in names)


def settle(data: tuple[wor.State, ...], c: int) -> tuple[wor.State, ...]:
    """Client ``c``'s idle slots in ``data`` with the last answer and argument forgotten (the
    capture id kept). An idle WOR slot's answer never influences the WOR again, so forgetting it
    changes no behaviour; it keeps answers already delivered upwards from multiplying states."""
    out = []
    for w in data:
        x = w[3][c]
        if x[0] == wor.IDLE and (x[1] or x[4]):
            w = (w[0], w[1], w[2], w[3][:c] + ((wor.IDLE, 0, 0, x[3], NONE),) + w[3][c + 1:])
        out.append(w)
    return tuple(out)


def parse_workload(text: str, clients: int, segments: int, size: int
                   ) -> tuple[tuple[tuple[int, int, int, int, int], ...], ...] | None:
    """A scripted workload: per client, separated by ``/``, its operations in order, separated
    by ``,``: ``alloc1`` (alloc with meta1), ``check``, ``trim``, ``capture``, ``write2``
    (write v2), ``read``, ``listen``; ``@s`` targets segment s (default 0); data operations cover the
    whole segment. ``""`` means no script (clients choose from the menu). Returns per client
    the tuple of ``(op, s, lo, hi, arg)``."""
    if not text.strip():
        return None
    progs = text.split("/")
    if len(progs) != clients:
        raise ParameterError(f"workload: {len(progs)} client scripts for {clients} clients")
    out = []
    for prog in progs:
        steps = []
        for tok in (x.strip() for x in prog.split(",") if x.strip()):
            name, _, seg = tok.partition("@")
            base = name.rstrip("0123456789")
            arg = int(name[len(base):] or 0)
            s = int(seg) if seg else 0
            if base not in OP_NAMES[1:] or s >= segments:
                raise ParameterError(f"workload: bad operation {tok!r}")
            op = OP_NAMES.index(base)
            if (op in (ALLOC, WRITE)) != bool(arg):
                raise ParameterError(f"workload: {tok!r}: alloc and write take a value "
                                     "(alloc1, write2), the others none")
            lo, hi = (0, size) if op in DATA_OPS else (0, 0)
            steps.append((op, s, lo, hi, arg))
        out.append(tuple(steps))
    return tuple(out)


def answered(x: Client, code: Any, epoch: int) -> Client:
    """Client slot ``x`` after answering ``code``: idle, keeping only the segment and the answer
    (what the invariants read); ``SEALED`` teaches it the current configuration."""
    return (IDLE, x[1], 0, 0, 0, 0, 0, 0, epoch if code == SEALED else x[8], x[9], code)


def terminated(st: Any) -> list[tuple[tuple[()], Any]]:
    """The stutter step of a finished workload (every client idle with no operation left), so
    that the end of a bounded workload is not reported as a deadlock; a client stuck in the
    middle of an operation still is. The clients are ``st[-2]`` (the last item is the
    notifications, which may still be pending: ``Notify`` stays enabled)."""
    if all(x[0] == 0 and x[9] == 0 for x in st[-2]):
        return [((), st)]
    return []


# -- notifications (listen) --------------------------------------------------------------------
# Shared with the module, whose state also ends with (..., clients, notes).

def subscribe(st: Any, c: int, s: int) -> Any:
    """Client ``c`` listens to segment ``s`` from now on (no replay of earlier writes)."""
    subs, pend, done = st[-1][c]
    return _note(st, c, (subs | 1 << s, pend, done))


def push(st: Any, s: int, off: int, v: int) -> Any:
    """Address ``(s, off)`` became written with ``v``: queue a notification for every client
    subscribed to ``s`` that holds none for that address yet."""
    notes = list(st[-1])
    for c, (subs, pend, done) in enumerate(notes):
        if subs >> s & 1 and not any(n[:2] == (s, off) for n in pend + done):
            notes[c] = (subs, pend + ((s, off, v),), done)
    return (*st[:-1], tuple(notes))


def discard_notes(st: Any, s: int) -> Any:
    """Segment ``s`` is trimmed: its pending notifications are never delivered."""
    notes = tuple((subs, tuple(n for n in pend if n[0] != s), done)
                  for subs, pend, done in st[-1])
    return (*st[:-1], notes)


def notify(st: Any) -> list[tuple[tuple[int, int, int, int], Any]]:
    """``Notify(c)``: client ``c`` is delivered its oldest pending notification."""
    out = []
    for c, (subs, pend, done) in enumerate(st[-1]):
        if pend:
            out.append(((c, *pend[0]), _note(st, c, (subs, pend[1:], done + (pend[0],)))))
    return out


def notified_is_written(notes: Sequence[Note], reg: Callable[[int, int], int]) -> bool:
    """Every notification, pending or delivered, names a written address with its value
    (``reg(s, off)``: the address's value, 0 if EMPTY), of a segment its client listens to."""
    return all(subs >> s & 1 and reg(s, off) == v
               for subs, pend, done in notes for s, off, v in pend + done)


def notified_once(notes: Sequence[Note]) -> bool:
    """No client is notified twice (pending or delivered) about one address."""
    return all(len({n[:2] for n in pend + done}) == len(pend + done) for _s, pend, done in notes)


def written(st: State, s: int, new: tuple[wor.State, ...]) -> State:
    """``st`` with segment ``s``'s data replaced by ``new``, notifying the subscribers of every
    address that became written (unless the segment is trimmed)."""
    meta, mprop, trimmed, tprop, data = st[1][s]
    t = _seg(st, s, (meta, mprop, trimmed, tprop, new))
    if not trimmed:
        for off, (w, x) in enumerate(zip(data, new)):
            if w[0] == 0 and x[0] != 0:
                t = push(t, s, off, x[0])
    return t


def show_note(n: Note) -> str:
    """A client's notifications, readably."""
    subs, pend, done = n

    def f(ns: tuple[tuple[int, int, int], ...]) -> str:
        return "[" + ", ".join(f"s{s}[{o}]=v{v}" for s, o, v in ns) + "]"
    return (f"listens={[s for s in range(subs.bit_length()) if subs >> s & 1]} "
            f"pending={f(pend)} delivered={f(done)}")


def _note(st: Any, c: int, n: Note) -> Any:
    notes = st[-1]
    return (*st[:-1], notes[:c] + (n,) + notes[c + 1:])


def _client(st: State, c: int, x: Client) -> State:
    cl = st[2]
    return (st[0], st[1], cl[:c] + (x,) + cl[c + 1:], *st[3:])


def _seg(st: State, s: int, g: Seg) -> State:
    segs = st[1]
    return (st[0], segs[:s] + (g,) + segs[s + 1:], *st[2:])


def show_client(x: Client) -> str:
    """A client slot, readably: ``write(s0[0:1], v1) dispatched@1 ep=0 ret=(OK)``."""
    op, s, lo, hi, arg, disp, mask, g, ep, left, ret = x
    if op == IDLE:
        text = "idle"
    elif op in DATA_OPS:
        text = f"{OP_NAMES[op]}(s{s}[{lo}:{hi}]" + (f", v{arg})" if op == WRITE else ")")
        if disp:
            text += f" dispatched mask={mask:b}"
    else:
        text = f"{OP_NAMES[op]}(s{s}" + (f", meta{arg})" if op == ALLOC else ")")
    if g:
        text += " unallocated-at-invoke"
    text += f" ep={ep} left={left}"
    if ret != NONE:
        text += f" ret={code_name(ret)}"
    return text

"""The atomic write-once register (WOR): the client-visible contract of the WOR layer.

Every operation is an *invocation* and a *response*, and takes effect atomically somewhere in
between, so the same model serves refinement checking (a protocol module maps onto it) and
linearizability checking of recorded histories (:func:`linearizable`). The contract, in words,
is in ``docs/layers/wor.md``; this module is its executable form.

State (plain ints and tuples, see ``wormspace.checker.model``)::

    (reg, owner, proposed, clients)
    reg       0 (EMPTY) or the written value 1..V
    owner     0, or c+1 when client c holds the latest capture (in capture-id order)
    proposed  bitmask of values some write was invoked with (only those can ever be written)
    clients   per client (op, arg, res, cid, ret)
      op   IDLE, CAPTURE, WRITE (with the client's capture id), UWRITE (cid = 0), READ
      arg  the value being (or last) written, 0 otherwise
      res  effect already taken by the pending op: OK for a write, the read result for a read;
           for a capture, 1 once another capture returned while this one was pending
      cid  1 while the client holds the capture id returned by its last capture; during a
           write, 1 if that capture was still the latest when the write was invoked
      ret  the last response (NONE while an operation is pending)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError

# Operations.
IDLE, CAPTURE, WRITE, UWRITE, READ = range(5)
OP_NAMES = ("idle", "capture", "write", "unsafe_write", "read")

# Response codes. A read returning value v responds VALUE + v.
NONE, CAPTURED, PREEMPTED, OK, ALREADY_WRITTEN, EMPTY, TIMEOUT = range(7)
VALUE = 10
RET_NAMES = ("-", "CAPTURED", "PREEMPTED", "OK", "ALREADY_WRITTEN", "EMPTY", "TIMEOUT")

Client = tuple[int, int, int, int, int]
State = tuple[int, int, int, tuple[Client, ...]]

IDLE_CLIENT: Client = (IDLE, 0, 0, 0, NONE)


def read_result(reg: int) -> int:
    """The response a read gives when it takes effect on register contents ``reg``."""
    return EMPTY if reg == 0 else VALUE + reg


def ret_name(code: int) -> str:
    """A readable response code (``EMPTY``, ``OK``, ``v2``...)."""
    return f"v{code - VALUE}" if code >= VALUE else RET_NAMES[code]


@dataclass
class WOR(Model[State]):
    """The atomic WOR for ``clients`` clients and ``values`` distinct values.

    Each client runs one operation at a time. A capture takes effect at its response (its
    position in capture-id order may precede captures that responded earlier: see
    ``CaptureReturns``). A write takes effect only while the register is empty (or already
    holds the same value) and, for a write with a capture id, only if no later capture had
    taken effect when it was invoked; a write that returned ``PREEMPTED`` or never returned leaves its value
    *proposed*, and a proposed value may still be written later (``ProposedTakesEffect``).
    """

    clients: int = 2
    values: int = 2

    def __post_init__(self) -> None:
        if self.clients < 1 or self.values < 1:
            raise ParameterError("wor: clients and values must be at least 1")
        self.name = "wor"
        self.params = {"clients": self.clients, "values": self.values}

    # -- model interface ---------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        return [(0, 0, 0, (IDLE_CLIENT,) * self.clients)]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("InvokeCapture", self._invoke_capture, ("c",)),
            Action("InvokeWrite", self._invoke_write, ("c", "v")),
            Action("InvokeUnsafeWrite", self._invoke_uwrite, ("c", "v")),
            Action("InvokeRead", self._invoke_read, ("c",)),
            Action("WriteTakesEffect", self._write_effect, ("c",)),
            Action("ProposedTakesEffect", self._proposed_effect, ("v",)),
            Action("CaptureReturns", self._capture_returns, ("c",)),
            Action("Respond", self._respond, ("c", "ret")),
            Action("GiveUp", self._give_up, ("c",)),
        ]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "OkMeansWritten": self._ok_means_written,
            "WrittenWasProposed": lambda s: s[0] == 0 or bool(s[2] >> s[0] & 1),
        }

    def canonical(self, s: State) -> State:
        # Clients are interchangeable; owner names a client, so relabel it with the sort.
        reg, owner, prop, cl = s
        order = sorted(range(self.clients), key=lambda c: (cl[c], owner == c + 1))
        new_owner = 0 if owner == 0 else order.index(owner - 1) + 1
        return (reg, new_owner, prop, tuple(cl[c] for c in order))

    def variables(self, s: State) -> Mapping[str, Any]:
        reg, owner, prop, cl = s
        return {
            "reg": "EMPTY" if reg == 0 else f"v{reg}",
            "owner": "-" if owner == 0 else f"c{owner - 1}",
            "proposed": sorted(f"v{v}" for v in range(1, self.values + 1) if prop >> v & 1),
            "clients": {f"c{c}": _show_client(x) for c, x in enumerate(cl)},
        }

    # -- actions -----------------------------------------------------------------------------

    def _idle(self, s: State) -> Iterator[int]:
        return (c for c in range(self.clients) if s[3][c][0] == IDLE)

    def _invoke_capture(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c in self._idle(s):
            yield (c,), _set(s, c, (CAPTURE, 0, 0, 0, NONE))

    def _invoke_write(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c in self._idle(s):
            if s[3][c][3]:  # writes with the capture id of the client's last capture
                # The write can take effect only if its capture was still the latest when
                # it was invoked (kept in the cid field while the write is pending).
                live = int(s[1] == c + 1)
                for v in range(1, self.values + 1):
                    t = _set(s, c, (WRITE, v, 0, live, NONE))
                    yield (c, v), (t[0], t[1], t[2] | 1 << v, t[3])

    def _invoke_uwrite(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c in self._idle(s):
            for v in range(1, self.values + 1):
                t = _set(s, c, (UWRITE, v, 0, 0, NONE))
                yield (c, v), (t[0], t[1], t[2] | 1 << v, t[3])

    def _invoke_read(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c in self._idle(s):
            # The read may take effect at its invocation (res) or at its response.
            yield (c,), _set(s, c, (READ, 0, read_result(s[0]), 0, NONE))

    def _write_effect(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        reg, owner, prop, cl = s
        for c, (op, arg, res, live, _ret) in enumerate(cl):
            if op != WRITE or res != 0 or reg not in (0, arg):
                continue
            if live:  # no later capture had taken effect when the write was invoked
                t = _set(s, c, (WRITE, arg, OK, live, NONE))
                yield (c,), (arg, owner, prop, t[3])

    def _proposed_effect(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        reg, owner, prop, cl = s
        if reg == 0:
            for v in range(1, self.values + 1):
                if prop >> v & 1:
                    yield (v,), (v, owner, prop, cl)

    def _capture_returns(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        reg, owner, prop, cl = s
        for c in range(self.clients):
            if cl[c][0] != CAPTURE:
                continue
            done = _set(s, c, (IDLE, 0, 0, 1, CAPTURED))[3]
            # Either this capture is now the latest (and overlapping captures still pending
            # may later take their place before it: res = 1) ...
            won = tuple((op, a, 1 if op == CAPTURE else r, cid, ret) if d != c
                        else (op, a, r, cid, ret) for d, (op, a, r, cid, ret) in enumerate(done))
            yield (c,), (reg, c + 1, prop, won)
            # ... or, if a capture that overlapped it returned first, it takes its place in
            # capture-id order before that one (so it is born preempted).
            if cl[c][2] and owner not in (0, c + 1):
                yield (c,), (reg, owner, prop, done)

    def _respond(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        reg, owner, prop, cl = s
        for c, (op, arg, res, _cid, _ret) in enumerate(cl):
            codes: list[int] = []
            if op == CAPTURE:
                codes = [PREEMPTED]
            elif op == WRITE:
                codes = [PREEMPTED] + [OK] * (res == OK)
                codes += [ALREADY_WRITTEN] * (reg not in (0, arg))
            elif op == UWRITE:
                # An unsafe write takes effect at its response, if it still can.
                if reg == arg or (reg == 0 and owner == 0):
                    codes.append(OK)
                codes += [PREEMPTED] + [ALREADY_WRITTEN] * (reg not in (0, arg))
            elif op == READ:
                codes = sorted({res, read_result(reg)})
            for code in codes:
                new_reg = arg if (op == UWRITE and code == OK) else reg
                yield (c, ret_name(code)), (new_reg, owner, prop,
                                            _set(s, c, (IDLE, arg, 0, 0, code))[3])

    def _give_up(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c, (op, arg, _res, _cid, _ret) in enumerate(s[3]):
            if op != IDLE:
                yield (c,), _set(s, c, (IDLE, arg, 0, 0, TIMEOUT))

    def _ok_means_written(self, s: State) -> bool:
        return all(ret != OK or s[0] == arg for (_op, arg, _r, _c, ret) in s[3])


def _set(s: State, c: int, client: Client) -> State:
    cl = s[3]
    return (s[0], s[1], s[2], cl[:c] + (client,) + cl[c + 1:])


def _show_client(x: Client) -> str:
    op, arg, res, cid, ret = x
    parts = [OP_NAMES[op] + (f"(v{arg})" if op in (WRITE, UWRITE) else "")]
    if res:
        parts.append(f"effect={ret_name(res)}")
    if cid:
        parts.append("live" if op == WRITE else "holds-cid")
    if ret:
        parts.append(f"ret={ret_name(ret)}")
    return " ".join(parts)


# -- linearizability of recorded histories -----------------------------------------------------

#: One event of a client-visible history: ``(client, "invoke", op, value)`` with op one of
#: ``capture``, ``write``, ``unsafe_write``, ``read`` (value 0 unless a write), or
#: ``(client, "return", code, 0)`` with code a :func:`ret_name` (``OK``, ``EMPTY``, ``v1``...).
Event = tuple[int, str, str, int]

_INVOKE = {"capture": "InvokeCapture", "write": "InvokeWrite",
           "unsafe_write": "InvokeUnsafeWrite", "read": "InvokeRead"}
_SILENT = ("WriteTakesEffect", "ProposedTakesEffect")


def linearizable(history: Sequence[Event], clients: int, values: int) -> int | None:
    """Check a WOR history against the atomic spec; ``None`` if it is linearizable, else the
    index of the first event no behaviour of the spec can explain.

    The search keeps the set of spec states consistent with the prefix; effects that are not
    visible (a write taking effect) may happen between any two events.
    """
    spec = WOR(clients, values)
    acts = {a.name: a for a in spec.actions()}
    frontier = set(spec.init_states())
    for i, (c, kind, what, v) in enumerate(history):
        frontier = _close(frontier, [acts[n] for n in _SILENT])
        nxt: set[State] = set()
        for s in frontier:
            if kind == "invoke":
                nxt |= {t for p, t in acts[_INVOKE[what]].successors(s)
                        if p[0] == c and (len(p) == 1 or p[1] == v)}
            else:
                for name in ("Respond", "CaptureReturns", "GiveUp"):
                    for p, t in acts[name].successors(s):
                        code = ret_name(t[3][c][4])
                        if p[0] == c and code == what:
                            nxt.add(t)
        if not nxt:
            return i
        frontier = nxt
    return None


def _close(states: set[State], actions: list[Action[State]]) -> set[State]:
    seen, todo = set(states), list(states)
    while todo:
        s = todo.pop()
        for a in actions:
            for _p, t in a.successors(s):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
    return seen

"""The shared log (CORFU/Tango style): the client-visible contract of WormLog, as an atomic
specification (a model) and as a fast checker of recorded histories.

The log is a sequence of addresses ``0 .. addresses-1``; each holds ``EMPTY``, one data value,
or ``JUNK`` (a hole that was filled), and may be trimmed. The operations:

* ``append(v) -> a``: ``v`` is at address ``a`` at the response, and **no two appends get the
  same address** (``given`` records the addresses handed back, and a second one is refused).
  An append may also answer ``FAILED``. Its value may land at other, empty addresses too, at any
  time after it was invoked, even after it answered: a retried attempt whose write was
  preempted may still be completed later (a shared log's appends are at-least-once). The spec
  says so with ``vprop``: the values some append was invoked with, each free to ``Land`` on any
  empty address.
* ``read(a)``: the entry (a value, ``JUNK`` or ``EMPTY``) or ``TRIMMED``; one atomic step.
* ``fill(a)``: if ``a`` is empty, ``JUNK`` lands there; answers what ``a`` holds afterwards (a
  value that got there first survives), or ``TRIMMED``. A fill that did not answer may still land
  ``JUNK`` later (``fprop``).
* ``check_tail() -> t``: every append that *completed before check_tail was invoked* has its
  address below ``t`` (``lo``, fixed at the invocation). Nothing more: appends invoked later may
  still land below ``t`` (a deposed sequencer may keep serving its last segment for a while).
* ``trim(p)``: addresses below ``p`` may be trimmed from the invocation on, possibly a few at a
  time (the implementation trims segment by segment), and all of them are trimmed when it
  answers ``TRIMMED``; it answers ``NOT_ALLOCATED`` instead if part of ``[0, p)`` lies beyond the
  log (an empty, untrimmed address). A trimmed address's entry is dropped: every later read
  answers ``TRIMMED``.

So an entry is written once and never changes except by being trimmed: **a read of an address
never changes its answer once it returned a value or JUNK** (other than to ``TRIMMED``).

Every operation but ``read`` is an invocation and a response (at most one pending operation per
client); the effect takes place atomically in between, or at the response itself.

State (plain ints and tuples)::

    (log, trimmed, prefix, vprop, fprop, given, clients)
    log      per address: EMPTY (0), a value 1..values, or JUNK
    trimmed  bitmask of trimmed addresses (their entries are dropped)
    prefix   the highest prefix a trim was invoked with
    vprop    bitmask of values some append was invoked with
    fprop    bitmask of empty addresses some fill was invoked on (JUNK may land there)
    given    bitmask of addresses returned by appends
    clients  per client (op, arg, lo, ret)
      op     IDLE, or the pending APPEND (arg: value), FILL (arg: address), TAIL (lo: the
             lowest tail it may answer), TRIM (arg: prefix)
      ret    the last answer (kind, a, x): (READ|FILL, address, entry or TRIMMED),
             (APPEND, address, value) or (APPEND, 0, FAILED), (TAIL, t, 0),
             (TRIM, prefix, TRIMMED|NOT_ALLOCATED); NO_ANSWER while pending

:func:`check_history` checks a recorded history of a real log against the same contract in
O(n log n) (see its docstring for the exact rules and the input format).
"""

from __future__ import annotations

import bisect
import gc
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError

# Entries and answer codes. Values are 1..28: JUNK is 29 so that the WormLog module can write
# it into WormSpace as it is (WOS values are below 30).
EMPTY, JUNK, TRIMMED, FAILED, NOT_ALLOCATED = 0, 29, 30, 31, 32
MAX_VALUES = JUNK - 1
# Pending operations (client ``op``), and answer kinds (``ret[0]``; READ only as a kind).
IDLE, APPEND, FILL, TAIL, TRIM, READ = range(6)
OP_NAMES = ("idle", "append", "fill", "check_tail", "trim", "read")
NO_ANSWER = (IDLE, 0, 0)

Client = tuple[int, int, int, tuple[int, int, int]]
State = tuple[tuple[int, ...], int, int, int, int, int, tuple[Client, ...]]

IDLE_CLIENT: Client = (IDLE, 0, 0, NO_ANSWER)


def entry_name(x: int) -> str:
    """A readable entry or answer code: ``EMPTY``, ``v1``, ``JUNK``, ``TRIMMED``..."""
    names = {EMPTY: "EMPTY", JUNK: "JUNK", TRIMMED: "TRIMMED", FAILED: "FAILED",
             NOT_ALLOCATED: "NOT_ALLOCATED"}
    return names.get(x, f"v{x}")


def show_answer(ret: tuple[int, int, int]) -> str:
    """A client's last answer, readably: ``read(1)=v1``, ``append(v1)=@0``, ``check_tail()=2``."""
    kind, a, x = ret
    if kind == IDLE:
        return "-"
    if kind == APPEND:
        return "append=FAILED" if x == FAILED else f"append(v{x})=@{a}"
    if kind == TAIL:
        return f"check_tail()={a}"
    if kind == TRIM:
        return f"trim({a})={entry_name(x)}"
    return f"{OP_NAMES[kind]}({a})={entry_name(x)}"


@dataclass
class SharedLog(Model[State]):
    """The atomic shared log over ``addresses`` addresses (see the module docstring)."""

    clients: int = 2
    values: int = 1
    addresses: int = 2

    def __post_init__(self) -> None:
        if min(self.clients, self.values, self.addresses) < 1:
            raise ParameterError("sharedlog: clients, values and addresses must be at least 1")
        if self.values > MAX_VALUES or self.addresses > 30:
            raise ParameterError(f"sharedlog: at most {MAX_VALUES} values and 30 addresses")
        self.name = "sharedlog"
        self.params = {"clients": self.clients, "values": self.values,
                       "addresses": self.addresses}

    # -- model interface -----------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        return [((EMPTY,) * self.addresses, 0, 0, 0, 0, 0, (IDLE_CLIENT,) * self.clients)]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("Read", self._read, ("c", "a")),
            Action("InvokeAppend", self._invoke_append, ("c", "v")),
            Action("AppendReturns", self._append_returns, ("c", "a")),
            Action("AppendFails", self._append_fails, ("c",)),
            Action("InvokeFill", self._invoke_fill, ("c", "a")),
            Action("FillReturns", self._fill_returns, ("c", "entry")),
            Action("InvokeTail", self._invoke_tail, ("c",)),
            Action("TailReturns", self._tail_returns, ("c", "t")),
            Action("InvokeTrim", self._invoke_trim, ("c", "prefix")),
            Action("TrimTakesEffect", self._trim_effect, ("addresses",)),
            Action("TrimReturns", self._trim_returns, ("c", "ret")),
            Action("Land", self._land, ("a", "entry")),
        ]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "GivenHoldsItsValue": lambda st: all(
                st[1] >> a & 1 or 1 <= st[0][a] <= self.values for a in _bits(st[5])),
            "TrimmedBelowPrefix": lambda st: st[1] < 1 << st[2],
            "TrimmedIsDropped": lambda st: all(st[0][a] == EMPTY for a in _bits(st[1]))
            and not st[1] & st[4],
            "AnswersHold": lambda st: answers_hold(st[0], st[1], (x[3] for x in st[6])),
        }

    def variables(self, st: State) -> Mapping[str, Any]:
        log, trimmed, prefix, vprop, fprop, given, cl = st
        return {
            "log": [("TRIMMED" if trimmed >> a & 1 else entry_name(x)) for a, x in enumerate(log)],
            "trim_prefix": prefix,
            "appended_values": [f"v{v}" for v in _bits(vprop)],
            "fills_pending": list(_bits(fprop)),
            "given": list(_bits(given)),
            "clients": {f"c{c}": show_client(x) for c, x in enumerate(cl)},
        }

    # -- actions -----------------------------------------------------------------------------

    def _idle(self, st: State) -> Iterator[int]:
        return (c for c, x in enumerate(st[6]) if x[0] == IDLE)

    def _read(self, st: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c in self._idle(st):
            for a in range(self.addresses):
                x = TRIMMED if st[1] >> a & 1 else st[0][a]
                yield (c, a), _client(st, c, (IDLE, 0, 0, (READ, a, x)))

    def _invoke_append(self, st: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c in self._idle(st):
            for v in range(1, self.values + 1):
                t = _client(st, c, (APPEND, v, 0, NO_ANSWER))
                yield (c, v), (t[0], t[1], t[2], t[3] | 1 << v, t[4], t[5], t[6])

    def _append_returns(self, st: State) -> Iterator[tuple[tuple[int, int], State]]:
        log, trimmed, prefix, vprop, fprop, given, cl = st
        for c, (op, v, _lo, _ret) in enumerate(cl):
            if op != APPEND:
                continue
            for a in range(self.addresses):
                bit = 1 << a
                if given & bit or trimmed & bit or log[a] not in (EMPTY, v):
                    continue
                new_log = log[:a] + (v,) + log[a + 1:]
                cl2 = cl[:c] + ((IDLE, 0, 0, (APPEND, a, v)),) + cl[c + 1:]
                yield (c, a), (new_log, trimmed, prefix, vprop, fprop & ~bit, given | bit, cl2)

    def _append_fails(self, st: State) -> Iterator[tuple[tuple[int], State]]:
        for c, x in enumerate(st[6]):
            if x[0] == APPEND:
                yield (c,), _client(st, c, (IDLE, 0, 0, (APPEND, 0, FAILED)))

    def _invoke_fill(self, st: State) -> Iterator[tuple[tuple[int, int], State]]:
        log, trimmed = st[0], st[1]
        for c in self._idle(st):
            for a in range(self.addresses):
                t = _client(st, c, (FILL, a, 0, NO_ANSWER))
                if log[a] == EMPTY and not trimmed >> a & 1:
                    t = (t[0], t[1], t[2], t[3], t[4] | 1 << a, t[5], t[6])
                yield (c, a), t

    def _fill_returns(self, st: State) -> Iterator[tuple[tuple[int, str], State]]:
        log, trimmed, prefix, vprop, fprop, given, cl = st
        for c, (op, a, _lo, _ret) in enumerate(cl):
            if op != FILL:
                continue
            x, new_log, new_fprop = log[a], log, fprop
            if trimmed >> a & 1:
                x = TRIMMED
            elif x == EMPTY:  # the fill's JUNK lands now
                x, new_log, new_fprop = JUNK, log[:a] + (JUNK,) + log[a + 1:], fprop & ~(1 << a)
            cl2 = cl[:c] + ((IDLE, 0, 0, (FILL, a, x)),) + cl[c + 1:]
            yield (c, entry_name(x)), (new_log, trimmed, prefix, vprop, new_fprop, given, cl2)

    def _invoke_tail(self, st: State) -> Iterator[tuple[tuple[int], State]]:
        for c in self._idle(st):
            # Every append completed so far is below the answer: given's highest bit + 1.
            yield (c,), _client(st, c, (TAIL, 0, st[5].bit_length(), NO_ANSWER))

    def _tail_returns(self, st: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c, (op, _arg, lo, _ret) in enumerate(st[6]):
            if op == TAIL:
                for t in range(lo, self.addresses + 1):
                    yield (c, t), _client(st, c, (IDLE, 0, 0, (TAIL, t, 0)))

    def _invoke_trim(self, st: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c in self._idle(st):
            for p in range(1, self.addresses + 1):
                t = _client(st, c, (TRIM, p, 0, NO_ANSWER))
                yield (c, p), (t[0], t[1], max(t[2], p), t[3], t[4], t[5], t[6])

    def _trim_effect(self, st: State) -> Iterator[tuple[tuple[str], State]]:
        free = ((1 << st[2]) - 1) & ~st[1]  # untrimmed addresses below the prefix
        mask = free
        while mask:  # every nonempty subset of ``free``
            yield (str(list(_bits(mask))),), trim_addresses(st, mask)
            mask = (mask - 1) & free

    def _trim_returns(self, st: State) -> Iterator[tuple[tuple[int, str], State]]:
        for c, (op, p, _lo, _ret) in enumerate(st[6]):
            if op != TRIM:
                continue
            below = (1 << p) - 1
            # TRIMMED: everything below p is trimmed, the rest of it at this very step.
            t = trim_addresses(st, below & ~st[1])
            yield (c, "TRIMMED"), _client(t, c, (IDLE, 0, 0, (TRIM, p, TRIMMED)))
            if any(st[0][a] == EMPTY for a in _bits(below & ~st[1])):
                yield (c, "NOT_ALLOCATED"), _client(st, c, (IDLE, 0, 0, (TRIM, p, NOT_ALLOCATED)))

    def _land(self, st: State) -> Iterator[tuple[tuple[int, str], State]]:
        log, trimmed, prefix, vprop, fprop, given, cl = st
        for a, x in enumerate(log):
            if x != EMPTY or trimmed >> a & 1:
                continue
            cands = list(_bits(vprop)) + ([JUNK] if fprop >> a & 1 else [])
            for v in cands:
                yield (a, entry_name(v)), (log[:a] + (v,) + log[a + 1:], trimmed, prefix, vprop,
                                           fprop & ~(1 << a), given, cl)


# -- helpers shared with the WormLog module ------------------------------------------------------


def trim_addresses(st: State, mask: int) -> State:
    """``st`` with the addresses of ``mask`` trimmed: entries dropped, pending fills forgotten."""
    log, trimmed, prefix, vprop, fprop, given, cl = st
    new_log = tuple(EMPTY if mask >> a & 1 else x for a, x in enumerate(log))
    return (new_log, trimmed | mask, prefix, vprop, fprop & ~mask, given, cl)


def answers_hold(log: Sequence[int], trimmed: int, answers: Iterable[tuple[int, int, int]]
                 ) -> bool:
    """Every answer that revealed an entry (a value or JUNK, by a read, a fill or an append)
    still holds: the address holds that entry, or it was trimmed since."""
    for kind, a, x in answers:
        if kind in (READ, FILL, APPEND) and x not in (EMPTY, TRIMMED, FAILED):
            if not trimmed >> a & 1 and log[a] != x:
                return False
    return True


def show_client(x: Client) -> str:
    """A client slot, readably."""
    op, arg, lo, ret = x
    if op == IDLE:
        return f"idle, last {show_answer(ret)}"
    if op == APPEND:
        return f"append(v{arg}) pending"
    if op == FILL:
        return f"fill({arg}) pending"
    if op == TAIL:
        return f"check_tail() pending, answer >= {lo}"
    return f"trim({arg}) pending"


def _client(st: State, c: int, x: Client) -> State:
    cl = st[6]
    return (st[0], st[1], st[2], st[3], st[4], st[5], cl[:c] + (x,) + cl[c + 1:])


def _bits(mask: int) -> Iterator[int]:
    i = 0
    while mask:
        if mask & 1:
            yield i
        mask >>= 1
        i += 1


# -- checking recorded histories --------------------------------------------------------------

#: The operation names of a recorded history.
HISTORY_OPS = ("append", "read", "fill", "check_tail", "trim")
#: The statuses a read or a fill reports (the implementation's ``EntryStatus`` values).
STATUSES = ("data", "junk", "empty", "trimmed")


@dataclass(frozen=True)
class LogOp:
    """One operation of a recorded shared-log history.

    ``client`` names the process; ``op`` is one of :data:`HISTORY_OPS`; ``start`` and ``end``
    are the invocation and response times (any comparable numbers, e.g. seconds);
    ``end=None`` means no response was seen (timed out, crashed): the operation may have taken
    effect or not, and its ``result`` is ignored. Per ``op``:

    * ``append``: ``arg`` the value (any hashable); ``result`` the address (an int) if it
      succeeded, anything else (``None``, ``"failed"``) if it did not;
    * ``read`` / ``fill``: ``arg`` the address; ``result`` ``(status, value)`` with status one of
      :data:`STATUSES` and ``value`` the data for ``"data"`` (``None`` otherwise);
    * ``check_tail``: ``arg`` ``None``; ``result`` the tail (an int);
    * ``trim``: ``arg`` the prefix; ``result`` ``"ok"`` if it completed normally (anything else,
      e.g. an error, promises nothing).
    """

    client: Hashable
    op: str
    arg: Any
    result: Any
    start: float
    end: float | None

    @classmethod
    def of(cls, raw: LogOp | Mapping[str, Any] | Sequence[Any], index: int = 0) -> LogOp:
        """A :class:`LogOp` from itself, a dict with the field names, or a 6-tuple
        ``(client, op, arg, result, start, end)``; a malformed one raises ``ValueError``
        naming ``index`` and the problem."""
        if isinstance(raw, LogOp):
            o = raw
        elif isinstance(raw, Mapping):
            missing = [k for k in ("client", "op", "start") if k not in raw]
            if missing:
                raise ValueError(f"operation {index}: missing field(s) {', '.join(missing)}")
            o = cls(raw["client"], raw["op"], raw.get("arg"), raw.get("result"), raw["start"],
                    raw.get("end"))
        elif isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) == 6:
            o = cls(*raw)
        else:
            raise ValueError(f"operation {index}: expected a LogOp, a dict or a 6-tuple "
                             f"(client, op, arg, result, start, end), got {raw!r:.80}")
        o._validate(index)
        return o

    def _validate(self, i: int) -> None:
        def bad(why: str) -> ValueError:
            return ValueError(f"operation {i} ({self.op!r} by {self.client!r}): {why}")

        if self.op not in HISTORY_OPS:
            raise bad(f"unknown operation; one of {', '.join(HISTORY_OPS)}")
        if not _is_time(self.start) or not (self.end is None or _is_time(self.end)):
            raise bad(f"start and end must be numbers (end may be None), got {self.start!r}, "
                      f"{self.end!r}")
        if self.end is not None and self.end < self.start:
            raise bad(f"ends ({self.end}) before it starts ({self.start})")
        if self.op in ("read", "fill", "trim") and not _is_address(self.arg):
            raise bad(f"the address/prefix must be an int >= 0, got {self.arg!r:.40}")
        if self.op == "append":
            try:
                hash(self.arg)
            except TypeError:
                raise bad(f"the appended value must be hashable, got {self.arg!r:.40}") from None
        if self.end is None:
            return
        if self.op in ("read", "fill"):
            r = self.result
            if not (type(r) in (tuple, list) and len(r) == 2 and r[0] in STATUSES):
                raise bad(f"result must be (status, value) with status one of "
                          f"{', '.join(STATUSES)}, got {r!r:.60}")
            try:
                hash(r[1])
            except TypeError:
                raise bad(f"the value read must be hashable, got {r[1]!r:.40}") from None
        elif self.op == "check_tail" and not _is_address(self.result):
            raise bad(f"the tail must be an int >= 0, got {self.result!r:.40}")

    @property
    def ok_address(self) -> int | None:
        """For a completed append that succeeded, its address."""
        if self.op == "append" and self.end is not None and _is_address(self.result):
            return int(self.result)
        return None

    def __str__(self) -> str:
        end = "no response" if self.end is None else f"{self.end:g}"
        arg = "" if self.arg is None else repr(self.arg)
        res = "" if self.end is None else f" -> {self.result!r}"
        return f"{self.client}: {self.op}({arg}){res} in [{self.start:g}, {end}]"


def _is_time(x: Any) -> bool:
    return isinstance(x, (int, float)) and type(x) is not bool and x == x  # not NaN


def _is_address(x: Any) -> bool:
    return isinstance(x, int) and type(x) is not bool and x >= 0


_JUNK_ENTRY = ("junk",)  # the entry JUNK; a data entry is ("data", value)
#: The earliest (time, operation) of a kind, per value or address.
First = dict[Any, tuple[float, LogOp]]


def _earliest(table: First, key: Any, o: LogOp) -> None:
    cur = table.get(key)
    if cur is None or o.start < cur[0]:
        table[key] = (o.start, o)


def check_history(ops: Iterable[LogOp | Mapping[str, Any] | Sequence[Any]], *,
                  junk_needs_fill: bool = True, segment_size: int | None = None) -> list[str]:
    """Check a recorded shared-log history against the contract; ``[]`` if it is explainable,
    else one readable line per violation (at most one per address, plus the tail and
    duplicate-address checks). Input: :class:`LogOp` objects, dicts or 6-tuples (see
    :class:`LogOp`); a malformed operation raises ``ValueError`` naming it.

    Each address holds EMPTY until a moment ``T`` (if ever), then one entry (a value or JUNK),
    and is trimmed at a moment ``R`` (if ever); an operation takes effect at a point within its
    ``[start, end]`` (ties may be ordered either way). The history is explainable iff such ``T``
    and ``R`` exist for every address, with:

    * **unique addresses**: no two successful appends returned the same address;
    * **one entry**: every read, fill and successful append of an address that revealed an
      entry revealed the same one (one value, or JUNK; never both); a value read at an address
      was appended by some append (any, even one that failed or never answered: a retried
      attempt may land anywhere) invoked before ``T``; JUNK needs a fill of that address invoked
      before ``T`` (``junk_needs_fill=False`` drops this rule, for systems whose sequencer also
      fills holes, such as the implementation's takeover of a deposed sequencer's segments);
    * **real time**: an entry is revealed only by operations that end after ``T`` and start
      before ``R``; EMPTY only by reads that start before ``T`` and ``R``; a fill never answers
      EMPTY; TRIMMED only by operations ending after ``R``, and ``R`` comes after the start of a
      trim whose prefix covers the address; with ``segment_size``, a trim that answered ``"ok"``
      trimmed every segment entirely below its prefix by its end; an address that was read
      written was written before it was trimmed (``T <= R``);
    * **tail**: a check_tail answers more than the address of every append that *completed
      before it started*.

    Per address the constraints bound ``T`` and ``R`` to intervals, so the check is a pass over
    the operations grouped by address, plus a sort for the tail: O(n log n).
    """
    # As in the checker's search: the cyclic collector would re-traverse every operation kept,
    # for nothing (they are acyclic), as the check allocates (about a quarter of the time).
    paused = gc.isenabled()
    gc.disable()
    try:
        return _check(ops, junk_needs_fill, segment_size)
    finally:
        if paused:
            gc.enable()


def _check(ops: Iterable[LogOp | Mapping[str, Any] | Sequence[Any]], junk_needs_fill: bool,
           segment_size: int | None) -> list[str]:
    history = [LogOp.of(raw, i) for i, raw in enumerate(ops)]
    if segment_size is not None and (not _is_address(segment_size) or segment_size < 1):
        raise ValueError(f"segment_size must be an int >= 1, got {segment_size!r}")
    out: list[str] = []
    first_append: First = {}
    first_fill: First = {}
    by_address: dict[int, list[LogOp]] = defaultdict(list)
    given: dict[int, list[LogOp]] = defaultdict(list)
    trims: list[LogOp] = []
    tails: list[LogOp] = []
    for o in history:
        op = o.op
        if op == "append":
            _earliest(first_append, o.arg, o)
            a = o.ok_address
            if a is not None:
                given[a].append(o)
                by_address[a].append(o)
        elif op == "read" or op == "fill":
            if op == "fill":
                _earliest(first_fill, o.arg, o)
            if o.end is not None:
                by_address[o.arg].append(o)
        elif op == "trim":
            trims.append(o)
        elif o.end is not None:
            tails.append(o)
    for a in sorted(given):
        if len(given[a]) > 1:
            x, y = given[a][:2]
            out.append(f"address {a}: returned to two appends [{x}] and [{y}]")
    covering = _TrimIndex(trims, segment_size)
    for a in sorted(by_address):
        writers = first_fill if junk_needs_fill else None
        problem = _check_address(a, by_address[a], first_append, writers, covering)
        if problem:
            out.append(f"address {a}: {problem}")
    out.extend(_check_tails(given, tails))
    return out


class _TrimIndex:
    """For an address: the earliest start of a trim covering it, and (with a segment size) the
    earliest end of a successful trim that must have trimmed it. Prefix-sorted, so each query
    is a binary search."""

    def __init__(self, trims: list[LogOp], segment_size: int | None) -> None:
        by_prefix = sorted(trims, key=lambda o: o.arg)
        self.prefixes = [o.arg for o in by_prefix]
        self.start_min = _suffix_min([(o.start, o) for o in by_prefix])
        self.size = segment_size
        done = [o for o in trims if o.end is not None and o.result == "ok"]
        if segment_size is not None:
            done.sort(key=lambda o: o.arg // segment_size)
            self.cut = [o.arg // segment_size * segment_size for o in done]
            self.end_min = _suffix_min([(o.end or 0.0, o) for o in done])

    def first_start(self, a: int) -> tuple[float, LogOp | None]:
        """The earliest start of a trim with prefix > a."""
        i = bisect.bisect_right(self.prefixes, a)
        return self.start_min[i]

    def first_done(self, a: int) -> tuple[float, LogOp | None]:
        """The earliest end of a successful trim whose whole segments cover ``a``."""
        if self.size is None:
            return math.inf, None
        i = bisect.bisect_right(self.cut, a)
        return self.end_min[i]


def _suffix_min(items: list[tuple[float, LogOp]]) -> list[tuple[float, LogOp | None]]:
    out: list[tuple[float, LogOp | None]] = [(math.inf, None)] * (len(items) + 1)
    for i in range(len(items) - 1, -1, -1):
        out[i] = min(items[i], out[i + 1], key=lambda p: p[0])
    return out


def _entry(o: LogOp) -> tuple[Any, ...] | str:
    """What ``o`` revealed about its address: ``("data", v)``, ``("junk",)``, or a status."""
    if o.op == "append":
        return ("data", o.arg)
    status, value = o.result
    return ("data", value) if status == "data" else _JUNK_ENTRY if status == "junk" else status


def _show_entry(e: tuple[Any, ...]) -> str:
    return "JUNK" if e == _JUNK_ENTRY else f"value {e[1]!r}"


def _check_address(a: int, ops: list[LogOp], first_append: First, first_fill: First | None,
                   trims: _TrimIndex) -> str | None:
    """The first problem of address ``a``'s operations (completed reads and fills, successful
    appends), or None. ``first_fill`` None: JUNK needs no fill."""
    entry: tuple[Any, ...] | None = None
    witness: LogOp | None = None
    inf = math.inf
    # T (written) in [t_lo, t_hi], R (trimmed) in [r_lo, r_hi], each with the operation behind it.
    t_lo, t_hi, r_lo, r_hi = -inf, inf, -inf, inf
    t_lo_op = t_hi_op = r_lo_op = r_hi_op = None
    for o in ops:
        end = o.end
        assert end is not None
        if o.op == "append":
            e: Any = ("data", o.arg)
        else:
            status, value = o.result
            if status == "empty":
                if o.op == "fill":
                    return f"a fill answered EMPTY [{o}]"
                if o.start > t_lo:
                    t_lo, t_lo_op = o.start, o
                if o.start > r_lo:
                    r_lo, r_lo_op = o.start, o
                continue
            if status == "trimmed":
                if end < r_hi:
                    r_hi, r_hi_op = end, o
                continue
            e = ("data", value) if status == "data" else _JUNK_ENTRY
        if entry is None:
            entry, witness = e, o
        elif e != entry:
            return f"holds both {_show_entry(entry)} and {_show_entry(e)} [{witness}] [{o}]"
        if end < t_hi:
            t_hi, t_hi_op = end, o
        if o.start > r_lo:
            r_lo, r_lo_op = o.start, o
    if entry is not None:
        if entry != _JUNK_ENTRY:
            writer = first_append.get(entry[1])
            if writer is None:
                return f"holds {_show_entry(entry)}, which no append ever carried [{witness}]"
        elif first_fill is not None:
            writer = first_fill.get(a)
            if writer is None:
                return f"holds JUNK, but no fill of it was invoked [{witness}]"
        else:
            writer = None
        if writer is not None and writer[0] > t_lo:
            t_lo, t_lo_op = writer
        if t_lo > t_hi:
            return (f"{_show_entry(entry)} was revealed by [{t_hi_op}], which ended before "
                    f"[{t_lo_op}] started (an EMPTY read, or the first operation that could "
                    f"write it)")
    first_trim, _ = trims.first_start(a)
    if r_hi_op is not None and first_trim > r_hi:
        return f"answered TRIMMED [{r_hi_op}] but no trim covering it started before"
    done, done_op = trims.first_done(a)
    if done < r_hi:
        r_hi, r_hi_op = done, done_op
    if r_lo > r_hi:
        return (f"[{r_lo_op}] found it untrimmed, but it started after it was trimmed "
                f"(by the end of [{r_hi_op}])")
    if entry is not None and t_lo > r_hi:
        return (f"{_show_entry(entry)} could only be written (after the start of [{t_lo_op}]) "
                f"once it was already trimmed (by the end of [{r_hi_op}])")
    return None


def _check_tails(given: dict[int, list[LogOp]], tails: list[LogOp]) -> list[str]:
    """Every check_tail answers more than the address of each append completed before it
    started. One sweep over appends by end time and check_tails by start time."""
    done = sorted((math.inf if o.end is None else o.end, a, k)
                  for a, os in given.items() for k, o in enumerate(os))
    out = []
    i, top, top_op = 0, -1, None
    for t in sorted(tails, key=attrgetter("start")):
        while i < len(done) and done[i][0] < t.start:
            _end, a, k = done[i]
            if a > top:
                top, top_op = a, given[a][k]
            i += 1
        if top >= t.result:
            out.append(f"check_tail answered {t.result} [{t}], but the append [{top_op}] "
                       f"completed before it started, at address {top}")
    return out

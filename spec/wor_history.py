"""Checking recorded WOR histories fast: the value semantics of a write-once register in
O(n log n), and the full contract (captures included) by search for small histories.

A write-once register holds EMPTY until one moment T, and one value v from then on. So a
history of one register is explainable iff there is such a T and v with:

* every read that returned v, and every write of v that returned OK, returned after T;
* every read that returned EMPTY was invoked before T;
* some write of v was invoked before T (a write that returned PREEMPTED, or never returned,
  may still be the one that takes effect: see docs/layers/wor.md);
* every write that returned ALREADY_WRITTEN carried a value other than v, and returned after T;
* no two different values were observed (by reads or OK writes).

The constraints bound T to an interval ``(lower, upper)``: the history is explainable iff it
is not empty. Histories of many registers are checked register by register (a history is
linearizable iff each object's sub-history is), so a 100,000-operation history of many
registers takes a sort and a pass. Capture ids are *not* checked here: :func:`exact` runs the
atomic spec itself (``spec/wor.py``) over a small history for that.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from wormspace.checker.linearizability import Operation

EMPTY = "EMPTY"
OK = "OK"
PREEMPTED = "PREEMPTED"
ALREADY_WRITTEN = "ALREADY_WRITTEN"


@dataclass(frozen=True)
class Violation:
    """Why one register's history is not explainable."""

    key: Hashable
    reason: str
    operations: tuple[Operation, ...] = ()

    def __str__(self) -> str:
        ops = "; ".join(_show(o) for o in self.operations)
        return f"register {self.key!r}: {self.reason}" + (f" [{ops}]" if ops else "")


def _show(o: Operation) -> str:
    end = "pending" if o.end is None else f"{o.end:g}"
    arg = "" if o.arg is None else f"({o.arg!r})"
    return f"{o.client}: {o.op}{arg} -> {o.result!r} in [{o.start:g}, {end}]"


def check_values(history: Sequence[Operation]) -> list[Violation]:
    """Check the value semantics of every register in ``history``; [] when explainable.

    Operations: ``op`` is ``"read"`` (result a value or ``EMPTY``), ``"write"`` (``arg`` the
    value; result ``OK``, ``PREEMPTED``, ``ALREADY_WRITTEN``, or ``None`` if it never
    returned) or ``"capture"`` (ignored here).
    """
    by_key: dict[Hashable, list[Operation]] = defaultdict(list)
    for o in history:
        by_key[o.key].append(o)
    out = []
    for key, ops in by_key.items():
        v = _check_register(key, ops)
        if v is not None:
            out.append(v)
    return out


def _check_register(key: Hashable, ops: list[Operation]) -> Violation | None:
    reads = [o for o in ops if o.op == "read" and o.end is not None]
    writes = [o for o in ops if o.op in ("write", "unsafe_write")]
    observed = [o for o in reads if o.result != EMPTY] + [o for o in writes if o.result == OK]
    values = {o.result if o.op == "read" else o.arg for o in observed}
    if len(values) > 1:
        first: dict[Hashable, Operation] = {}
        for o in observed:
            first.setdefault(o.result if o.op == "read" else o.arg, o)
        return Violation(key, f"two values observed: {sorted(map(repr, values))}",
                         tuple(first.values()))
    already = [o for o in writes if o.result == ALREADY_WRITTEN]
    empties = [o for o in reads if o.result == EMPTY]
    if not values:
        if not already:
            return None  # nothing ever observed written: every read EMPTY is fine
        # Some value other than each ALREADY_WRITTEN write's own must have been written.
        candidates = {o.arg for o in writes} - {o.arg for o in already}
        if len(candidates) == 0 and len({o.arg for o in already}) == 1:
            return Violation(key, "ALREADY_WRITTEN, but no write of another value exists",
                             tuple(already[:1]))
        values = candidates or {o.arg for o in writes}
        # Try each candidate value (few: the distinct values written to this register).
        reasons = [_interval(key, v, writes, empties, [], already) for v in sorted(values, key=repr)]
        return None if any(r is None for r in reasons) else reasons[0]
    (v,) = values
    value_ends = [o for o in observed]
    return _interval(key, v, writes, empties, value_ends, already)


def _interval(key: Hashable, v: object, writes: list[Operation], empties: list[Operation],
              observed: list[Operation], already: list[Operation]) -> Violation | None:
    proposers = [o for o in writes if o.arg == v]
    if not proposers:
        return Violation(key, f"value {v!r} was read but never written", tuple(observed[:1]))
    first = min(proposers, key=lambda o: o.start)
    bad_already = [o for o in already if o.arg == v]
    if bad_already:
        return Violation(key, f"ALREADY_WRITTEN returned to a write of the value {v!r} "
                         "that the register holds", tuple(bad_already[:1]))
    lower, lower_op = first.start, first
    for o in empties:
        if o.start > lower:
            lower, lower_op = o.start, o
    upper, upper_op = math.inf, None
    for o in [*observed, *already]:
        assert o.end is not None
        if o.end < upper:
            upper, upper_op = o.end, o
    if lower < upper or (upper_op is None):
        return None
    pair = tuple(x for x in (lower_op, upper_op) if x is not None)
    return Violation(key, f"no moment for {v!r} to be written: it must be after {lower:g} "
                     f"and before {upper:g}", pair)

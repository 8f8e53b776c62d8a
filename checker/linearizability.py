"""Linearizability of recorded client histories against a sequential specification.

The algorithm is Wing and Gong's search as improved by Lowe (and used by Porcupine): repeatedly
pick an operation that is *minimal* (invoked before every pending return) and that the
sequential spec allows with the result it returned, memoising (set of linearized operations,
spec state) so each configuration is explored once. Histories of independent objects are
checked one object at a time (P-compositionality: a history is linearizable iff each object's
sub-history is), which is what keeps large histories of many registers fast.

An operation that never returned (timed out, or its client crashed) may have taken effect at
any point after its invocation, or never: it is *optional*, and only returned operations must
be linearized. Results the spec cannot predict exactly may be matched by a predicate.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Operation:
    """One client operation: invoked at ``start``, returned ``result`` at ``end`` (``None``:
    never returned). ``key`` names the object it acts on (for per-object checking)."""

    client: Hashable
    key: Hashable
    op: str
    arg: Any
    start: float
    end: float | None
    result: Any = None


#: A sequential specification: from a state and an operation, the possible
#: ``(next_state, result)`` pairs (several when the spec is non-deterministic).
SeqSpec = Callable[[Any, Operation], Iterable[tuple[Any, Any]]]


@dataclass
class LinearizabilityResult:
    """Verdict; on failure, the object and the operations of its longest linearizable prefix."""

    ok: bool
    operations: int
    objects: int
    seconds: float
    failed_key: Hashable | None = None
    linearized: list[Operation] = field(default_factory=list)
    unexplained: list[Operation] = field(default_factory=list)


def check_history(history: Sequence[Operation], spec: SeqSpec, init: Any, *,
                  results_match: Callable[[Any, Any], bool] | None = None,
                  max_configurations: int = 2_000_000) -> LinearizabilityResult:
    """Check ``history`` object by object; stop at the first non-linearizable object."""
    t0 = time.perf_counter()
    by_key: dict[Hashable, list[Operation]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    match = results_match or (lambda expected, got: expected == got)
    for key, ops in by_key.items():
        ok, best = _check_object(ops, spec, init, match, max_configurations)
        if not ok:
            best_ids = {id(o) for o in best}
            return LinearizabilityResult(
                ok=False, operations=len(history), objects=len(by_key),
                seconds=time.perf_counter() - t0, failed_key=key, linearized=best,
                unexplained=[o for o in ops if id(o) not in best_ids and o.end is not None])
    return LinearizabilityResult(ok=True, operations=len(history), objects=len(by_key),
                                 seconds=time.perf_counter() - t0)


def _check_object(ops: list[Operation], spec: SeqSpec, init: Any,
                  match: Callable[[Any, Any], bool],
                  limit: int) -> tuple[bool, list[Operation]]:
    ops = sorted(ops, key=lambda o: o.start)
    n = len(ops)
    ends = [o.end if o.end is not None else math.inf for o in ops]
    required = sum(1 << i for i, o in enumerate(ops) if o.end is not None)
    seen: set[tuple[int, Any]] = set()
    best: list[int] = []
    # Depth-first search over (linearized bitmask, spec state, order so far).
    stack: list[tuple[int, Any, list[int]]] = [(0, init, [])]
    while stack:
        done, state, order = stack.pop()
        if done & required == required:
            return True, [ops[i] for i in order]
        if len(order) > len(best):
            best = order
        # An operation can go next only if it was invoked before every operation not yet
        # linearized returned (otherwise that return would precede it in real time).
        horizon = min((ends[i] for i in range(n) if not done >> i & 1), default=math.inf)
        for i in range(n):
            if done >> i & 1 or ops[i].start > horizon:
                continue
            for nxt_state, expected in spec(state, ops[i]):
                if ops[i].end is not None and not match(expected, ops[i].result):
                    continue
                key = (done | 1 << i, nxt_state)
                if key in seen:
                    continue
                seen.add(key)
                if len(seen) > limit:
                    raise ValueError(f"linearizability search exceeded {limit} configurations "
                                     f"on object {ops[0].key!r}; the history is too concurrent")
                stack.append((done | 1 << i, nxt_state, [*order, i]))
    return False, [ops[i] for i in best]

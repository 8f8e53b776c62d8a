"""Benchmark: checking recorded shared-log histories (``spec.sharedlog.check_history``).

Generates valid histories of 1k, 10k and 100k operations and times the check; then, for each
kind of corruption a buggy log could produce, corrupts the history and checks that the
violation is caught (and how fast).

A valid history comes from a simulated log whose every operation takes effect at one point
inside its ``[start, end]``: points are spread at random, clients are given disjoint intervals
around theirs (one operation at a time per client) and overlap other clients'. The log has a
sequencer counter with occasional holes (a grant whose write never happened), which readers
fill; appends that time out (no response) and whose value may or may not have landed; rare
segment-aligned trims of a prefix; and check_tail answering the counter.

    python bench/sharedlog_history_bench.py
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from wormspace.spec.sharedlog import LogOp, check_history

SEGMENT = 16


def valid_history(n: int, seed: int, clients: int = 8) -> list[LogOp]:
    """``n`` operations of a correct shared log (see the module docstring)."""
    rng = random.Random(seed)
    points = sorted(rng.uniform(0, n) for _ in range(n))
    owner = [rng.randrange(clients) for _ in range(n)]
    log: dict[int, tuple[str, Any]] = {}
    trimmed_below = counter = 0
    ops: list[tuple[int, str, Any, Any, bool]] = []  # (client, op, arg, result, responded)
    for i in range(n):
        roll = rng.random()
        if roll < 0.45:  # append
            value = f"v{i}" if rng.random() < 0.95 else "dup"  # a few equal payloads
            a, counter = counter, counter + 1
            if rng.random() < 0.03:  # the grant's write never happens: a hole
                failed = rng.random() < 0.5  # the client gave up, or never answered
                ops.append((owner[i], "append", value, "failed" if failed else None, failed))
                continue
            log[a] = ("data", value)
            timed_out = rng.random() < 0.03  # it took effect but the client never heard
            ops.append((owner[i], "append", value, None if timed_out else a, not timed_out))
        elif roll < 0.85 or (roll < 0.9 and not counter):  # read
            a = rng.randrange(counter + 2)
            ops.append((owner[i], "read", a, _entry(log, a, trimmed_below), True))
        elif roll < 0.9:  # fill a hole (or whatever is there)
            a = rng.randrange(counter)
            if a >= trimmed_below and a not in log:
                log[a] = ("junk", None)
            ops.append((owner[i], "fill", a, _entry(log, a, trimmed_below), True))
        elif roll < 0.995:
            ops.append((owner[i], "check_tail", None, counter, True))
        else:  # trim a segment-aligned prefix below the tail
            prefix = (counter // 2) // SEGMENT * SEGMENT
            trimmed_below = max(trimmed_below, prefix)
            ops.append((owner[i], "trim", prefix, "ok", True))
    return _timed(ops, points, owner, rng)


def _entry(log: dict[int, tuple[str, Any]], a: int, trimmed_below: int) -> tuple[str, Any]:
    if a < trimmed_below:
        return ("trimmed", None)
    return log.get(a, ("empty", None))


def _timed(ops: list[tuple[int, str, Any, Any, bool]], points: list[float], owner: list[int],
           rng: random.Random) -> list[LogOp]:
    """Give each operation ``[start, end]`` around its point, within its client's share."""
    per_client: dict[int, list[int]] = {}
    for i, c in enumerate(owner):
        per_client.setdefault(c, []).append(i)
    out: list[LogOp | None] = [None] * len(ops)
    for idx in per_client.values():
        for k, i in enumerate(idx):
            p = points[i]
            lo = (points[idx[k - 1]] + p) / 2 if k else p - 1.0
            hi = (points[idx[k + 1]] + p) / 2 if k + 1 < len(idx) else p + 1.0
            client, op, arg, result, responded = ops[i]
            start = rng.uniform(lo, p)
            end = rng.uniform(p, hi) if responded else None
            out[i] = LogOp(f"c{client}", op, arg, result if responded else None, start, end)
    assert all(o is not None for o in out)
    return [o for o in out if o is not None]


# -- corruptions: each is something a buggy log would answer, and must be caught ----------------

def _completed(h: list[LogOp], op: str, pred: Callable[[LogOp], bool] = lambda o: True) -> list[int]:
    return [i for i, o in enumerate(h) if o.op == op and o.end is not None and pred(o)]


def _replace(h: list[LogOp], i: int, **changes: Any) -> list[LogOp]:
    o = h[i]
    fields = {"client": o.client, "op": o.op, "arg": o.arg, "result": o.result,
              "start": o.start, "end": o.end, **changes}
    return h[:i] + [LogOp(**fields)] + h[i + 1:]


def duplicate_address(h: list[LogOp]) -> list[LogOp]:
    """A later append is told the address of an earlier one (a sequencer handing out twice)."""
    apps = _completed(h, "append", lambda o: o.ok_address is not None)
    first, later = apps[len(apps) // 3], apps[2 * len(apps) // 3]
    return _replace(h, later, result=h[first].result)


def changed_read(h: list[LogOp]) -> list[LogOp]:
    """A read of a written address returns another appended value."""
    reads = _completed(h, "read", lambda o: o.result[0] == "data")
    i = reads[len(reads) // 2]
    other = next(o.arg for o in h if o.op == "append" and o.arg != h[i].result[1])
    return _replace(h, i, result=("data", other))


def junk_over_data(h: list[LogOp]) -> list[LogOp]:
    """A read of an address that holds a value returns JUNK (a fill overwrote it)."""
    reads = _completed(h, "read", lambda o: o.result[0] == "data")
    return _replace(h, reads[len(reads) // 2], result=("junk", None))


def empty_after_append(h: list[LogOp]) -> list[LogOp]:
    """A read invoked after an append completed returns EMPTY for its address."""
    apps = _completed(h, "append", lambda o: o.ok_address is not None)
    o = h[apps[len(apps) // 2]]
    assert o.end is not None
    return h + [LogOp("late-reader", "read", o.result, ("empty", None), o.end + 0.5, o.end + 1.0)]


def tail_too_low(h: list[LogOp]) -> list[LogOp]:
    """A check_tail answers below an append that completed before it started."""
    tails = _completed(h, "check_tail", lambda o: o.result > 0)
    i = tails[len(tails) // 2]
    return _replace(h, i, result=0)


def trimmed_without_trim(h: list[LogOp]) -> list[LogOp]:
    """A read answers TRIMMED for an address no trim covered."""
    top = max((o.arg for o in h if o.op == "trim"), default=0)
    reads = _completed(h, "read", lambda o: o.arg >= top and o.result[0] == "data")
    return _replace(h, reads[len(reads) // 2], result=("trimmed", None))


def value_never_appended(h: list[LogOp]) -> list[LogOp]:
    """A read returns a value nobody appended."""
    reads = _completed(h, "read", lambda o: o.result[0] == "data")
    return _replace(h, reads[len(reads) // 2], result=("data", "forged"))


CORRUPTIONS: dict[str, Callable[[list[LogOp]], list[LogOp]]] = {
    "duplicate_address": duplicate_address, "changed_read": changed_read,
    "junk_over_data": junk_over_data, "empty_after_append": empty_after_append,
    "tail_too_low": tail_too_low, "trimmed_without_trim": trimmed_without_trim,
    "value_never_appended": value_never_appended,
}


def main() -> None:
    print("| history length | generate (s) | check (s) | operations/s | violations |")
    print("|---:|---:|---:|---:|---:|")
    big: list[LogOp] = []
    for n in (1_000, 10_000, 100_000):
        t0 = time.perf_counter()
        h = valid_history(n, seed=n)
        gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        bad = check_history(h, segment_size=SEGMENT)
        dt = time.perf_counter() - t0
        print(f"| {n:,} | {gen:.2f} | {dt:.3f} | {n / dt:,.0f} | {len(bad)} |")
        assert not bad, bad[:3]
        big = h
    print()
    print("| corruption of the 100,000-operation history | caught | check (s) | first violation |")
    print("|---|---|---:|---|")
    for name, corrupt in CORRUPTIONS.items():
        h = corrupt(big)
        t0 = time.perf_counter()
        bad = check_history(h, segment_size=SEGMENT)
        dt = time.perf_counter() - t0
        print(f"| {name} | {'yes' if bad else 'NO'} | {dt:.3f} | {bad[0][:90] if bad else '-'} |")
        assert bad, name


if __name__ == "__main__":
    main()

"""Benchmark: checking recorded histories and traces, against history length.

* the WOR value check (``spec/wor_history.py``) on valid histories of 1k to 100k operations
  (10 operations per register);
* the generic Wing-Gong-Lowe search (``checker/linearizability.py``) on the same kind of
  histories, up to the size it handles;
* trace validation (``checker/tracecheck.py``) of random TwoPhase behaviours, events/s.

    python bench/history_bench.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "checker"))

from test_tracecheck_linearizability import EMAP, _random_walk, _wor_history
from wormspace.checker.linearizability import Operation, check_history
from wormspace.checker.tracecheck import validate_trace
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.wor_history import check_values


def wor_seq_spec(state: Any, op: Operation) -> list[tuple[Any, Any]]:
    """Value semantics of a WOR as a sequential spec (state: 0 = EMPTY or the value)."""
    if op.op == "read":
        return [(state, "EMPTY" if state == 0 else state)]
    if state == 0:
        return [(op.arg, "OK"), (state, "PREEMPTED")]
    return [(state, "OK" if state == op.arg else "ALREADY_WRITTEN"), (state, "PREEMPTED")]


def main() -> None:
    print("| history length | WOR value check (s) | ops/s | WGL search (s) |")
    print("|---:|---:|---:|---:|")
    for n in (1_000, 10_000, 100_000):
        h = _wor_history(n // 10, 10, random.Random(n))
        t0 = time.perf_counter()
        assert check_values(h) == []
        fast = time.perf_counter() - t0
        wgl = "-"
        if n <= 10_000:
            t0 = time.perf_counter()
            r = check_history(h, wor_seq_spec, 0)
            assert r.ok
            wgl = f"{time.perf_counter() - t0:.2f}"
        print(f"| {n:,} | {fast:.3f} | {n / fast:,.0f} | {wgl} |")
    m = TwoPhase(rm=4)
    walks = [_random_walk(m, 20, seed) for seed in range(200)]
    t0 = time.perf_counter()
    total = 0
    for w in walks:
        out = validate_trace(m, w, EMAP)
        assert out.ok
        total += out.checked
    dt = time.perf_counter() - t0
    print()
    print(f"Trace validation, TwoPhase rm=4: {len(walks)} traces, {total} events in {dt:.2f} s: "
          f"{total / dt:,.0f} events/s")


if __name__ == "__main__":
    main()

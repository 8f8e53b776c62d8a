"""The baseline: a hand-written breadth-first search of TwoPhase over tuple states.

No framework: one function, inlined actions, a set of seen states. It is what the generic
checker is measured against (``bench/checker_bench.py``); the issue's goal is to stay within
1.5x of it. It uses the same state encoding as ``model/examples/twophase.py`` and must find the
same counts (it asserts them against GOLDEN.md when run with ``--verify``).

    python bench/handwritten_twophase.py 7
"""

from __future__ import annotations

import sys
import time

WORKING, PREPARED, COMMITTED, ABORTED = 0, 1, 2, 3
TM_INIT, TM_COMMITTED, TM_ABORTED = 0, 1, 2


def bfs(n: int) -> tuple[int, int, int]:
    """Explore TwoPhase with ``n`` RMs; return (distinct, generated, depth)."""
    all_rms = (1 << n) - 1
    commit_bit = 1 << n
    abort_bit = 1 << (n + 1)
    rng = range(n)
    init = ((WORKING,) * n, TM_INIT, 0, 0)
    seen = {init}
    frontier = [init]
    generated = 1
    depth = 1
    while frontier:
        nxt = []
        add = nxt.append
        for s in frontier:
            rms, tm, prepared, msgs = s
            succs = []
            if tm == TM_INIT:
                if prepared == all_rms:
                    succs.append((rms, TM_COMMITTED, prepared, msgs | commit_bit))
                succs.append((rms, TM_ABORTED, prepared, msgs | abort_bit))
                for i in rng:
                    bit = 1 << i
                    if msgs & bit:
                        succs.append((rms, tm, prepared | bit, msgs))
            for i in rng:
                if rms[i] == WORKING:
                    succs.append((rms[:i] + (PREPARED,) + rms[i + 1 :], tm, prepared, msgs | (1 << i)))
                    succs.append((rms[:i] + (ABORTED,) + rms[i + 1 :], tm, prepared, msgs))
            if msgs & commit_bit:
                for i in rng:
                    succs.append((rms[:i] + (COMMITTED,) + rms[i + 1 :], tm, prepared, msgs))
            if msgs & abort_bit:
                for i in rng:
                    succs.append((rms[:i] + (ABORTED,) + rms[i + 1 :], tm, prepared, msgs))
            generated += len(succs)
            for t in succs:
                if t not in seen:
                    seen.add(t)
                    add(t)
        if nxt:
            depth += 1
        frontier = nxt
    return len(seen), generated, depth


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    t0 = time.perf_counter()
    distinct, generated, depth = bfs(n)
    dt = time.perf_counter() - t0
    print(f"rm={n} distinct={distinct} generated={generated} depth={depth} seconds={dt:.2f}")

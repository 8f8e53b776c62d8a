"""WOR-layer benchmark: states, depth and time of Paxos-WOR's standard configurations, and the
time of its Z3 proof. Run: ``python bench/wor_bench.py [--proof]``; prints a Markdown table."""

from __future__ import annotations

import sys
import time

from wormspace.checker.explore import check
from wormspace.model.wor.paxos import PaxosWOR

CONFIGS = [dict(acceptors=3, clients=2, values=2, rounds=r, unsafe=False) for r in (1, 2)]


def main() -> None:
    print("| model | configuration | symmetry | distinct | generated | depth | seconds | result |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for cfg in CONFIGS:
        for sym in (False, True):
            t0 = time.perf_counter()
            r = check(PaxosWOR(**cfg), symmetry=sym)
            dt = time.perf_counter() - t0
            desc = ", ".join(f"{k}={v}" for k, v in cfg.items())
            print(f"| wor.paxos | {desc} | {'yes' if sym else 'no'} | {r.distinct:,} | "
                  f"{r.generated:,} | {r.depth} | {dt:.1f} | {r.result} |", flush=True)
    if "--proof" in sys.argv:
        from wormspace.checker.prove import run_suite
        from wormspace.model.wor.paxos_z3 import proof_suite
        rep = run_suite(proof_suite())
        print(f"\nwor.paxos proof: {len(rep.obligations)} obligations, "
              f"{len(rep.failed)} not proved, {rep.seconds:.1f} s")


if __name__ == "__main__":
    main()

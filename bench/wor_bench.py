"""WOR-layer benchmark: states, depth and time of Paxos-WOR's and Chain-WOR's standard
configurations, the time of each Z3 proof suite (with its slowest obligations), and of
conformance. Run: ``python bench/wor_bench.py [--no-proof] [--skip-rounds2]``; prints Markdown
tables. Paxos-WOR with 2 rounds is large (unreduced it did not finish within 7 minutes and
2.3 GB on a loaded 2-core machine); ``--skip-rounds2`` leaves it out."""

from __future__ import annotations

import sys
import time
from typing import Any

from wormspace.checker.explore import check
from wormspace.model.wor.chain import ChainWOR
from wormspace.model.wor.paxos import PaxosWOR

CONFIGS: list[tuple[str, Any, dict[str, Any]]] = [
    *[("wor.paxos", PaxosWOR, dict(acceptors=3, clients=2, values=2, rounds=r, unsafe=False))
      for r in (1, 2)],
    ("wor.chain", ChainWOR, dict(nodes=2, clients=2, values=2, rounds=1, crashes=1)),
]


def main() -> None:
    print("| model | configuration | symmetry | distinct | generated | depth | seconds | result |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for name, cls, cfg in CONFIGS:
        if "--skip-rounds2" in sys.argv and cfg.get("rounds") == 2:
            continue
        for sym in (False, True):
            t0 = time.perf_counter()
            r = check(cls(**cfg), symmetry=sym)
            dt = time.perf_counter() - t0
            desc = ", ".join(f"{k}={v}" for k, v in cfg.items())
            print(f"| {name} | {desc} | {'yes' if sym else 'no'} | {r.distinct:,} | "
                  f"{r.generated:,} | {r.depth} | {dt:.1f} | {r.result} |", flush=True)
    if "--no-proof" in sys.argv:
        return
    from wormspace.checker.prove import run_suite
    from wormspace.model.wor import chain_z3, paxos_z3

    print("\n| proof suite | obligations | by Z3 | proved | wall s | CPU s | slowest |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for suite in (paxos_z3.proof_suite(), paxos_z3.proof_suite(unsafe=True),
                  chain_z3.proof_suite(nodes=2), chain_z3.proof_suite(nodes=3)):
        c0 = time.process_time()
        rep = run_suite(suite)
        cpu = time.process_time() - c0
        slow = ", ".join(f"{o.name} {o.seconds:.2f}" for o in rep.slowest(3))
        print(f"| {rep.suite} | {len(rep.obligations)} | "
              f"{sum(o.how == 'z3' for o in rep.obligations)} | "
              f"{len(rep.obligations) - len(rep.failed)} | {rep.seconds:.1f} | {cpu:.1f} | "
              f"{slow} |", flush=True)
    print("\n| conformance | verdict | detail |")
    print("|---|---|---|")
    for conf in (paxos_z3.conformance, chain_z3.conformance):
        rep_c = conf()
        print(f"| {conf.__module__} | {rep_c.summary} | {rep_c.detail} |", flush=True)


if __name__ == "__main__":
    main()

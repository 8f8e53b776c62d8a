"""WOS layer benchmark: the same WormSpace module explored layered (over the atomic WOR spec)
and flat (over Paxos-WOR), with the same upper configuration; the ratio is what verifying the
WOR layer once buys. Also the default and a richer layered configuration.

Run: ``python bench/wos_bench.py [--quick]``; prints a Markdown table.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from wormspace.checker.explore import check
from wormspace.model.wos.segments import Segments

#: (upper configuration, lower models to run it over). Paxos needs timeouts (its only way of
#: answering PREEMPTED) and two ballots per client so that an alloc that lost the race can read
#: the winner, as it can over the atomic WOR: with one ballot the flat model would explore
#: fewer upper behaviours than the layered one and the comparison would flatter it.
COMPARED: list[dict[str, Any]] = [
    dict(workload="alloc1/alloc2", timeouts=True, epochs=1),
    dict(workload="alloc1/alloc2", timeouts=True, epochs=2),
]
LAYERED_ONLY: list[dict[str, Any]] = [
    dict(),  # the registered default
    dict(workload="alloc1,capture,write1/alloc2,trim,read"),
]


def run(cfg: dict[str, Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    r = check(Segments(**cfg))
    return r, time.perf_counter() - t0


def main() -> None:
    quick = "--quick" in sys.argv
    print("| lower | configuration | distinct | generated | depth | seconds | result |")
    print("|---|---|---:|---:|---:|---:|---|")
    for cfg in COMPARED[:1] if quick else COMPARED:
        rows = []
        for lower in ("wor", "wor.paxos"):
            full = dict(cfg, lower=lower, **({"rounds": 2} if lower == "wor.paxos" else {}))
            r, dt = run(full)
            rows.append((r, dt))
            desc = ", ".join(f"{k}={v}" for k, v in full.items() if k != "lower")
            print(f"| {lower} | {desc} | {r.distinct:,} | {r.generated:,} | {r.depth} | "
                  f"{dt:.1f} | {r.result} |", flush=True)
        (a, ta), (b, tb) = rows
        print(f"| ratio flat/layered | | {b.distinct / a.distinct:.0f}x | "
              f"{b.generated / a.generated:.0f}x | | {tb / ta:.0f}x | |", flush=True)
    for cfg in [] if quick else LAYERED_ONLY:
        r, dt = run(cfg)
        desc = ", ".join(f"{k}={v}" for k, v in cfg.items()) or "default"
        print(f"| wor | {desc} | {r.distinct:,} | {r.generated:,} | {r.depth} | {dt:.1f} | "
              f"{r.result} |", flush=True)


if __name__ == "__main__":
    main()

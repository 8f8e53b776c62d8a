"""Implementation-level model checking benchmark: the real ``impl/core`` Paxos-WOR code under the
checker (``refinement_tests/core_model.py``, catalog name ``impl.core``).

Prints a Markdown table: configuration, distinct and generated states, depth, seconds, distinct
states per second and the verdict. Rows: the default configuration, the same without the step
cache (what the memo of pure core steps buys), a larger configuration (the free menu: each
client writes either value or reads), and the slowest planted bug's configuration. ``--big`` adds the
two-round configurations (1.8 and 3.1 million states, minutes each).

Run: ``python bench/core_model_bench.py [--big]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from wormspace.checker.explore import check
from wormspace.refinement_tests.core_model import CoreWOR

CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("default", {}),
    ("default, no step cache", dict(cache=False)),
    ("larger: free menu (each client writes a, writes b or reads)", dict(workload="")),
    ("arbitrary_adopt caught", dict(workload="write1/write2", rounds=2, crashes=0, timeouts=False,
                                    bug="arbitrary_adopt")),
]
BIG: list[tuple[str, dict[str, Any]]] = [
    ("two rounds, writer and reader", dict(workload="write1/read", rounds=2, timeouts=False)),
    ("two rounds, two writers", dict(workload="write1/write2", rounds=2, timeouts=False)),
]


def main() -> None:
    rows = CONFIGS + (BIG if "--big" in sys.argv else [])
    print("| configuration | parameters | distinct | generated | depth | seconds | states/s | result |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, kwargs in rows:
        model = CoreWOR(**kwargs)
        t0 = time.perf_counter()
        r = check(model)
        dt = time.perf_counter() - t0
        shown = ", ".join(f"{k}={v}" for k, v in model.params.items()).replace("|", "\\|")
        if not kwargs.get("cache", True):
            shown += ", cache=False"
        verdict = r.result if r.result == "ok" else f"{r.result} ({r.violated}, {len(r.trace)} steps)"
        print(f"| {name} | {shown} | {r.distinct:,} | {r.generated:,} | {r.depth} | {dt:.1f} | "
              f"{r.distinct / dt:,.0f} | {verdict} |", flush=True)


if __name__ == "__main__":
    main()

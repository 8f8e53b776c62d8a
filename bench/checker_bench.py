"""Benchmark: the checker on TwoPhase (7 and 8 RMs) side by side with a hand-written BFS.

Each run is a fresh subprocess (so peak memory is its own), repeated; the table reports the
best wall time, states generated per second, and peak resident memory per distinct state
(peak RSS minus the RSS of the same process right before the search, over distinct states;
for 2 workers, the coordinator's only: the workers' own peaks are not included).
The anchors (TLC 2.20 with 1 and 2 workers) are GOLDEN.md's measurements on this kind of
machine; TLC itself is not run here.

    python bench/checker_bench.py            # rm = 7 and 8, 3 repetitions
    python bench/checker_bench.py --rm 7 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import gc, json, resource, sys, time
sys.path.insert(0, {here!r})
which, rm = sys.argv[1], int(sys.argv[2])
def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
if which == "imports only":
    from handwritten_twophase import bfs
    from wormspace.checker.explore import check
    from wormspace.model.examples.twophase import TwoPhase
    before = rss_kb()
    t0 = time.perf_counter()
    distinct, generated, depth = 0, 0, 0
    seconds = 0.0
elif which == "handwritten":
    from handwritten_twophase import bfs
    before = rss_kb()
    t0 = time.perf_counter()
    gc.disable()
    distinct, generated, depth = bfs(rm)
    seconds = time.perf_counter() - t0
else:
    from wormspace.checker.explore import check
    from wormspace.model.examples.twophase import TwoPhase
    import tempfile
    model = TwoPhase(rm=rm)
    kwargs = dict(refinement=(which == "checker+refinement"))
    if which == "checker, no invariants":
        kwargs["invariants"] = []
    if which == "checker, 2 workers":
        kwargs["workers"] = 2
    if which == "checker, compact disk store":
        kwargs["disk"] = tempfile.mkdtemp(prefix="wormspace-bench-")
    before = rss_kb()
    t0 = time.perf_counter()
    r = check(model, **kwargs)
    seconds = time.perf_counter() - t0
    assert r.result == "ok", r.result
    distinct, generated, depth = r.distinct, r.generated, r.depth
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(dict(which=which, rm=rm, distinct=distinct, generated=generated, depth=depth,
                      seconds=seconds, peak_kb=peak, before_kb=before, worker_peak_kb=children)))
"""

GOLDEN = {7: (296_448, 2_744_706, 23), 8: (1_745_408, 18_507_778, 26)}
TLC = {7: "about 17 s (1 worker), about 12 s (2 workers)", 8: "41 s and 84 s (2 workers)"}
RUNS = ("handwritten", "checker, no invariants", "checker", "checker+refinement",
        "checker, 2 workers",
        "checker, compact disk store")


def instructions(which: str, rm: int) -> int:
    """Instructions executed (valgrind callgrind): repeatable whatever else the machine runs."""
    code = _CHILD.format(here=str(HERE))
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, "-c", code, which, str(rm)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    for line in out.stderr.splitlines():
        if "Collected" in line:
            return int(line.split()[-1])
    raise RuntimeError("callgrind printed no instruction count")


def instruction_table(rm: int) -> None:
    """Instruction counts of the search alone (interpreter start and imports subtracted)."""
    base = instructions("imports only", rm)
    rows = [(w, instructions(w, rm) - base) for w in
            ("handwritten", "checker, no invariants", "checker", "checker+refinement")]
    hand = rows[0][1]
    print(f"\nInstructions (valgrind callgrind), TwoPhase rm={rm}, search only:\n")
    print("| run | instructions | vs hand-written |")
    print("|---|---:|---:|")
    for w, n in rows:
        print(f"| {w} | {n:,} | {n / hand:.2f}x |")


def run_one(which: str, rm: int) -> dict[str, float]:
    """One measurement in a fresh interpreter."""
    code = _CHILD.format(here=str(HERE))
    out = subprocess.run([sys.executable, "-c", code, which, str(rm)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rm", type=int, action="append", help="resource managers (repeatable)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "checker.json")
    parser.add_argument("--instructions", type=int, metavar="RM",
                        help="only count instructions under callgrind for this many RMs")
    args = parser.parse_args()
    if args.instructions:
        instruction_table(args.instructions)
        return 0
    sizes = args.rm or [7, 8]
    rows = []
    for rm in sizes:
        for which in RUNS:
            best: dict[str, float] | None = None
            for i in range(args.repeat):
                r = run_one(which, rm)
                print(f"  rm={rm} {which:<20} run {i + 1}: {r['seconds']:.2f} s", file=sys.stderr)
                if best is None or r["seconds"] < best["seconds"]:
                    best = r
            assert best is not None
            if rm in GOLDEN:
                assert (best["distinct"], best["generated"], best["depth"]) == GOLDEN[rm], best
            best["bytes_per_state"] = (best["peak_kb"] - best["before_kb"]) * 1024 / best["distinct"]
            rows.append(best)
    print()
    print(f"| RMs | run | distinct | generated | depth | best wall (s) of {args.repeat} | "
          "states/s (generated) | peak bytes / distinct state | largest worker peak (MB) "
          "| vs hand-written |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        base = next(x for x in rows if x["rm"] == r["rm"] and x["which"] == "handwritten")
        print(f"| {r['rm']} | {r['which']} | {r['distinct']:,} | {r['generated']:,} | {r['depth']} "
              f"| {r['seconds']:.2f} | {r['generated'] / r['seconds']:,.0f} "
              f"| {r['bytes_per_state']:.0f} "
              f"| {r['worker_peak_kb'] / 1024 if 'workers' in r['which'] else 0:.0f} "
              f"| {r['seconds'] / base['seconds']:.2f}x |")
    for rm in sizes:
        if rm in TLC:
            print(f"| {rm} | TLC 2.20 (GOLDEN.md anchor) | | | | {TLC[rm]} | | | | |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

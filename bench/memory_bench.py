"""Bytes per distinct state of the compact disk store (``check(..., disk=DIR)``) on TwoPhase.

Runs each configuration in a fresh interpreter and prints one JSON line: distinct and generated
states, wall seconds, and *peak bytes / distinct state* = (peak RSS - RSS before the search) /
distinct, the measure of ``bench/RESULTS.md``. The knobs of ``checker/compact.py`` (frontier
chunk, batch limit, prefill, largest fingerprint run) can be overridden to see what each costs.

    python bench/memory_bench.py --rm 7 --rm 8
    python bench/memory_bench.py --rm 8 --chunk 65536 --batch 1048576 --prefill 100000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, tempfile, time
from wormspace.checker import compact
from wormspace.checker.explore import check
from wormspace.model.examples.twophase import TwoPhase

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

rm, knobs = int(sys.argv[1]), json.loads(sys.argv[2])
for name, value in knobs.items():
    setattr(compact, name, value)
model = TwoPhase(rm=rm)
before = rss_kb()
t0 = time.perf_counter()
r = check(model, disk=tempfile.mkdtemp(prefix="wormspace-mem-"))
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert r.result == "ok", r.result
print(json.dumps(dict(rm=rm, knobs=knobs, distinct=r.distinct, generated=r.generated,
                      depth=r.depth, seconds=round(seconds, 2),
                      bytes_per_state=round((peak - before) * 1024 / r.distinct, 1))))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rm", type=int, action="append", help="resource managers (repeatable)")
    ap.add_argument("--chunk", type=int, help="states per frontier file (CHUNK)")
    ap.add_argument("--batch", type=int, help="candidates per flush (BATCH_LIMIT)")
    ap.add_argument("--prefill", type=int, help="known fingerprints pre-loaded (PREFILL)")
    ap.add_argument("--run-max", type=int, help="largest sorted fingerprint run (RUN_MAX)")
    args = ap.parse_args()
    knobs = {k: v for k, v in (("CHUNK", args.chunk), ("BATCH_LIMIT", args.batch),
                               ("PREFILL", args.prefill), ("RUN_MAX", args.run_max)) if v}
    for rm in args.rm or [7, 8]:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(rm), json.dumps(knobs)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": "0"})
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()

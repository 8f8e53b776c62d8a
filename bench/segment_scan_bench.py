"""How long the applications take to find the end of their run of segments (``last_allocated``).

Every WormLog client looking for its sequencer, every sequencer failover and every WormPaxos
election first finds the last allocated segment of its run. This allocates runs of N segments
on a local 3-server Paxos-WOR cluster (the lower half trimmed, as a long-lived log's would be)
and times the galloping search against the linear scan it replaced (kept here as the
reference), each checked to give the same answer. Prints a Markdown table.

    python bench/segment_scan_bench.py [--sizes 10,100,1000,5000] [--fsync] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import apps_bench
from wormspace.impl.apps.space import is_allocated, last_allocated
from wormspace.impl.net import eventloop
from wormspace.impl.net.client import WormSpaceClient


async def linear_last_allocated(client: WormSpaceClient, start: int) -> int | None:
    """The scan ``last_allocated`` used before (one check per segment, in sequence)."""
    if not await is_allocated(client, start):
        return None
    s = start
    while await is_allocated(client, s + 1):
        s += 1
    return s


async def grow_run(client: WormSpaceClient, base: int, have: int, want: int) -> None:
    """Allocate segments ``base + have .. base + want - 1`` (64 at a time) and trim the lower
    half of the run."""
    sem = asyncio.Semaphore(64)

    async def one(seg: int) -> None:
        async with sem:
            assert await client.alloc(seg, b"bench")

    await asyncio.gather(*(one(base + s) for s in range(have, want)))
    await asyncio.gather(*(client.trim(base + s) for s in range(have // 2, want // 2)))


async def measure(path: str, sizes: list[int], repeat: int) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    base = 1_000
    async with WormSpaceClient.from_file(path, timeout=5.0) as c:
        have = 0
        for n in sizes:
            print(f"allocating segments {have}..{n - 1} of the run ...", file=sys.stderr,
                  flush=True)
            await grow_run(c, base, have, n)
            have = n
            times: dict[str, list[float]] = {"gallop": [], "linear": []}
            for _ in range(repeat):
                for name, fn in (("gallop", last_allocated), ("linear", linear_last_allocated)):
                    t0 = time.perf_counter()
                    got = await fn(c, base)
                    times[name].append(time.perf_counter() - t0)
                    if got != base + n - 1:
                        raise SystemExit(f"{name}: {got} != {base + n - 1}")
            row = {"n": n, "gallop_ms": 1e3 * statistics.median(times["gallop"]),
                   "linear_ms": 1e3 * statistics.median(times["linear"])}
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,100,1000,5000")
    ap.add_argument("--fsync", action="store_true", help="durable servers (default: in memory)")
    ap.add_argument("--repeat", type=int, default=3, help="timings per size (median)")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    with apps_bench.cluster(3, "paxos", memory=not args.fsync, segment_size=64) as path:
        rows = eventloop.run(measure(path, sizes, args.repeat))
    store = "fsync" if args.fsync else "memory"
    print(f"\n3-server Paxos-WOR, {store}; median of {args.repeat}\n")
    print("| segments in the run | galloping search | linear scan | ratio |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['gallop_ms']:.1f} ms | {r['linear_ms']:.1f} ms "
              f"| {r['linear_ms'] / r['gallop_ms']:.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

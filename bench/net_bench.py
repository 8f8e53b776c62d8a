"""Networked WormSpace: latency and throughput of client calls against a local 3-server cluster.

For each store mode (in memory: NOT durable; fsync: durable, group commit) and client
concurrency (1, 16, 64 outstanding calls from one asyncio client), measures for about ``--cell``
seconds each:

* ``read``          a linearizable read of a written address (1 round trip)
* ``write``         a write to a pre-captured WOR (1 round trip; captured before the cell)
* ``capture+write`` a write without capture id (2 round trips)

and prints a Markdown table of ops/s, p50 and p99 latency. Everything runs on this machine: the
servers and the client share its cores, so the numbers are for comparing changes, not for
comparing with the paper's separate machines. Bounded: each cell stops after ``--cell`` seconds
or when its pool of pre-captured WORs runs out (then fewer ops are reported).

    python bench/net_bench.py [--cell 3] [--modes memory,fsync] [--conc 1,16,64] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

from wormspace.impl.net import eventloop, local_cluster
from wormspace.impl.net.client import Capture, WormSpaceClient

SEGMENT = 1024
VALUE = b"v" * 8  # the paper's 8-byte values


class Pool:
    """Addresses handed out once each (fresh WORs, or pre-captured ones)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Capture | None]] = []

    def take(self) -> tuple[int, Capture | None] | None:
        return self.items.pop() if self.items else None


async def run_cell(
    op: Callable[[], Awaitable[bool]], conc: int, seconds: float
) -> tuple[list[float], float]:
    """``conc`` workers call ``op`` until the deadline or until it returns False."""
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if not await op():
                return
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return lat, time.perf_counter() - t0


async def bench_mode(path: str, mode: str, concs: list[int], cell: float) -> list[dict]:
    rows = []
    async with WormSpaceClient.from_file(path, timeout=2.0) as client:
        next_seg = 0

        async def fresh_segments(k: int) -> list[int]:
            nonlocal next_seg
            segs = list(range(next_seg, next_seg + k))
            next_seg += k
            await asyncio.gather(*(client.alloc(s, b"bench") for s in segs))
            return segs

        # Values to read: one segment, written with one range capture and one range write.
        (rseg,) = await fresh_segments(1)
        await client.write_range(rseg, 0, [VALUE] * SEGMENT)
        ri = 0

        async def read() -> bool:
            nonlocal ri
            ri = (ri + 1) % SEGMENT
            return await client.read(rseg * SEGMENT + ri) == VALUE

        for conc in concs:
            for name in ("read", "write", "capture+write"):
                pool = Pool()
                if name != "read":
                    # Enough fresh WORs for a fast cell; pre-captured for "write".
                    segs = await fresh_segments(24 if conc > 1 else 8)
                    for s in segs:
                        if name == "write":
                            caps = await client.capture_range(s, 0, SEGMENT)
                            pool.items += [(c.address, c) for c in caps]
                        else:
                            pool.items += [(s * SEGMENT + o, None) for o in range(SEGMENT)]
                    pool.items.reverse()

                async def write(pool: Pool = pool) -> bool:
                    item = pool.take()
                    if item is None:
                        return False
                    outcome = await client.write(item[0], VALUE, item[1])
                    assert outcome.value == "ok", outcome
                    return True

                op = read if name == "read" else write
                lat, took = await run_cell(op, conc, cell)
                lat.sort()
                rows.append({
                    "mode": mode, "op": name, "concurrency": conc, "ops": len(lat),
                    "seconds": round(took, 2), "ops_per_s": round(len(lat) / took),
                    "p50_ms": round(statistics.median(lat) * 1e3, 3),
                    "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 3),
                })
                print(_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _row(r: dict) -> str:
    return (f"| {r['mode']} | {r['op']} | {r['concurrency']} | {r['ops_per_s']:,} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['ops']:,} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cell", type=float, default=3.0, help="seconds per cell (default 3)")
    ap.add_argument("--modes", default="memory,fsync")
    ap.add_argument("--conc", default="1,16,64")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    rows: list[dict] = []
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix="wsbench-") as d:
            config = local_cluster.create(d, args.nodes, "paxos", segment_size=SEGMENT,
                                          memory=(mode == "memory"))
            local_cluster.up(config)
            try:
                assert config.path is not None
                rows += eventloop.run(bench_mode(config.path, mode, concs, args.cell))
            finally:
                local_cluster.down(config)
    print(f"\n{args.nodes}-server Paxos-WOR on one machine, 8-byte values, one asyncio client "
          f"process; {args.cell:g} s per cell\n")
    print("| store | op | concurrency | ops/s | p50 ms | p99 ms | ops |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

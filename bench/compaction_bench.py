"""Write latency while the servers compact a large acceptor state.

A 3-server Paxos-WOR cluster with fsync. First ``--segments`` segments are captured whole
(``capture_range``: 1,024 live WORs each at every server). Then, while one client writes to
pre-captured WORs one at a time (the probe, recording every write's latency), another task
captures the same segments again at higher ballots, which makes as many records of garbage:
once a server's log holds 100,000 records beyond, and twice, its live ones, it compacts. The
probe's worst latencies show what a compaction costs the writes that arrive during it.

    python bench/compaction_bench.py [--segments 300] [--seconds 20]

Prints the probe's count, p50, p99, p99.9 and max, and each server's compactions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wormspace.impl.net import local_cluster
from wormspace.impl.net.client import WormSpaceClient
from wormspace.impl.net.eventloop import run as run_loop

SEGMENT = 1024


async def _run(path: str, segments: int, seconds: float) -> dict[str, object]:
    async with WormSpaceClient.from_file(path, timeout=5.0) as client:
        base = 10
        for s in range(base, base + segments + 1):
            assert await client.alloc(s, b"bench")
        sem = asyncio.Semaphore(8)

        async def capture(s: int) -> None:
            async with sem:
                await client.capture_range(s, 0, SEGMENT)

        await asyncio.gather(*(capture(s) for s in range(base, base + segments)))
        probe_seg = base + segments
        caps = await client.capture_range(probe_seg, 0, SEGMENT)
        lat: list[float] = []
        stop = time.perf_counter() + seconds

        async def probe() -> None:
            for c in caps:
                if time.perf_counter() > stop:
                    return
                t0 = time.perf_counter()
                await client.write(c.address, b"p", c)
                lat.append(time.perf_counter() - t0)

        async def garbage() -> None:
            s = base
            while time.perf_counter() < stop:
                # a higher ballot: 1,024 records superseding as many, one segment at a time
                await client.capture_range(s, 0, SEGMENT)
                s = base + (s - base + 1) % segments

        await asyncio.gather(probe(), garbage())
        stats = [await client._conn(sid).call("status") for sid in client.config.servers]
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(len(lat) * f))] * 1e3  # noqa: E731
    return {"writes": len(lat), "p50_ms": statistics.median(lat) * 1e3, "p99_ms": q(0.99),
            "p999_ms": q(0.999), "max_ms": lat[-1] * 1e3,
            "compactions": [st.get("compactions") for st in stats]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--segments", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops its clusters too
    with tempfile.TemporaryDirectory(prefix="wscompact-") as d:
        config = local_cluster.create(d, 3, "paxos", segment_size=SEGMENT)
        local_cluster.up(config)
        try:
            assert config.path is not None
            r = run_loop(_run(config.path, args.segments, args.seconds))
        finally:
            local_cluster.down(config)
    print(f"{args.segments} segments ({args.segments * SEGMENT:,} live WORs per server): "
          f"{r['writes']} probe writes, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f}, "
          f"p99.9 {r['p999_ms']:.2f}, max {r['max_ms']:.1f} ms; compactions per server "
          f"{r['compactions']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

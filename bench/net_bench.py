"""Networked WormSpace: latency and throughput of client calls against a local 3-server cluster.

For each store mode (in memory: NOT durable; fsync: durable, group commit) and client
concurrency (1, 16, 64 outstanding calls from one asyncio client, or split over ``--procs``
client processes), measures for about ``--cell`` seconds each:

* ``read``          a linearizable read of a written address (1 round trip)
* ``write``         a write to a pre-captured WOR (1 round trip; captured before the cell)
* ``capture+write`` a write without capture id (2 round trips)

and prints a Markdown table of ops/s, p50 and p99 latency. Everything runs on this machine: the
servers and the client share its cores, so the numbers are for comparing changes, not for
comparing with the paper's separate machines. Bounded: each cell stops after ``--cell`` seconds
or when its pool of pre-captured WORs runs out (then fewer ops are reported).

    python bench/net_bench.py [--cell 3] [--modes memory,fsync] [--conc 1,16,64] [--procs N]
                              [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from wormspace.impl.net import eventloop, gctune, local_cluster
from wormspace.impl.net.client import Capture, WormSpaceClient

SEGMENT = 1024
VALUE = b"v" * 8  # the paper's 8-byte values


def stop_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a timeout) stop a benchmark the way Ctrl-C does, so that the
    clusters it started in background processes are stopped with it, not left running."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


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
    # The client's garbage-collector setting for long runs (impl/net/gctune.py; the servers
    # apply it themselves); WORMSPACE_GC=default turns it off, for A/B runs.
    gctune.tune()
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


class Cells:
    """The operations of the cells, for one client: reads of one written segment, writes to
    pre-captured WORs and capture+writes to fresh ones (segments from ``seg_base`` on).

    Each cell's pool of fresh segments is trimmed before the next cell's is made, as an
    application trims what it no longer needs: the servers' state stays the size of one pool
    (a long run that never trimmed would make every compaction, whose cost grows with the live
    state, stall a later cell)."""

    def __init__(self, client: WormSpaceClient, seg_base: int = 0) -> None:
        self.client, self.next_seg = client, seg_base
        self.rseg: int | None = None
        self.ri = 0
        self.pool_segments: list[int] = []

    async def fresh_segments(self, k: int) -> list[int]:
        segs = list(range(self.next_seg, self.next_seg + k))
        self.next_seg += k
        await asyncio.gather(*(self.client.alloc(s, b"bench") for s in segs))
        return segs

    async def trim_pool(self) -> None:
        """Trim the segments of the last pool (not the read segment)."""
        segs, self.pool_segments = self.pool_segments, []
        await asyncio.gather(*(self.client.trim(s) for s in segs))

    async def read_segment(self) -> int:
        """A segment full of values to read (one range capture and one range write)."""
        (self.rseg,) = await self.fresh_segments(1)
        await self.client.write_range(self.rseg, 0, [VALUE] * SEGMENT)
        return self.rseg

    async def op(self, name: str, conc: int) -> Callable[[], Awaitable[bool]]:
        """The operation of cell ``name`` (its pool prepared now, outside the measurement)."""
        client = self.client
        if name == "read":
            rseg = self.rseg
            assert rseg is not None

            async def read() -> bool:
                self.ri = (self.ri + 1) % SEGMENT
                return await client.read(rseg * SEGMENT + self.ri) == VALUE

            return read
        pool = Pool()
        await self.trim_pool()
        # Enough fresh WORs for a fast cell; pre-captured for "write".
        self.pool_segments = await self.fresh_segments(48 if conc > 1 else 8)
        for s in self.pool_segments:
            if name == "write":
                caps = await client.capture_range(s, 0, SEGMENT)
                pool.items += [(c.address, c) for c in caps]
            else:
                pool.items += [(s * SEGMENT + o, None) for o in range(SEGMENT)]
        pool.items.reverse()

        async def write() -> bool:
            item = pool.take()
            if item is None:
                return False
            outcome = await client.write(item[0], VALUE, item[1])
            assert outcome.value == "ok", outcome
            return True

        return write


def _summary(mode: str, name: str, conc: int, procs: int, lat: list[float], took: float
             ) -> dict:
    lat.sort()
    return {
        "mode": mode, "op": name, "concurrency": conc, "procs": procs, "ops": len(lat),
        "seconds": round(took, 2), "ops_per_s": round(len(lat) / took),
        "p50_ms": round(statistics.median(lat) * 1e3, 3),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 3),
    }


OPS = ("read", "write", "capture+write")


async def bench_mode(path: str, mode: str, concs: list[int], cell: float,
                     procs: int = 1, thrifty: bool = False) -> list[dict]:
    """Every cell at every concurrency; ``procs`` > 1 splits each cell's concurrency over that
    many client processes (each its own asyncio loop and connections), started together.
    ``thrifty``: the client's thrifty phases (one process only; rows say ``"thrifty": True``)."""
    if procs > 1:
        return await _bench_procs(path, mode, concs, cell, procs)
    rows = []
    options = {"thrifty": True} if thrifty else {}
    async with WormSpaceClient.from_file(path, timeout=2.0, **options) as client:
        cells = Cells(client)
        await cells.read_segment()
        for conc in concs:
            for name in OPS:
                lat, took = await run_cell(await cells.op(name, conc), conc, cell)
                rows.append(_summary(mode, name, conc, 1, lat, took))
                if thrifty:
                    rows[-1]["thrifty"] = True
                print(_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _child(path: str, seg_base: int, rseg: int, cell: float, conn: Any) -> None:
    """A client process of :class:`ClientProcs`: prepare a cell on ("prep", name, conc, cell),
    run it from the wall-clock time it is sent next, answer (latencies, seconds)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with WormSpaceClient.from_file(path, timeout=2.0) as client:
            cells = Cells(client, seg_base)
            cells.rseg = rseg
            while True:
                msg = await loop.run_in_executor(None, conn.recv)
                if msg[0] == "stop":
                    return
                _, name, conc, seconds = msg
                op = await cells.op(name, conc)
                conn.send("ready")
                start = await loop.run_in_executor(None, conn.recv)
                await asyncio.sleep(max(0.0, start - time.time()))
                conn.send(await run_cell(op, conc, seconds))

    eventloop.run(main())


class ClientProcs:
    """``procs`` client processes (each its own asyncio loop and connections) that run a cell
    together, its concurrency split between them; they stay up between cells. ``rseg``: the
    written segment their reads read (:meth:`Cells.read_segment`). Use as an ``async with``."""

    def __init__(self, path: str, procs: int, rseg: int, seg_base: int = 100_000) -> None:
        self.path, self.procs, self.rseg, self.seg_base = path, procs, rseg, seg_base
        self.pipes: list[Any] = []
        self.children: list[Any] = []

    async def __aenter__(self) -> ClientProcs:
        ctx = multiprocessing.get_context("spawn")
        for k in range(self.procs):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_child, args=(self.path, self.seg_base * (k + 1), self.rseg,
                                                 0.0, theirs), daemon=True)
            p.start()
            self.pipes.append(mine)
            self.children.append(p)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for k, p in enumerate(self.children):
            self.pipes[k].send(("stop",))
            p.join(10)
            if p.is_alive():
                p.kill()

    async def run(self, name: str, conc: int, cell: float) -> tuple[list[float], float, int]:
        """Cell ``name`` at total concurrency ``conc`` for ``cell`` seconds, started together
        in every process: (latencies, seconds, processes used)."""
        loop = asyncio.get_running_loop()
        n = min(self.procs, conc)
        shares = [conc // n + (1 if k < conc % n else 0) for k in range(n)]
        pipes = self.pipes[:n]
        for k in range(n):
            pipes[k].send(("prep", name, shares[k], cell))
        for k in range(n):
            assert await loop.run_in_executor(None, pipes[k].recv) == "ready"
        start = time.time() + 0.2
        for k in range(n):
            pipes[k].send(start)
        lat: list[float] = []
        took = 0.0
        for k in range(n):
            part, t = await loop.run_in_executor(None, pipes[k].recv)
            lat += part
            took = max(took, t)
        return lat, took, n


async def _bench_procs(path: str, mode: str, concs: list[int], cell: float, procs: int
                       ) -> list[dict]:
    async with WormSpaceClient.from_file(path, timeout=2.0) as client:
        rseg = await Cells(client, 0).read_segment()
    rows = []
    async with ClientProcs(path, procs, rseg) as clients:
        for conc in concs:
            for name in OPS:
                lat, took, n = await clients.run(name, conc, cell)
                rows.append(_summary(mode, name, conc, n, lat, took))
                print(_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _row(r: dict) -> str:
    return (f"| {r['mode']} | {r['op']} | {r['concurrency']} | {r.get('procs', 1)} | "
            f"{r['ops_per_s']:,} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['ops']:,} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cell", type=float, default=3.0, help="seconds per cell (default 3)")
    ap.add_argument("--modes", default="memory,fsync")
    ap.add_argument("--conc", default="1,16,64")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--procs", type=int, default=1,
                    help="client processes sharing each cell's concurrency (default 1)")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    args = ap.parse_args()
    stop_on_sigterm()
    concs = [int(c) for c in args.conc.split(",")]
    rows: list[dict] = []
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix="wsbench-") as d:
            config = local_cluster.create(d, args.nodes, "paxos", segment_size=SEGMENT,
                                          memory=(mode == "memory"))
            local_cluster.up(config)
            try:
                assert config.path is not None
                rows += eventloop.run(bench_mode(config.path, mode, concs, args.cell,
                                                 args.procs))
            finally:
                local_cluster.down(config)
    print(f"\n{args.nodes}-server Paxos-WOR on one machine, 8-byte values, {args.procs} asyncio "
          f"client process(es); {args.cell:g} s per cell\n")
    print("| store | op | concurrency | client processes | ops/s | p50 ms | p99 ms | ops |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

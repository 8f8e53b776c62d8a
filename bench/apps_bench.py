"""The applications on a local cluster: WormPaxos propose, WormLog append, WormTX commit.

Cells (each about ``--cell`` seconds, bounded in count too):

* WormPaxos: ``propose`` (a KV put through a sticky leader) at concurrency 1 (latency) and 32
  (throughput), 3-server Paxos-WOR, in memory and with fsync.
* WormLog: ``append`` at concurrency 1 through a sequencer *process* (2 round trips: sequencer,
  then write), with 1, 2 and 3 replicas, Paxos-WOR and Chain-WOR, in memory; and with fsync for
  3 replicas.
* WormTX: commit latency of a 3-RM transaction, A8 vs E3, 3-server Paxos-WOR; in memory (RM WALs
  in memory too) and with fsync (servers and RM WALs).

Everything shares this machine's cores (servers, sequencer, client), so the numbers compare
variants with each other, not with the paper's separate machines. Prints Markdown tables.

    python bench/apps_bench.py [--cell 3] [--only paxos,log,tx] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from typing import Any

from wormspace.impl.apps.wormlog import WormLog
from wormspace.impl.apps.wormpaxos import KVStore
from wormspace.impl.apps.wormtx import COMMIT, Ops, ResourceManager, WormTX
from wormspace.impl.net import eventloop, gctune, local_cluster
from wormspace.impl.net.client import WormSpaceClient

SEGMENT = 1024
VALUE = b"v" * 8
MAX_OPS = 200_000  # per cell, in case a cell is much faster than expected


@contextmanager
def cluster(nodes: int, protocol: str, memory: bool, segment_size: int = SEGMENT):
    """A fresh local cluster in a temp dir (yields its cluster file's path), always stopped."""
    with tempfile.TemporaryDirectory(prefix="wsappbench-") as d:
        config = local_cluster.create(d, nodes, protocol, segment_size=segment_size,
                                      memory=memory)
        local_cluster.up(config)
        try:
            assert config.path is not None
            yield config.path
        finally:
            local_cluster.down(config)


async def run_cell(op: Callable[[], Awaitable[Any]], conc: int, seconds: float
                   ) -> dict[str, Any]:
    """``conc`` workers call ``op`` until the deadline (or MAX_OPS); latencies and rate."""
    # The client's garbage-collector setting for long runs (impl/net/gctune.py; the servers
    # apply it themselves); WORMSPACE_GC=default turns it off, for A/B runs.
    gctune.tune()
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline and len(lat) < MAX_OPS:
            t0 = time.perf_counter()
            await op()
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    took = time.perf_counter() - t0
    lat.sort()
    return {"ops": len(lat), "ops_per_s": round(len(lat) / took),
            "p50_ms": round(statistics.median(lat) * 1e3, 3),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 3)}


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


# -- WormPaxos ------------------------------------------------------------------------------------


async def bench_paxos(path: str, store: str, cell: float) -> list[dict[str, Any]]:
    rows = []
    async with WormSpaceClient.from_file(path, timeout=2.0) as c:
        kv = KVStore(c, "bench")
        await kv.put("warm", VALUE)  # election + segment capture, outside the measurement
        n = 0

        async def put() -> None:
            nonlocal n
            n += 1
            await kv.put(f"k{n % 1000}", VALUE)

        for conc in (1, 32):
            r = await run_cell(put, conc, cell)
            rows.append({"app": "WormPaxos", "op": "propose", "store": store,
                         "concurrency": conc, **r,
                         "elections": kv.paxos.stats.elections})
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


# -- WormLog --------------------------------------------------------------------------------------


def start_sequencer(path: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "wormspace", "log", "sequencer", "--cluster",
                             path, "--listen", "127.0.0.1:0", "--id", "bench-seq"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"sequencer did not start: {line!r}")
    return proc, line.split("listening on ")[1].split(";")[0]


async def bench_log(path: str, label: str, store: str, cell: float) -> dict[str, Any]:
    proc, addr = start_sequencer(path)
    try:
        async with WormSpaceClient.from_file(path, timeout=2.0) as c:
            wl = WormLog(c, sequencer=addr, fallback=False)
            await wl.append(b"warm")
            r = await run_cell(lambda: wl.append(VALUE), 1, cell)
            await wl.close()
    finally:
        proc.terminate()
        proc.wait(10)
    row = {"app": "WormLog", "op": "append", "cluster": label, "store": store, **r}
    print(row, file=sys.stderr, flush=True)
    return row


# -- WormTX ---------------------------------------------------------------------------------------


async def bench_tx(path: str, store: str, cell: float) -> list[dict[str, Any]]:
    rows = []
    durable = store == "fsync"
    with tempfile.TemporaryDirectory(prefix="wsappbench-wal-") as wal:
        clients = [WormSpaceClient.from_file(path, timeout=2.0) for _ in range(4)]
        rms = {n: ResourceManager(n, cl, f"{wal}/{n}", durable=durable)
               for n, cl in zip("abc", clients)}
        tx = WormTX(clients[3], rms)
        try:
            for variant in ("a8", "e3"):
                k = 0

                async def one(variant: str = variant) -> None:
                    nonlocal k
                    k += 1
                    r = await tx.run({n: Ops({"key": b"%d" % k}) for n in "abc"},
                                     variant=variant)
                    assert r.decision == COMMIT, r

                await one()  # warm-up (connections, first free segment)
                r = await run_cell(one, 1, cell)
                rows.append({"app": "WormTX", "op": f"commit {variant.upper()}",
                             "store": store, **r})
                print(rows[-1], file=sys.stderr, flush=True)
        finally:
            for rm in rms.values():
                rm.close()
            for cl in clients:
                await cl.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cell", type=float, default=3.0, help="seconds per cell (default 3)")
    ap.add_argument("--only", default="paxos,log,tx")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops its clusters too
    parts = set(args.only.split(","))
    paxos_rows: list[dict[str, Any]] = []
    log_rows: list[dict[str, Any]] = []
    tx_rows: list[dict[str, Any]] = []
    for store in ("memory", "fsync"):
        mem = store == "memory"
        if "paxos" in parts:
            with cluster(3, "paxos", mem) as path:
                paxos_rows += eventloop.run(bench_paxos(path, store, args.cell))
        if "tx" in parts:
            with cluster(3, "paxos", mem) as path:
                tx_rows += eventloop.run(bench_tx(path, store, args.cell))
        if "log" in parts:
            for protocol in ("paxos", "chain"):
                for n in ((1, 2, 3) if mem else (3,)):
                    with cluster(n, protocol, mem) as path:
                        label = f"{protocol.capitalize()}-WOR, {n} replica{'s' * (n > 1)}"
                        log_rows.append(eventloop.run(bench_log(path, label, store, args.cell)))
    print(f"\nOne machine ({args.cell:g} s per cell), 8-byte values; servers, sequencer and "
          "client share its cores.\n")
    if paxos_rows:
        print("WormPaxos propose (KV put through a sticky leader, 3-server Paxos-WOR)\n")
        print("| store | concurrency | ops/s | p50 ms | p99 ms | ops |\n|---|---|---|---|---|---|")
        for r in paxos_rows:
            print(_row([r["store"], r["concurrency"], f"{r['ops_per_s']:,}", r["p50_ms"],
                        r["p99_ms"], f"{r['ops']:,}"]))
    if log_rows:
        print("\nWormLog append (sequencer process + write; concurrency 1)\n")
        print("| cluster | store | p50 ms | p99 ms | ops/s | ops |\n|---|---|---|---|---|---|")
        for r in log_rows:
            print(_row([r["cluster"], r["store"], r["p50_ms"], r["p99_ms"],
                        f"{r['ops_per_s']:,}", f"{r['ops']:,}"]))
    if tx_rows:
        print("\nWormTX commit latency (3 RMs in one process, 3-server Paxos-WOR; fsync = "
              "servers and RM WALs)\n")
        print("| variant | store | p50 ms | p99 ms | tx/s | txs |\n|---|---|---|---|---|---|")
        for r in tx_rows:
            print(_row([r["op"], r["store"], r["p50_ms"], r["p99_ms"], f"{r['ops_per_s']:,}",
                        f"{r['ops']:,}"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(paxos_rows + log_rows + tx_rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

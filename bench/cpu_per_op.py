"""CPU time per operation of a whole local cluster: servers and client together.

Throughput on a shared 2-core machine swings by tens of percent between runs; the CPU the
cluster spends per operation (user + system time of the 3 server processes, all their threads,
plus this client process, divided by the operations done) is steadier, and it is what the
request-path optimizations change. Used for the A/B rows of bench/RESULTS.md ("The request
path: A/B per change"): run it once per tree, alternating, with each tree's interpreter:

    python bench/cpu_per_op.py [--store fsync|memory] [--op write|capture+write|read]
                               [--conc 64] [--seconds 4] [--rounds 1] [--thrifty]

Prints one line per round: ``op conc ops/s cpu_us_per_op`` (and per-process detail). Each
round starts a fresh 3-server Paxos-WOR cluster (``local_cluster``) in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import net_bench
from wormspace.impl.net import local_cluster
from wormspace.impl.net.client import WormSpaceClient
from wormspace.impl.net.eventloop import run as run_loop


def _cpu(pid: int) -> float:
    """User + system seconds of process ``pid`` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _cell(config: local_cluster.ClusterConfig, op: str, conc: int, seconds: float,
                options: dict) -> tuple[int, float, list[float], float]:
    assert config.path is not None
    async with WormSpaceClient.from_file(config.path, timeout=2.0, **options) as client:
        cells = net_bench.Cells(client)
        await cells.read_segment()
        run = await cells.op(op, conc)
        pids = [local_cluster.server_pid(config, s) for s in config.servers]
        assert all(pids), "a server is not running"
        before = [_cpu(p) for p in pids]  # type: ignore[arg-type]
        me = _self_cpu()
        lat, took = await net_bench.run_cell(run, conc, seconds)
        servers = [_cpu(p) - b for p, b in zip(pids, before)]  # type: ignore[arg-type]
        return len(lat), took, servers, _self_cpu() - me


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store", choices=["fsync", "memory"], default="fsync")
    ap.add_argument("--op", choices=list(net_bench.OPS), default="write")
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--thrifty", action="store_true",
                    help="each phase to a majority first (client option thrifty=True)")
    args = ap.parse_args()
    net_bench.stop_on_sigterm()
    # Only passed when asked, so that trees whose client has no such option still run.
    options = {"thrifty": True} if args.thrifty else {}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="wscpu-") as d:
            config = local_cluster.create(d, 3, "paxos", segment_size=net_bench.SEGMENT,
                                          memory=args.store == "memory")
            local_cluster.up(config)
            try:
                n, took, servers, client = run_loop(_cell(config, args.op, args.conc,
                                                          args.seconds, options))
            finally:
                local_cluster.down(config)
        total = sum(servers) + client
        print(f"{args.op} {args.conc} {n / took:.0f} {total / n * 1e6:.0f}   "
              f"(servers {', '.join(f'{s / n * 1e6:.0f}' for s in servers)} us/op, "
              f"client {client / n * 1e6:.0f} us/op)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

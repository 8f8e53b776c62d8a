"""The WormPaxos leader's path in process, without sockets: CPU per proposed command.

A :class:`KVStore` whose client's three connections are wired to in-process acceptors (as in
``bench/client_path_bench.py``: memory, no fsync, answered one event-loop turn later). ``--conc``
workers ``put`` keys through the sticky leader, so proposals queue and go out as batch entries as
in ``bench/peers_bench.py``'s WormPaxos cell; the CPU time of the whole process per command is
printed, and the fake servers' share (measured separately) is subtracted. What is left is the
leader's Python per command: the KV store, proposing, batching, applying, and its client's share.

    python bench/paxos_path_bench.py [--conc 1024] [--ops 200000] [--best-of 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "impl"))

from client_path_bench import VALUE, wire_in_process
from inproc_server import make_config
from wormspace.impl.apps.wormpaxos import KVStore
from wormspace.impl.net.client import WormSpaceClient
from wormspace.impl.net.eventloop import run as run_loop

SEGMENT = 1024


async def _run(conc: int, n_ops: int) -> tuple[float, float, int]:
    config = make_config(tempfile.mkdtemp(prefix="wspax-"), 3, segment_size=SEGMENT)
    async with WormSpaceClient(config, timeout=2.0) as client:
        servers = wire_in_process(client, config.key())
        kv = KVStore(client, "bench")
        await kv.put("warm", VALUE)  # election and segment capture, outside the measurement
        done = 0

        async def worker() -> None:
            nonlocal done
            while done < n_ops:
                done += 1
                await kv.put(f"k{done % 1000}", VALUE)

        before = sum(s.cpu for s in servers)
        t0 = time.process_time()
        await asyncio.gather(*(worker() for _ in range(conc)))
        total = time.process_time() - t0
        server_cpu = sum(s.cpu for s in servers) - before
        assert kv.paxos.stats.applied >= n_ops
    return total / n_ops * 1e6, (total - server_cpu) / n_ops * 1e6, kv.paxos.stats.batches


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--conc", type=int, default=1024)
    ap.add_argument("--ops", type=int, default=200_000)
    ap.add_argument("--best-of", type=int, default=3)
    args = ap.parse_args()
    runs = [run_loop(_run(args.conc, args.ops)) for _ in range(args.best_of)]
    total, leader, batches = min(runs, key=lambda r: r[1])
    print(f"propose x{args.conc}: {leader:.2f} us of leader CPU per command ({total:.2f} with "
          f"the in-process acceptors; {args.ops / max(batches, 1):.0f} commands per batch entry; "
          f"best of {args.best_of})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

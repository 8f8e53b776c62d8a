"""What a short-lived ``wormspace kv`` command costs as the log's terms pile up.

Each ``wormspace kv`` command is its own process: a fresh replica that learns the whole log
(``sync``) before it answers, and a put then elects itself leader of a new segment (a term
holding one command and the END the next leader writes). This runs such commands in one
process against a local 3-server Paxos-WOR cluster (a fresh client and ``KVStore`` per command,
as the CLI does, without the interpreter start-up) and prints, after each number of terms, the
median latency of a get and of a put. Prints a Markdown table.

    python bench/kv_terms_bench.py [--terms 10,100,300] [--fsync]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import apps_bench
from wormspace.impl.apps.wormpaxos import KVStore
from wormspace.impl.net import eventloop
from wormspace.impl.net.client import WormSpaceClient


async def command(path: str, op: str, key: str) -> float:
    """One CLI-like command: a fresh client and replica; its latency in seconds."""
    async with WormSpaceClient.from_file(path, timeout=2.0) as c:
        kv = KVStore(c, "cli")
        t0 = time.perf_counter()
        if op == "put":
            await kv.put(key, b"v")
        else:
            await kv.get(key)
        return time.perf_counter() - t0


async def measure(path: str, terms: list[int]) -> list[tuple[int, float, float]]:
    rows = []
    done = 0
    for target in terms:
        print(f"putting up to {target} terms ...", file=sys.stderr, flush=True)
        while done < target:
            await command(path, "put", f"k{done}")
            done += 1
        gets = [await command(path, "get", "k1") for _ in range(3)]
        puts = [await command(path, "put", f"extra{done + i}") for i in range(3)]
        done += 3
        rows.append((target, statistics.median(gets), statistics.median(puts)))
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--terms", default="10,100,300")
    ap.add_argument("--fsync", action="store_true", help="durable servers (default: in memory)")
    args = ap.parse_args()
    terms = sorted(int(x) for x in args.terms.split(","))
    with apps_bench.cluster(3, "paxos", memory=not args.fsync, segment_size=64) as path:
        rows = eventloop.run(measure(path, terms))
    print(f"\n3-server Paxos-WOR, {'fsync' if args.fsync else 'memory'}, 64-WOR segments; "
          "median of 3\n")
    print("| terms in the log | get | put |")
    print("|---:|---:|---:|")
    for n, g, p in rows:
        print(f"| {n:,} | {g * 1e3:.1f} ms | {p * 1e3:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

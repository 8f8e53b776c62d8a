"""One PySyncObj node (a replicated counter) for bench/peers_bench.py.

    python bench/peers/pysyncobj_node.py SELF_ADDR PARTNER_ADDR... [--journal FILE] [--no-batch]

Listens on loopback only. The parent talks to it over stdin/stdout, one JSON object a line:

* ``{"cmd": "status"}`` -> ``{"leader": bool, "ready": bool}``
* ``{"cmd": "bench", "inflight": N, "seconds": S, "max_ops": M}`` -> ops/s and latencies of
  ``incr()`` calls issued from this node, keeping N in flight (run it on the leader, so no
  call is forwarded), for S seconds or M completed calls, whichever comes first.
* ``{"cmd": "quit"}`` (or EOF on stdin) -> exits.

The node ticks itself from one thread (``autoTick=False``): the load loop, the Raft timers,
the sockets and the callbacks all run in this thread, so there is no GIL hand-off between a
client thread and the SyncObj thread.

Durability: PySyncObj's ``journalFile`` is an mmap'd file that it never msync()s or fsync()s
while running (``FileJournal.flush`` is only called at shutdown), so ``--journal`` measures the
journal's cost, not fsync'd durability; PySyncObj has no setting that fsyncs before it acks.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import sys
import time

from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.syncobj import FAIL_REASON


class Counter(SyncObj):
    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self.__n = 0

    @replicated
    def incr(self) -> int:
        self.__n += 1
        return self.__n


def bench(o: Counter, inflight: int, seconds: float, max_ops: int) -> dict:
    lat: list[float] = []
    errors = 0
    pending = 0
    submitted = 0

    def make_cb(t0: float):
        def cb(res, err) -> None:
            nonlocal pending, errors
            pending -= 1
            if err == FAIL_REASON.SUCCESS:
                lat.append(time.perf_counter() - t0)
            else:
                errors += 1
        return cb

    start = time.perf_counter()
    deadline = start + seconds
    while True:
        now = time.perf_counter()
        if now >= deadline or len(lat) >= max_ops:
            break
        while pending < inflight and submitted < max_ops:
            o.incr(callback=make_cb(time.perf_counter()))
            pending += 1
            submitted += 1
        o.doTick(0.0005)
    took = time.perf_counter() - start
    n = len(lat)
    drain_until = time.perf_counter() + 3.0  # let late callbacks land (not counted)
    while pending > 0 and time.perf_counter() < drain_until:
        o.doTick(0.001)
    lat.sort()
    return {
        "inflight": inflight, "ops": n, "seconds": round(took, 2),
        "ops_per_s": round(n / took) if took > 0 else 0,
        "p50_ms": round(statistics.median(lat[:n]) * 1e3, 3) if n else None,
        "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1e3, 3) if n else None,
        "errors": errors, "undrained": pending,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("self_addr")
    ap.add_argument("partners", nargs="+")
    ap.add_argument("--journal")
    ap.add_argument("--no-batch", action="store_true")
    ap.add_argument("--period", type=float, default=0.1,
                    help="appendEntriesPeriod: with batching, how often the leader sends")
    args = ap.parse_args()
    for a in [args.self_addr, *args.partners]:
        assert a.startswith("127.0.0.1:"), a  # loopback only
    conf = SyncObjConf(autoTick=False, journalFile=args.journal,
                       appendEntriesUseBatch=not args.no_batch,
                       appendEntriesPeriod=args.period,
                       commandsQueueSize=200_000, raftMinTimeout=0.4, raftMaxTimeout=1.4,
                       dynamicMembershipChange=False)
    o = Counter(args.self_addr, args.partners, conf)
    stdin = sys.stdin.fileno()
    buf = b""
    try:
        while True:
            o.doTick(0.01)
            r, _, _ = select.select([stdin], [], [], 0)
            if not r:
                continue
            chunk = os.read(stdin, 65536)
            if not chunk:
                return 0
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg["cmd"] == "quit":
                    return 0
                if msg["cmd"] == "status":
                    st = o.getStatus()
                    out = {"leader": bool(o._isLeader()), "has_leader": st.get("leader") is not None,
                           "state": st.get("state")}
                elif msg["cmd"] == "bench":
                    out = bench(o, int(msg["inflight"]), float(msg["seconds"]),
                                int(msg["max_ops"]))
                else:
                    out = {"error": f"unknown command {msg['cmd']!r}"}
                sys.stdout.write(json.dumps(out) + "\n")
                sys.stdout.flush()
    finally:
        o.destroy()


if __name__ == "__main__":
    raise SystemExit(main())

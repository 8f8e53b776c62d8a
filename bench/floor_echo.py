"""The floor under WormSpace's fsync'd quorum rounds on this machine: bare echo servers.

Three server processes (uvloop, as WormSpace's servers) that do nothing with a request but
append it to a file of their own, fsync it (group commit: one fsync for what arrived in one
event-loop turn) and send it back; one client process that sends each request to all three and
counts it done when two have answered (a Paxos-WOR majority), with 1 or more requests in
flight. No protocol, no framing, no authentication, no state: what remains is what any
3-process Python design pays per quorum round on this machine: the loopback wake-ups, the fsyncs
of three processes to one disk, and the processes sharing two cores. A WormSpace write is one
such round, a capture+write two in sequence.

``goals_bench`` runs it (part ``floor``) in the same pairs as etcd's put-if-absent at one client,
to show whether the one-client goals are within reach of any design of this shape, and at 16 and
64 requests in flight beside the goals' cells. On its own:

    python bench/floor_echo.py [--seconds 3] [--servers 3] [--need 2] [--conc 1] [--no-fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

REQUEST = b"x" * 64  # about one accept request's size


class _Echo(asyncio.Protocol):
    """Echo with group commit: what arrives in one event-loop turn, from every connection, is
    appended in one write and fsynced once (on the loop: while it runs, more requests queue in
    the sockets and form the next group); then every reply of the group goes out."""

    def __init__(self, server: _Server) -> None:
        self.server = server

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.server.add(self.transport, data)


class _Server:
    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.pending: list[tuple[Any, bytes]] = []

    def add(self, transport: Any, data: bytes) -> None:
        if self.fd is None:
            transport.write(data)
            return
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.commit)
        self.pending.append((transport, data))

    def commit(self) -> None:
        pending, self.pending = self.pending, []
        assert self.fd is not None
        os.write(self.fd, b"".join(d for _, d in pending))
        os.fsync(self.fd)
        for transport, data in pending:
            transport.write(data)


async def _serve(port_file: str, data: str | None) -> None:
    fd = os.open(data, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if data else None
    loop = asyncio.get_running_loop()
    state = _Server(fd)
    server = await loop.create_server(lambda: _Echo(state), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(port_file + ".tmp", port_file)
    # stdin is a pipe from the benchmark: its end (the benchmark gone, however) stops us
    gone = loop.create_future()
    loop.add_reader(0, lambda: gone.done() or os.read(0, 1) or gone.set_result(None))
    async with server:
        await gone


def _run_loop(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main)
    return uvloop.run(main)


@contextmanager
def echo_cluster(n: int = 3, fsync: bool = True, directory: str | None = None
                 ) -> Iterator[list[int]]:
    """``n`` echo server processes (each with its own file in ``directory``, fsync'd per
    request if ``fsync``); yields their ports; stops them."""
    with tempfile.TemporaryDirectory(prefix="floor-echo-", dir=directory) as d:
        procs, ports = [], []
        try:
            for i in range(n):
                pf = os.path.join(d, f"port{i}")
                args = [sys.executable, os.path.abspath(__file__), "--serve", pf]
                if fsync:
                    args += ["--data", os.path.join(d, f"log{i}")]
                procs.append(subprocess.Popen(args, stdin=subprocess.PIPE))
                deadline = time.monotonic() + 20
                while not os.path.exists(pf):
                    if procs[-1].poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"echo server {i} did not start")
                    time.sleep(0.02)
                with open(pf) as f:
                    ports.append(int(f.read()))
            yield ports
        finally:
            for p in procs:
                p.kill()
                p.wait()


class _Client(asyncio.Protocol):
    def __init__(self, on_reply: Any) -> None:
        self.on_reply = on_reply

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.on_reply(len(data))


async def quorum_rounds(ports: list[int], need: int, seconds: float, conc: int = 1
                        ) -> dict[str, Any]:
    """``conc`` requests in flight, each sent to every server and done when ``need`` of them
    answered it (the others' replies come in later, as for a quorum client); for ``seconds``.
    Latencies and rate as ``peers_bench.stats`` reports them."""
    loop = asyncio.get_running_loop()
    size = len(REQUEST)
    got = [0] * len(ports)  # bytes each server has sent back: replies come in order
    started: list[float] = []  # start time of request k (k = 0, 1, ...)
    lat: list[float] = []
    state = {"done": 0, "stop": False}
    finished = loop.create_future()
    conns: list[Any] = []

    def send() -> None:
        started.append(time.perf_counter())
        for tr in conns:
            tr.write(REQUEST)

    def on_reply(i: int, k: int) -> None:
        got[i] += k
        now = time.perf_counter()
        while state["done"] < len(started):
            want = (state["done"] + 1) * size
            if sum(g >= want for g in got) < need:
                break
            lat.append(now - started[state["done"]])
            state["done"] += 1
            if now < deadline:
                send()
            elif state["done"] == len(started) and not finished.done():
                finished.set_result(None)

    for i, port in enumerate(ports):
        tr, _ = await loop.create_connection(
            lambda i=i: _Client(lambda k: on_reply(i, k)), "127.0.0.1", port)
        conns.append(tr)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    try:
        for _ in range(conc):
            send()
        await finished
    finally:
        for tr in conns:
            tr.close()
    took = time.perf_counter() - t0
    lat.sort()
    n = len(lat)
    return {"ops": n, "seconds": round(took, 2), "ops_per_s": round(n / took) if took else 0,
            "p50_ms": round(statistics.median(lat) * 1e3, 3) if n else None,
            "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1e3, 3) if n else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--need", type=int, default=2)
    ap.add_argument("--conc", type=int, default=1, help="requests in flight (default 1)")
    ap.add_argument("--no-fsync", action="store_true")
    args = ap.parse_args()
    if args.serve:
        _run_loop(_serve(args.serve, args.data))
        return 0
    if not 1 <= args.need <= args.servers:
        ap.error("--need must be between 1 and --servers")
    with echo_cluster(args.servers, not args.no_fsync) as ports:
        r = _run_loop(quorum_rounds(ports, args.need, args.seconds, args.conc))
    print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

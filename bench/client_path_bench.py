"""The client library's request path in process, without sockets: CPU per operation.

A :class:`WormSpaceClient` whose three connections are wired to in-process acceptors: what a
connection writes is decoded, handled by an :class:`Acceptor` (memory, no fsync) and answered,
as bytes fed back to the connection, one event-loop turn later (as a socket would). ``--conc``
workers run ``write`` (pre-captured WORs), ``capture+write`` or ``read``; the CPU time of the
whole process per operation is printed, and the share of it that is the fake servers' (measured
separately) is subtracted. What is left is the client library's Python: the op, the driver, the
connection, framing and the codec (a real client adds the kernel's socket work).

    python bench/client_path_bench.py [--op write|capture+write|read] [--conc 64] [--ops 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "impl"))

from inproc_server import make_config
from wormspace.impl.core.acceptor import Acceptor
from wormspace.impl.core.codec import to_plain
from wormspace.impl.core.messages import REQUEST_TYPES
from wormspace.impl.net.client import WormSpaceClient
from wormspace.impl.net.connection import Connection
from wormspace.impl.net.eventloop import run as run_loop
from wormspace.impl.net.framing import FrameDecoder, encode_payloads, envelopes, pack_body
from wormspace.impl.net.wire import parse_request

SEGMENT = 1024
VALUE = b"v" * 8


class _Server:
    """An acceptor behind a fake transport: decodes frames, answers next turn."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.acceptor = Acceptor()
        self.decoder = FrameDecoder(key)
        self.cpu = 0.0

    def serve(self, data: bytes) -> bytes:
        t0 = time.process_time()
        out: list[bytes] = []
        for frame in self.decoder.feed(data):
            for env in envelopes(frame):
                rid, msg, _call, _ = parse_request(env, REQUEST_TYPES)
                if msg is None:
                    out.append(pack_body({"i": rid, "r": True}))
                    continue
                reply, _persist = self.acceptor.handle(msg)
                out.append(pack_body({"i": rid, "m": to_plain(reply)}))
        data = encode_payloads(self.key, out) if out else b""
        self.cpu += time.process_time() - t0
        return data


class _Transport:
    def __init__(self, conn: Connection, proto: Any, server: _Server) -> None:
        self.conn, self.proto, self.server = conn, proto, server

    def write(self, data: bytes) -> None:
        reply = self.server.serve(data)
        if reply:
            asyncio.get_running_loop().call_soon(self.conn._data, self.proto, reply)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class _Proto:
    transport: _Transport


def wire_in_process(client: WormSpaceClient, key: bytes) -> list[_Server]:
    """Connect each of ``client``'s server connections to an in-process acceptor (no
    sockets); the acceptors, whose ``cpu`` counts the time spent serving."""
    servers: list[_Server] = []
    for sid in client.config.servers:
        conn = client._conn(sid)
        server = _Server(key)
        servers.append(server)
        proto = _Proto()
        proto.transport = _Transport(conn, proto, server)
        conn._proto, conn._decoder = proto, FrameDecoder(key)  # type: ignore[assignment]
    return servers


async def _run(op: str, conc: int, n_ops: int) -> tuple[float, float]:
    config = make_config(tempfile.mkdtemp(prefix="wscli-"), 3, segment_size=SEGMENT)
    async with WormSpaceClient(config, timeout=2.0) as client:
        servers = wire_in_process(client, config.key())
        segs = n_ops // SEGMENT + 2
        for s in range(segs):
            assert await client.alloc(s, b"m")
        items: list[Any] = []
        if op == "write":
            for s in range(segs):
                items += [(c.address, c) for c in await client.capture_range(s, 0, SEGMENT)]
        elif op == "read":
            await client.write_range(0, 0, [VALUE] * SEGMENT)
        else:
            items = [(s * SEGMENT + o, None) for s in range(segs) for o in range(SEGMENT)]
        items = items[:n_ops]
        items.reverse()
        done = 0

        async def worker() -> None:
            nonlocal done
            while done < n_ops:
                done += 1
                if op == "read":
                    assert await client.read(done % SEGMENT) == VALUE
                else:
                    a, cap = items.pop()
                    await client.write(a, VALUE, cap)

        before = sum(s.cpu for s in servers)
        t0 = time.process_time()
        await asyncio.gather(*(worker() for _ in range(conc)))
        total = time.process_time() - t0
        server_cpu = sum(s.cpu for s in servers) - before
    return total / n_ops * 1e6, (total - server_cpu) / n_ops * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--op", choices=["write", "capture+write", "read"], default="write")
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--best-of", type=int, default=3)
    args = ap.parse_args()
    runs = [run_loop(_run(args.op, args.conc, args.ops)) for _ in range(args.best_of)]
    total, client = min(runs, key=lambda r: r[1])
    print(f"{args.op} x{args.conc}: {client:.1f} us of client CPU per op "
          f"({total:.1f} with the in-process acceptors; best of {args.best_of})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

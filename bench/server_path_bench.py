"""The server's request path in process, without sockets: CPU per request.

A :class:`WormServer` over a MemoryStore gets batch frames of 64 envelopes (accepts or
prepares to fresh WORs) through ``ServerConnection.data_received`` with a transport that only
counts bytes; the loop runs one turn between frames so replies are flushed. What is left is
framing, HMAC, decoding, the acceptor, encoding and group-commit bookkeeping: the Python part of
a request (the rest of a real server's CPU is the kernel's and the event loop's).

    python bench/server_path_bench.py [--requests accept|prepare] [--frames 300] [--best-of 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "impl"))

from inproc_server import make_config
from wormspace.impl.core.codec import to_plain
from wormspace.impl.core.messages import Accept, Kind, Prepare, WorId
from wormspace.impl.net.eventloop import run as run_loop
from wormspace.impl.net.framing import encode_frame
from wormspace.impl.net.server import ServerConnection, WormServer
from wormspace.impl.storage import MemoryStore

PER_FRAME = 64


class _CountingTransport:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 1)

    def set_write_buffer_limits(self, high: int) -> None:
        pass


async def _run(kind: str, frames_n: int) -> float:
    config = make_config(tempfile.mkdtemp(prefix="wssrv-"), 3, segment_size=1024)
    store, state, _ = MemoryStore.open()
    server = WormServer(config, "s0", store, state)
    conn = ServerConnection(server)
    transport = _CountingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    key = config.key()
    frames, rid = [], 0
    for _ in range(frames_n):
        envs = []
        for _ in range(PER_FRAME):
            rid += 1
            wor = WorId(rid // 1024, Kind.DATA, rid % 1024)
            msg = Accept(0, wor, (1, 1), b"v" * 8) if kind == "accept" else Prepare(0, wor, (1, 1))
            envs.append({"i": rid, "m": to_plain(msg)})
        frames.append(encode_frame(key, {"b": envs}))
    t0 = time.process_time()
    for f in frames:
        conn.data_received(f)
        await asyncio.sleep(0)
    took = time.process_time() - t0
    assert transport.bytes > 0 and server.stats["requests"] == rid
    return took / rid * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", choices=["accept", "prepare"], default="accept")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--best-of", type=int, default=3)
    args = ap.parse_args()
    best = min(run_loop(_run(args.requests, args.frames)) for _ in range(args.best_of))
    print(f"{args.requests}: {best:.2f} us of CPU per request (best of {args.best_of}, "
          f"{args.frames} frames of {PER_FRAME})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

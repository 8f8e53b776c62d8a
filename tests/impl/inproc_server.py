"""In-process WormSpace servers on 127.0.0.1 (OS-assigned ports) for the client and fuzz tests.

:class:`ServerThread` runs N :class:`WormServer` s on one event loop in a background thread, so a
test can talk to them with blocking sockets or with a client on its own loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any

from wormspace.impl.net import cluster as cluster_file
from wormspace.impl.net.cluster import ClusterConfig, ServerSpec
from wormspace.impl.net.local_cluster import free_ports
from wormspace.impl.net.server import WormServer
from wormspace.impl.storage import DurableStore, MemoryStore


def make_config(directory: str, n: int = 3, protocol: str = "paxos", *, sets: int = 1,
                segment_size: int = 64) -> ClusterConfig:
    """A cluster file and key in ``directory`` for ``n`` servers on free loopback ports."""
    key = os.path.join(directory, "cluster.key")
    if not os.path.exists(key):
        cluster_file.create_key(key)
    ids = [f"s{i}" for i in range(n)]
    servers = {s: ServerSpec(s, "127.0.0.1", p, os.path.join(directory, s))
               for s, p in zip(ids, free_ports(n))}
    rs = tuple(tuple(ids[i::sets]) for i in range(sets))
    path = os.path.join(directory, "cluster.toml")
    cluster_file.write(ClusterConfig(protocol, key, servers, rs, segment_size, 0, False, path),
                       path)
    return cluster_file.load(path)


class ServerThread:
    """The servers of ``config`` (durable in their data dirs, or in memory) on a thread."""

    def __init__(self, config: ClusterConfig, durable: bool = False) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: dict[str, WormServer] = {}
        for sid, spec in config.servers.items():
            if durable:
                assert spec.data is not None
                store: Any
                store, state, _ = DurableStore.open(spec.data)
            else:
                store, state, _ = MemoryStore.open()
            srv = WormServer(config, sid, store, state)
            self.call(lambda srv=srv, spec=spec: srv.start(spec.host, spec.port))
            self.servers[sid] = srv

    def call(self, make: Callable[[], Any]) -> Any:
        """Run the coroutine ``make()`` on the servers' loop and return its result."""

        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def sync(self, fn: Callable[[], Any]) -> Any:
        """Run plain ``fn()`` on the servers' loop (to read server state safely)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self, sid: str) -> None:
        """Close one server (like a clean shutdown)."""
        self.call(self.servers.pop(sid).close)

    def close(self) -> None:
        """Close every server and the loop."""
        for sid in list(self.servers):
            self.stop(sid)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

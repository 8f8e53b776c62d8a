"""A real local cluster for the application tests (started with ``local_cluster``, always
stopped by the fixture that owns it)."""

from __future__ import annotations

from pathlib import Path

from wormspace.impl.net import local_cluster as lc
from wormspace.impl.net.cluster import ClusterConfig


class AppCluster:
    """Servers as real processes on 127.0.0.1 (OS-picked ports), durable unless ``memory``."""

    def __init__(self, data: Path, nodes: int = 3, protocol: str = "paxos",
                 segment_size: int = 64, memory: bool = False) -> None:
        self.config: ClusterConfig = lc.create(str(data), nodes, protocol,
                                               segment_size=segment_size, memory=memory)
        assert self.config.path is not None
        self.path: str = self.config.path
        try:
            lc.up(self.config)
        except BaseException:
            lc.down(self.config, timeout=2)
            raise

    def down(self) -> None:
        lc.down(self.config, timeout=2)

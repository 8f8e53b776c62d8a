"""Durable acceptor state: a checksummed append-only log with group commit, torn-tail recovery
and atomic compaction; plus a non-durable in-memory store for benchmarks."""

from .log import Dropped, LogError, LogSwitchError, RecordLog, Recovery, fsync_dir
from .store import DurableStore, MemoryStore, StateStore, StorageError

__all__ = [
    "Dropped",
    "DurableStore",
    "LogError",
    "LogSwitchError",
    "MemoryStore",
    "RecordLog",
    "Recovery",
    "StateStore",
    "StorageError",
    "fsync_dir",
]

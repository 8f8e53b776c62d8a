"""Acceptor state stores: :class:`DurableStore` (a record log on disk) and :class:`MemoryStore`.

Both take the records an :class:`~wormspace.impl.core.Acceptor` returns and keep them; only the
durable one survives a crash. A driver uses them the same way::

    store, state, recovery = DurableStore.open(directory)
    acceptor = Acceptor(state)
    reply, persist = acceptor.handle(request)
    store.persist(persist.records)      # fsync'd when this returns
    send(reply)
    store.maybe_compact(acceptor.state) # now and then
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from ..core.records import (
    AcceptorState,
    InvalidRecord,
    Record,
    record_from_plain,
    record_to_plain,
)
from .log import LogError, PendingRewrite, RecordLog, Recovery, encode_record

LOG_NAME = "acceptor.log"


class StorageError(Exception):
    """Stored state cannot be loaded (a record that passed its checksum does not decode)."""


class StateStore(Protocol):
    """What a driver needs from a store of acceptor records."""

    #: False for stores that lose everything in a crash (benchmarks only).
    durable: bool

    def persist(self, records: Sequence[Record]) -> None:
        """Make ``records`` durable before returning (one fsync)."""

    def persist_group(self, batches: Sequence[Sequence[Record]]) -> None:
        """Make several requests' records durable with a single fsync (group commit)."""

    def encode_group(self, batches: Sequence[Sequence[Record]]) -> Any:
        """The first half of :meth:`persist_group`, for the event loop: everything but the I/O
        (for the durable store, the group's bytes), to hand to :meth:`write_group`."""

    def write_group(self, encoded: Any) -> None:
        """The second half, for a worker thread: write what :meth:`encode_group` returned and
        fsync (pure I/O, which releases the GIL)."""

    def maybe_compact(self, state: AcceptorState) -> bool:
        """Compact if the log has grown well beyond the live state; True if it did."""

    def wants_compaction(self) -> bool:
        """Whether :meth:`maybe_compact` would compact now (a cheap test, no I/O)."""

    def compact(self, state: AcceptorState) -> None:
        """Replace the stored history by a snapshot of ``state``."""

    def compact_prepare(self, state: AcceptorState) -> Any:
        """The first half of :meth:`compact`, for a thread of its own while groups go on: the
        snapshot of ``state``, made ready aside (for the durable store, written to a file)."""

    def compact_finish(self, prepared: Any, since: Sequence[Any]) -> None:
        """The second half, with no group in flight: add the groups encoded since the
        snapshot's state was taken (``encode_group``'s results, in order), then use it."""

    def compact_abort(self, prepared: Any) -> None:
        """Drop a prepared snapshot that will not be used."""

    def close(self) -> None:
        """Release the store."""


class DurableStore:
    """Acceptor records in a :class:`RecordLog` at ``directory/acceptor.log``."""

    durable = True

    def __init__(self, log: RecordLog, live: int, compact_after: int, kept: int = 0) -> None:
        self.log = log
        self.live = live  # records a snapshot of the state would hold (its live size)
        self.compact_after = compact_after
        self.kept = kept  # acceptor records in the log (a group log record holds several)

    @classmethod
    def open(
        cls, directory: str, *, compact_after: int = 100_000
    ) -> tuple[DurableStore, AcceptorState, Recovery]:
        """Open or create the store in ``directory``: the store, the recovered acceptor state,
        and the recovery report (check ``recovery.dropped``)."""
        os.makedirs(directory, exist_ok=True)
        log, payloads, recovery = RecordLog.open(os.path.join(directory, LOG_NAME))
        state = AcceptorState()
        kept = 0
        for i, payload in enumerate(payloads):
            try:
                for plain in _records_of(payload):
                    state.apply(record_from_plain(plain))
                    kept += 1
            except InvalidRecord as exc:
                log.close()
                raise StorageError(f"{log.path}: record #{i}: {exc}") from None
        return cls(log, _live(state), compact_after, kept), state, recovery

    def persist(self, records: Sequence[Record]) -> None:
        """Append and fsync; nothing to do (no fsync) for an empty list."""
        self.write_group(self.encode_group((records,)))

    def persist_group(self, batches: Sequence[Sequence[Record]]) -> None:
        """One write and one fsync for all batches."""
        self.write_group(self.encode_group(batches))

    def encode_group(self, batches: Sequence[Sequence[Record]]) -> tuple[bytes, int]:
        """The group's log bytes and its record count: one log record for the whole group
        (one msgpack call, one checksum), or a plain record if it holds just one."""
        plain = [record_to_plain(r) for batch in batches for r in batch]
        if not plain:
            return b"", 0
        return encode_record(plain[0] if len(plain) == 1 else [GROUP, plain]), len(plain)

    def write_group(self, encoded: tuple[bytes, int]) -> None:
        """Write and fsync what :meth:`encode_group` returned (nothing for an empty group)."""
        blob, count = encoded
        if count:
            self.log.write_encoded(blob, 1)
            self.log.sync()
            self.kept += count

    def maybe_compact(self, state: AcceptorState) -> bool:
        """Compact once the log holds ``compact_after`` records more than twice the live ones."""
        if not self.wants_compaction():
            return False
        self.compact(state)
        return True

    def wants_compaction(self) -> bool:
        """Whether the log holds ``compact_after`` records more than, and twice, the live ones."""
        return _worth_compacting(self.kept, self.live, self.compact_after)

    def compact(self, state: AcceptorState) -> None:
        """Atomically replace the log by a snapshot (drops trimmed segments' history)."""
        self.compact_finish(self.compact_prepare(state), [])

    def compact_prepare(self, state: AcceptorState) -> tuple[PendingRewrite, int]:
        """The first half of :meth:`compact`, which may run in a thread of its own while
        groups are appended: the snapshot of ``state`` written aside (not yet the log), and
        how many records it holds. Built straight from the state's maps, unsorted, in group
        records of :data:`SNAPSHOT_GROUP`."""
        plain = state.snapshot_plain()
        pending = self.log.prepare_rewrite([GROUP, plain[i:i + SNAPSHOT_GROUP]]
                                           for i in range(0, len(plain), SNAPSHOT_GROUP))
        return pending, len(plain)

    def compact_finish(self, prepared: tuple[PendingRewrite, int],
                       since: Sequence[tuple[bytes, int]]) -> None:
        """The second half, with no append in flight: add the groups appended since the
        snapshot's state was taken (what :meth:`encode_group` returned for them, in order) and
        switch to the new log. A failure before the switch keeps the old log (which has those
        groups too); :class:`LogSwitchError` after it."""
        pending, live = prepared
        count = sum(c for _, c in since)
        self.log.finish_rewrite(pending, b"".join(b for b, _ in since),
                                sum(1 for _, c in since if c))
        self.live, self.kept = live, live + count

    def compact_abort(self, prepared: tuple[PendingRewrite, int]) -> None:
        """Drop a prepared snapshot that will not be used."""
        self.log.abort_rewrite(prepared[0])

    def close(self) -> None:
        """Close the log file."""
        self.log.close()


#: Tag of a group log record: ``[GROUP, [record, ...]]``, the records of one group commit.
GROUP = "g"
#: Records per group log record in a compacted log (one msgpack call and checksum each).
SNAPSHOT_GROUP = 4096


def _records_of(payload: object) -> list[object]:
    """The plain records in one log payload: a group's, or the payload itself."""
    if type(payload) is list and len(payload) == 2 and payload[0] == GROUP:
        group = payload[1]
        if type(group) is not list or not group:
            raise InvalidRecord(f"a group record holds a non-empty list, got {group!r:.60}")
        return group
    return [payload]


def _worth_compacting(kept: int, live: int, compact_after: int) -> bool:
    """Both stores' rule: ``compact_after`` records more than, and twice, the live ones
    (compaction costs the live state, so it waits for as much garbage)."""
    return kept - live >= compact_after and kept >= 2 * live


def _live(state: AcceptorState) -> int:
    """How many records :meth:`AcceptorState.snapshot` would write."""
    return (1 if state.epoch else 0) + len(state.trimmed) + len(state.wors)


class MemoryStore:
    """NOT DURABLE: keeps records in memory only; everything is lost with the process.

    For benchmarks that want to measure the protocol without the disk, and for the simulator,
    which models crashes itself. Never use it where an acknowledgement must survive a crash.
    """

    durable = False

    def __init__(self, compact_after: int = 100_000) -> None:
        self.records: list[Record] = []
        self.compact_after = compact_after
        self.live = 0

    @classmethod
    def open(cls, directory: str | None = None) -> tuple[MemoryStore, AcceptorState, Recovery]:
        """A fresh, empty store (``directory`` is ignored: there is no disk)."""
        return cls(), AcceptorState(), Recovery(0)

    def persist(self, records: Sequence[Record]) -> None:
        """Keep ``records`` (in memory)."""
        self.records.extend(records)

    def persist_group(self, batches: Sequence[Sequence[Record]]) -> None:
        """Keep every batch's records (in memory)."""
        for batch in batches:
            self.records.extend(batch)

    def encode_group(self, batches: Sequence[Sequence[Record]]) -> Sequence[Sequence[Record]]:
        """Nothing to encode: the batches themselves."""
        return batches

    def write_group(self, encoded: Sequence[Sequence[Record]]) -> None:
        """Keep the batches' records (in memory)."""
        self.persist_group(encoded)

    def maybe_compact(self, state: AcceptorState) -> bool:
        """Same policy as :class:`DurableStore`, so memory stays bounded in long benchmarks."""
        if not self.wants_compaction():
            return False
        self.compact(state)
        return True

    def wants_compaction(self) -> bool:
        """The durable store's rule, over the kept records."""
        return _worth_compacting(len(self.records), self.live, self.compact_after)

    def compact(self, state: AcceptorState) -> None:
        """Replace the kept records by a snapshot of ``state``."""
        self.compact_finish(self.compact_prepare(state), [])

    def compact_prepare(self, state: AcceptorState) -> list[Record]:
        """The snapshot's records."""
        return state.snapshot(ordered=False)

    def compact_finish(self, prepared: list[Record],
                       since: Sequence[Sequence[Sequence[Record]]]) -> None:
        """Keep the snapshot and the groups' records after it."""
        self.records = list(prepared)
        self.live = len(self.records)
        for batches in since:
            for batch in batches:
                self.records.extend(batch)

    def compact_abort(self, prepared: list[Record]) -> None:
        """Nothing to drop."""

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["DurableStore", "LogError", "MemoryStore", "StateStore", "StorageError"]

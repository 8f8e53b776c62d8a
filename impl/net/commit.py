"""Group commit: a reply leaves only after every record handled before it is on disk.

The server hands each handled request to :meth:`GroupCommit.after_durable` with the records the
acceptor produced and an action (send the reply, forward down the chain). Records that arrive
while an fsync is running are gathered into the next batch, which is written with a single
``persist_group`` (one ``write`` + one ``fsync``) in a worker thread, so the event loop keeps
reading requests meanwhile; a group of one request (light load) is persisted on the loop
itself, which saves the two thread hand-offs where nothing else is waiting. At most one fsync
is in flight: under load, batches grow by themselves, which is the point of group commit.

Why a request *without* records may also wait: its reply can reveal state that an earlier
request changed and that is not durable yet (a read seeing an accepted value, a retransmitted
prepare seeing its promise). If that reply went out and the server then crashed, a client
could count a promise or an accept that the restarted server no longer has. So actions run in
handling order, each after the fsync that covers everything handled before it; a request
arriving when nothing is pending is answered at once.

With a non-durable store (``MemoryStore``) records are kept at once and actions run at once;
it is compacted on the loop by the same rule as the durable log, so its memory stays bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..core.records import AcceptorState, Record
from ..storage.log import LogSwitchError
from ..storage.store import StateStore

log = logging.getLogger("wormspace.server")

Action = Callable[[], None]


class GroupCommit:
    """Orders actions after the durability of the records handled before them."""

    def __init__(
        self,
        store: StateStore,
        state: Callable[[], AcceptorState],
        on_failure: Callable[[BaseException], None],
        *,
        inline_max: int = 1,
    ) -> None:
        self.store = store
        #: A group of at most this many requests is persisted on the event loop itself.
        self.inline_max = inline_max
        self.state = state  # the live acceptor state, for compaction
        self.on_failure = on_failure
        self.durable = store.durable
        self._records: list[Sequence[Record]] = []
        self._actions: list[Action] = []
        self._in_flight = False
        self._compacting = False
        self._scheduled = False
        self._failed = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="fsync") if self.durable else None
        self.fsyncs = 0
        self.records_persisted = 0
        self.largest_group = 0
        self.compactions = 0

    def after_durable(self, records: Sequence[Record], action: Action) -> None:
        """Run ``action`` once ``records`` and everything handled earlier are durable."""
        if self._failed:
            return  # memory is ahead of disk: nothing may be acknowledged any more
        if not self.durable:
            if records:
                self.store.persist(records)
                self.records_persisted += len(records)
                if self.store.wants_compaction():  # memory stays bounded (no disk, no thread)
                    self.store.compact(self.state())
                    self.compactions += 1
            action()
            return
        if records:
            self._records.append(records)
        elif not self._actions and (not self._in_flight or self._compacting):
            # Nothing pending: no earlier state to wait for (a compaction in flight holds only
            # records that were durable already).
            action()
            return
        self._actions.append(action)
        if not self._in_flight and not self._scheduled:
            # Let the rest of this event-loop turn (other connections' data) join the batch.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._in_flight or self._failed:
            return
        batches, actions = self._records, self._actions
        self._records, self._actions = [], []
        if not batches:
            _run(actions)
            return
        self._in_flight = True
        n = sum(len(b) for b in batches)
        if len(batches) <= self.inline_max:
            # A lone request (light load): fsync right here. Handing it to the worker thread
            # and back costs two thread switches and loop wake-ups, about as much as the fsync;
            # nothing else is waiting to be read meanwhile (or it would have joined the group).
            exc: BaseException | None = None
            try:
                self.store.persist_group(batches)
            except BaseException as e:  # the same failure handling as the thread's
                exc = e
            self._done(exc, actions, len(batches), n)
            return
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self.store.persist_group, batches)
        fut.add_done_callback(lambda f: self._done(f.exception(), actions, len(batches), n))

    def _done(self, exc: BaseException | None, actions: list[Action], group: int, n: int
              ) -> None:
        self._in_flight = False
        if exc is not None:
            self._failed = True
            log.critical("persisting %d records failed: %s: no reply will be sent; the server "
                         "must restart from its log", n, exc)
            self.on_failure(exc)
            return
        self.fsyncs += 1
        self.records_persisted += n
        self.largest_group = max(self.largest_group, group)
        _run(actions)
        if self.store.wants_compaction():
            self._compact()
        elif self._actions:
            self._start()

    def _compact(self) -> None:
        """Compact the log in the fsync thread, from a copy of the state taken now.

        The copy is a consistent cut (taken on the loop, between requests; WOR states are
        immutable, so copying the maps suffices). Building the snapshot and rewriting the log
        then run in the worker thread, never during an fsync (one job at a time), while the
        loop keeps reading and handling requests; their records wait for the next group,
        which is appended to the new log. The cut may hold records not yet persisted: writing
        them early only makes them durable sooner, and they are appended again after it."""
        state = self.state().copy()
        self._in_flight = self._compacting = True
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self.store.compact, state)
        fut.add_done_callback(lambda f: self._compacted(f.exception()))

    def _compacted(self, exc: BaseException | None) -> None:
        self._in_flight = self._compacting = False
        self.compactions += exc is None
        if isinstance(exc, LogSwitchError):
            # The new log is in use but its rename may not survive a crash: what we append
            # now could vanish with it. As after a failed fsync: acknowledge nothing more.
            self._failed = True
            log.critical("compaction: %s; no reply will be sent; the server must restart "
                         "from its log", exc)
            self.on_failure(exc)
            return
        if exc is not None:  # a failed compaction leaves the old log in place, still in use
            log.error("compaction failed (the log is unchanged): %s", exc)
        if self._actions:
            self._start()

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until nothing is pending (for a clean shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._in_flight or self._actions) and not self._failed and loop.time() < deadline:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """Stop the worker thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _run(actions: list[Action]) -> None:
    for a in actions:
        try:
            a()
        except Exception:  # one broken connection must not stop the others' replies
            log.exception("sending a reply failed")

"""Group commit: a reply leaves only after every record handled before it is on disk.

The server hands each handled request to :meth:`GroupCommit.after_durable` with the records the
acceptor produced and an action (send the reply, forward down the chain). Records that arrive
while an fsync is running are gathered into the next batch. The batch is encoded on the event
loop (``encode_group``: one log record for the group) and its bytes are written and fsynced
(``write_group``: one ``write`` + one ``fsync``) by a worker thread, so the event loop keeps
reading requests meanwhile; a group of one request (light load) is persisted on the loop
itself, which saves the two thread hand-offs where nothing else is waiting. At most one fsync
is in flight: under load, batches grow by themselves, which is the point of group commit.

The worker runs nothing but I/O, which releases the GIL: encoding there (as before) made the
thread and the loop take turns at the GIL for every batch, and cost more than the encoding.
It is a bare thread fed through a queue (:class:`_Worker`), not a ``ThreadPoolExecutor``,
whose futures, locks and chained callbacks were a large share of the server's time per batch.

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
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..core.records import AcceptorState, Record
from ..storage.log import LogSwitchError
from ..storage.store import StateStore

log = logging.getLogger("wormspace.server")

Action = Callable[[], None]
#: Seconds before a compaction is tried again after one failed: the first wait, the longest.
COMPACT_BACKOFF = (1.0, 60.0)


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
        self._compacting = False  # a compaction is running (written aside, or switching)
        self._switching = False  # the compaction's last step is the job in flight
        self._scheduled = False
        self._failed = False
        self._worker = _Worker("fsync") if self.durable else None
        # Compaction (durable store): the snapshot is written aside in a thread of its own
        # while groups go on; then, between two groups, the groups written since the cut are
        # added to it and it replaces the log (see _compact).
        self._compactor = _Worker("compact") if self.durable else None
        self._since_cut: list[Any] | None = None  # groups encoded since the cut
        self._prepared: Any = None  # the snapshot written aside, waiting for its switch
        # After a failed compaction (a full disk, say) the next waits: the rule that wanted
        # it still holds, and retrying at every group would rebuild the snapshot each time.
        self._compact_backoff = COMPACT_BACKOFF[0]
        self._no_compaction_until = 0.0
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
        elif not self._actions and (not self._in_flight or self._switching):
            # Nothing pending: no earlier state to wait for (a compaction's switch in flight
            # holds only records that were durable already).
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
        exc: BaseException | None = None
        try:
            encoded = self.store.encode_group(batches)
        except BaseException as e:  # nothing written: still, nothing may be acknowledged
            self._done(e, actions, len(batches), n)
            return
        if self._since_cut is not None:
            self._since_cut.append(encoded)  # a compaction is running: its log needs it too
        if len(batches) <= self.inline_max:
            # A lone request (light load): fsync right here. Handing it to the worker thread
            # and back costs two thread switches and loop wake-ups, about as much as the fsync;
            # nothing else is waiting to be read meanwhile (or it would have joined the group).
            try:
                self.store.write_group(encoded)
            except BaseException as e:  # the same failure handling as the thread's
                exc = e
            self._done(exc, actions, len(batches), n)
            return
        assert self._worker is not None
        self._worker.submit(self.store.write_group, encoded,
                            lambda _, e: self._done(e, actions, len(batches), n))

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
        if self._prepared is not None:
            self._switch()  # the snapshot is ready and no group is in flight: now
        elif (not self._compacting and self.store.wants_compaction()
              and time.monotonic() >= self._no_compaction_until):
            self._compact()
            if self._actions:
                self._start()
        elif self._actions:
            self._start()

    def _compact(self) -> None:
        """Compact the log from a copy of the state taken now, without holding back appends.

        The copy is a consistent cut (taken on the loop, between requests, with no group in
        flight; WOR states are immutable, so copying the maps suffices). The compaction thread
        builds the snapshot and writes it aside (``compact_prepare``) while groups go on being
        appended to the log; every group encoded from now on is also kept. When the snapshot
        is written, at the end of the group then in flight (if any), the fsync thread appends
        the kept groups to it and renames it over the log (``compact_finish``): only that
        short step holds the next group back. The cut may hold records not yet persisted:
        they are in the kept groups too, and replaying them after the snapshot changes
        nothing (each record carries its WOR's full state, in handling order).

        Before, the whole compaction ran in the fsync thread and every request that brought
        records waited for it: seconds for a few hundred thousand live WORs."""
        state = self.state().copy()
        self._compacting = True
        self._since_cut = []
        assert self._compactor is not None
        self._compactor.submit(self.store.compact_prepare, state, self._prepared_snapshot)

    def _prepared_snapshot(self, prepared: Any, exc: BaseException | None) -> None:
        if exc is not None:  # nothing changed: the log in use is the old one, with everything
            self._compacting = False
            self._since_cut = None
            self._compaction_failed(exc)
            return
        if self._failed:
            self.store.compact_abort(prepared)
            return
        self._prepared = prepared
        if not self._in_flight:
            self._switch()

    def _switch(self) -> None:
        """Finish the compaction: the kept groups onto the snapshot, then the snapshot in
        place of the log (in the fsync thread; nothing else is in flight)."""
        prepared, since = self._prepared, self._since_cut or []
        self._prepared, self._since_cut = None, None
        self._in_flight = self._switching = True
        assert self._worker is not None
        self._worker.submit(lambda p: self.store.compact_finish(p, since), prepared,
                            lambda _, e: self._compacted(e))

    def _compaction_failed(self, exc: BaseException) -> None:
        """The old log is still in use, with everything: try again later, not at once."""
        log.error("compaction failed (the log is unchanged): %s; next try in %g s", exc,
                  self._compact_backoff)
        self._no_compaction_until = time.monotonic() + self._compact_backoff
        self._compact_backoff = min(self._compact_backoff * 2, COMPACT_BACKOFF[1])

    def _compacted(self, exc: BaseException | None) -> None:
        self._in_flight = self._compacting = self._switching = False
        self.compactions += exc is None
        if exc is None:
            self._compact_backoff = COMPACT_BACKOFF[0]
        if isinstance(exc, LogSwitchError):
            # The new log is in use but its rename may not survive a crash: what we append
            # now could vanish with it. As after a failed fsync: acknowledge nothing more.
            self._failed = True
            log.critical("compaction: %s; no reply will be sent; the server must restart "
                         "from its log", exc)
            self.on_failure(exc)
            return
        if exc is not None:  # a failed compaction leaves the old log in place, still in use
            self._compaction_failed(exc)
        if self._actions:
            self._start()

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until nothing is pending (for a clean shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._in_flight or self._actions) and not self._failed and loop.time() < deadline:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """Stop the worker threads (after the jobs already submitted). A snapshot written
        aside and not switched in is left as ``<log>.tmp``; the log's next open removes it."""
        for worker in (self._compactor, self._worker):
            if worker is not None:
                worker.close()


class _Worker:
    """One thread that runs jobs in order and reports each outcome back on the event loop:
    ``submit(fn, arg, done)`` runs ``fn(arg)`` in the thread, then ``done(result, exc)`` (``exc``
    None on success) on the loop that submitted it. The thread starts on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[Any], object], object,
                                            Callable[[Any, BaseException | None], None],
                                            asyncio.AbstractEventLoop] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[Any], object], arg: object,
               done: Callable[[Any, BaseException | None], None]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._jobs.put((fn, arg, done, asyncio.get_running_loop()))

    def _run(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            fn, arg, done, loop = job
            result: object = None
            exc: BaseException | None = None
            try:
                result = fn(arg)
            except BaseException as e:  # reported to the loop, which decides
                exc = e
            try:
                loop.call_soon_threadsafe(done, result, exc)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


def _run(actions: list[Action]) -> None:
    for a in actions:
        try:
            a()
        except Exception:  # one broken connection must not stop the others' replies
            log.exception("sending a reply failed")

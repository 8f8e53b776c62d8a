"""A simulated Paxos-WOR server: the sans-IO :class:`Acceptor` with durable state and crashes.

The durable state is an :class:`AcceptorState` built from the records made durable so far; the
acceptor object is the in-memory state, rebuilt from a copy of the durable state on restart,
exactly as the real server recovers from its log. A correct acceptor's records are durable
(``persist`` events) before its reply is sent. Under the planted bug ``ack_before_persist``
(``Persist.deferred``) the reply leaves at once and the records become durable one fsync latency
later; a crash in between loses them (the ``kill`` fault event says how many), while the reply
already told a client otherwise.

A paused acceptor queues what it receives and handles it on resume; a killed one refuses
connections: the client's request fails after one link latency, as a real connection to a dead
server does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ..core.acceptor import Acceptor
from ..core.bugs import Bugs
from ..core.messages import Reply, Request
from ..core.records import AcceptorState, Record
from ..trace import Recorder
from .network import BASE_LATENCY, Loop, Network

#: Time for a deferred (planted bug) batch of records to reach the disk (µs).
FSYNC_LATENCY = (100, 1_500)

#: What an acceptor calls back with: the reply, or None when the connection failed.
ReplyTo = Callable[[Reply | None], None]


class AcceptorNode:
    """Acceptor ``index`` of the simulated cluster, named ``s<index>`` in traces."""

    def __init__(self, index: int, *, loop: Loop, net: Network, rec: Recorder, faults: Recorder,
                 counts: Counter[str], bugs: Bugs, plain: Callable[[Any], dict[str, Any]],
                 rng_int: Callable[[int, int], int]) -> None:
        self.index, self.name = index, f"s{index}"
        self.loop, self.net, self.rec, self.faults, self.counts = loop, net, rec, faults, counts
        self.bugs, self.plain, self.rng_int = bugs, plain, rng_int
        self.durable = AcceptorState()
        self.acceptor = Acceptor(AcceptorState(), bugs=bugs)
        self.up = True
        self.paused = False
        self.incarnation = 0
        self._queue: list[tuple[str, Request, ReplyTo]] = []
        self._pending: list[Record] = []  # deferred records (planted bug) not yet durable
        self._flush_at = 0

    # -- requests ----------------------------------------------------------------------------

    def deliver(self, src: str, req: Request, reply_to: ReplyTo) -> None:
        """A request from client node ``src`` arrives."""
        if not self.up:
            self.loop.after(BASE_LATENCY, reply_to, None)  # connection refused
            return
        if self.paused:
            self._queue.append((src, req, reply_to))
            return
        self._handle(src, req, reply_to)

    def _handle(self, src: str, req: Request, reply_to: ReplyTo) -> None:
        self.rec.recv(src, self.plain(req))
        reply, persist = self.acceptor.handle(req)
        if persist.records:
            if persist.deferred:
                self._defer(persist.records)
            else:
                for r in persist.records:
                    self.durable.apply(r)
                    self.rec.persist(r)
        self.rec.send(src, self.plain(reply))
        self.net.transmit(self.name, src, type(reply).__name__, reply_to, reply)

    def _defer(self, records: tuple[Record, ...]) -> None:
        self._pending.extend(records)
        # Batches reach the disk in order (one log), each after an fsync latency.
        self._flush_at = max(self._flush_at, self.loop.now + self.rng_int(*FSYNC_LATENCY))
        self.loop.at(self._flush_at, self._flush, self.incarnation, len(records))

    def _flush(self, incarnation: int, count: int) -> None:
        if incarnation != self.incarnation:
            return  # the process crashed since: these records never reached the disk
        batch, self._pending = self._pending[:count], self._pending[count:]
        for r in batch:
            self.durable.apply(r)
            self.rec.persist(r)

    # -- faults ------------------------------------------------------------------------------

    def kill(self) -> bool:
        """Crash (kill -9): volatile state and records not yet durable are lost."""
        if not self.up:
            return False
        lost = len(self._pending)
        self.up, self.paused = False, False
        self.incarnation += 1
        self._pending, self._queue = [], []
        self.counts["kill"] += 1
        self.faults.fault("kill", self.name, lost_records=lost)
        return True

    def restart(self) -> None:
        """Recover from the durable state."""
        if self.up:
            return
        self.acceptor = Acceptor(self.durable.copy(), bugs=self.bugs)
        self.up = True
        self.counts["restart"] += 1
        self.faults.fault("restart", self.name)

    def pause(self) -> bool:
        """Stop handling requests (SIGSTOP); they queue up."""
        if not self.up or self.paused:
            return False
        self.paused = True
        self.counts["pause"] += 1
        self.faults.fault("pause", self.name)
        return True

    def resume(self) -> None:
        """Handle the queued requests, in arrival order (SIGCONT)."""
        if not self.paused:
            return
        self.paused = False
        self.faults.fault("resume", self.name)
        queue, self._queue = self._queue, []
        for src, req, reply_to in queue:
            self._handle(src, req, reply_to)

"""The simulator's clock and network: a virtual-time event queue and lossy, reordering links.

:class:`Loop` is a heap of ``(time, seq, callback, args)``; ``seq`` breaks ties in insertion
order, so a run depends only on the callbacks and the random draws, never on hashing or wall
time. Time is in virtual microseconds; trace events carry it in nanoseconds.

:class:`Network` carries one message from a node to another. What it does to a message is
decided when the message is sent, from the run's one random generator: dropped if either end is
partitioned away, lost with probability ``loss``, sent twice with probability ``dup``, held back
for a long time with probability ``delay``; with ``reorder`` each copy gets its own latency, so
later messages overtake earlier ones (without it links are FIFO). Each loss, duplicate and long
delay is recorded as a ``fault`` event, and so is each message that arrives after one sent later
on the same link (``reorder``), so a trace says what the network did.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..trace import Recorder

#: Latency of a link without reordering, and the range with it (µs).
BASE_LATENCY = 100
JITTER = (50, 600)
#: Extra latency of a delayed message (µs).
LONG_DELAY = (2_000, 10_000)
_JITTER_SPAN = JITTER[1] - JITTER[0]


class Loop:
    """A deterministic virtual-time event loop (time in µs)."""

    def __init__(self) -> None:
        self.now = 0
        self._queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.stopped = False

    def at(self, time: int, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` at virtual time ``time``."""
        heapq.heappush(self._queue, (time, self._seq, fn, args))
        self._seq += 1

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` ``delay`` µs from now."""
        self.at(self.now + int(delay), fn, *args)

    def clock_ns(self) -> int:
        """The current virtual time in nanoseconds (the trace recorders' clock)."""
        return self.now * 1000

    def run(self, until: int) -> bool:
        """Run callbacks in time order until :meth:`stop`, an empty queue or time ``until``;
        True if it stopped before ``until``."""
        q = self._queue
        pop = heapq.heappop
        while q and not self.stopped:
            t, _seq, fn, args = q[0]
            if t > until:
                return False
            pop(q)
            self.now = t
            fn(*args)
        return True

    def stop(self) -> None:
        """End :meth:`run` after the current callback."""
        self.stopped = True


class Network:
    """Links between clients and acceptors with the schedule's network faults."""

    def __init__(self, loop: Loop, rng: random.Random, faults: Recorder, counts: Counter[str], *,
                 loss: float, dup: float, delay: float, reorder: bool) -> None:
        self.loop, self.rng, self.rec, self.counts = loop, rng, faults, counts
        self.loss, self.dup, self.delay, self.reorder = loss, dup, delay, reorder
        #: Acceptors cut off from every client.
        self.cut: set[str] = set()
        self._sent: dict[tuple[str, str], int] = {}
        self._arrived: dict[tuple[str, str], int] = {}
        self.messages = 0

    def transmit(self, src: str, dst: str, kind: str, deliver: Callable[..., None],
                 *args: Any) -> None:
        """Send a message (``kind`` names it in fault events); ``deliver(*args)`` runs at the
        receiver for each copy that arrives."""
        self.messages += 1
        if src in self.cut or dst in self.cut:
            self.counts["partition_drop"] += 1
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            self._fault("loss", src, dst, kind)
            return
        copies = 1
        if self.dup and rng.random() < self.dup:
            copies = 2
            self._fault("dup", src, dst, kind)
        link = (src, dst)
        seq = self._sent.get(link, 0)
        self._sent[link] = seq + 1
        for _ in range(copies):
            latency = JITTER[0] + int(rng.random() * _JITTER_SPAN) if self.reorder else BASE_LATENCY
            if self.delay and rng.random() < self.delay:
                extra = rng.randint(*LONG_DELAY)
                latency += extra
                self._fault("delay", src, dst, kind, by_us=extra)
            self.loop.after(latency, self._arrive, link, seq, kind, deliver, args)

    def _arrive(self, link: tuple[str, str], seq: int, kind: str, deliver: Callable[..., None],
                args: tuple[Any, ...]) -> None:
        last = self._arrived.get(link, -1)
        if seq < last:
            self._fault("reorder", link[0], link[1], kind, overtaken_by=last - seq)
        else:
            self._arrived[link] = seq
        deliver(*args)

    def _fault(self, fault: str, src: str, dst: str, kind: str, **detail: Any) -> None:
        self.counts[fault] += 1
        self.rec.fault(fault, f"{src}->{dst}", msg=kind, **detail)

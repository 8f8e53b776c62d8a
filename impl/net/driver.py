"""Driving a sans-IO client op over real connections: send, feed replies, retry on timeout.

:func:`run_op` is the only place where the client library meets the core ops (``start``,
``on_reply``, ``retry``, ``done``, ``result``). It uses callbacks rather than a task or a future
per request, since every client call goes through here; once the op is decided, its
unanswered requests are forgotten, so their late replies are dropped before being decoded.

A failed request (server down, connection dropped, a chain successor unreachable) counts as a
lost message: the op still needs its quorum from the others, and ``retry()`` resends to the
servers that have not answered after ``timeout``, then after 2, 4 and at most 8 times
``timeout`` (so resends do not snowball on an overloaded server). After ``retries`` resends the
op fails
with :class:`Unavailable`, naming each silent server and why. A reply that shows a
misconfiguration (wrong key, wrong protocol, a segment the server does not serve) fails the op
at once: retrying cannot help.

One addition to the core ops: when every request sent has been answered or has failed, the op
is not done, and some server refused with a higher ballot, the op ends PREEMPTED (with that
ballot) instead of waiting for servers that are down. With 3 servers, one down, one OK and one
PREEMPTED, a core op would otherwise wait for the dead one until Unavailable; the caller now
retries above the rival ballot (ending an attempt early is always safe).

**Thrifty phases** (``prefer`` set; Paxos-WOR only): when an op starts a phase, which sends one
message to every acceptor, the driver sends it to a majority only and holds the rest back, as a
message loss the op already tolerates. The majority is the first available acceptors in a
rotation that starts at ``prefer`` (the client passes the segment, so a segment's reads meet the
servers its writes went to and the load spreads over segments); an acceptor whose connection is
down, or which recently let a hedge fire, is skipped. Held messages are released (sent) at once
when a request fails, when every request sent has its answer and the op is still undecided (a
refusal: the op needs the rest), or when the op has waited ``hedge`` seconds (the acceptors that
kept it waiting are then avoided for :data:`SLOW_FOR` seconds). The hedge is a fixed delay or a
:class:`Hedge`, which follows the recent op latency: the default answer of three servers is
"the fastest two", so a thrifty op must not wait long for a slow one (an fsync stall, say).
It saves a third of the servers' work per operation; with one acceptor down it costs nothing
(the rotation skips it after the first failed request). Safety does not depend on it: not
sending is a lost message. Redundancy does: a thrifty write sits on exactly a majority (the
client option is off by default; see :class:`.client.WormSpaceClient`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import Any, Protocol

from ..core.chain import ChainReply
from ..core.messages import Accepted, AcceptedRange, Ballot, Promise, PromiseRange, Status
from ..core.ops import OpResult, Outcome, majority
from ..trace import OFF, Recorder
from . import wire
from .connection import ClientError, Connection, ServerError, WrongKey


class Unavailable(ClientError):
    """No quorum answered within the timeout and retries."""


class SansIOOp(Protocol):
    """What the core ops (Paxos and chain, single and range) have in common."""

    done: bool
    result: OpResult | None

    def start(self) -> Sequence[tuple[int, Any]]: ...

    def on_reply(self, index: int, reply: Any) -> Sequence[tuple[int, Any]]: ...

    def retry(self) -> Sequence[tuple[int, Any]]: ...


#: Server error codes that mean "this server did not answer", not "the request is wrong".
_TRANSIENT = (wire.UNAVAILABLE, wire.INTERNAL)


def _rival(reply: Any) -> Ballot | None:
    """The highest ballot that refused us in ``reply`` (a PREEMPTED answer), if any."""
    r = reply.reply if isinstance(reply, ChainReply) else reply
    if isinstance(r, (Promise, Accepted)):
        return r.promised if r.status is Status.PREEMPTED else None
    if isinstance(r, (PromiseRange, AcceptedRange)):
        return max((x.promised for x in r.results if x.status is Status.PREEMPTED), default=None)
    return None


#: Seconds an acceptor that let a hedge fire is left out of thrifty majorities.
SLOW_FOR = 1.0


class Hedge:
    """An adaptive hedge delay: ``factor`` times the recent latency of the ops that used it
    (a moving average over about 16 ops), within ``[floor, ceiling]`` seconds."""

    __slots__ = ("avg", "ceiling", "factor", "floor")

    def __init__(self, floor: float = 0.002, ceiling: float = 0.25, factor: float = 4.0) -> None:
        if not 0 < floor <= ceiling or factor <= 0:
            raise ValueError(f"hedge needs 0 < floor <= ceiling and factor > 0, got floor "
                             f"{floor!r}, ceiling {ceiling!r}, factor {factor!r}")
        self.floor, self.ceiling, self.factor = floor, ceiling, factor
        self.avg: float | None = None  # nothing seen yet: hedge at the ceiling

    def delay(self) -> float:
        """The hedge for an op starting now."""
        if self.avg is None:
            return self.ceiling
        return min(self.ceiling, max(self.floor, self.factor * self.avg))

    def observe(self, seconds: float) -> None:
        """An op that used this hedge took ``seconds``."""
        avg = self.avg
        self.avg = seconds if avg is None else avg + (seconds - avg) / 16


async def run_op(
    op: SansIOOp, conns: Sequence[Connection], timeout: float, retries: int,
    recorder: Recorder = OFF, *, prefer: int | None = None,
    hedge: float | Hedge | None = None,
) -> OpResult:
    """Run ``op`` against ``conns`` (acceptor ``i`` is ``conns[i]``) until it is done.

    ``recorder``: the client's trace; each request sent is a ``send`` event (peer: the server
    id), which trace validation against the protocol model needs. ``prefer``: run thrifty
    phases (see the module text), rotating from acceptor ``prefer % len(conns)``; ``hedge``:
    seconds before held messages go out anyway, or a :class:`Hedge` that adapts them to the
    latency it sees (default ``timeout / 4``)."""
    if isinstance(hedge, Hedge):
        adaptive: Hedge | None = hedge
        delay = hedge.delay()
    else:
        adaptive, delay = None, timeout / 4 if hedge is None else hedge
    run = _Run(op, conns, timeout, retries, recorder, prefer, delay)
    try:
        result = await run.done
    finally:
        run.finish()
    if adaptive is not None and run.prefer is not None:
        adaptive.observe(run.loop.time() - run.started)
    return result


class _Run:
    """One op in flight (see :func:`run_op`).

    A plain object with methods, not closures: closures that call each other form a reference
    cycle (function -> cell -> function) per op, which only the cyclic garbage collector frees;
    at thousands of ops per second that collector was about half of the client's CPU. Here the
    only links back to the run are the connections' pending callbacks and the timer, and
    :meth:`finish` drops both, so everything is freed by reference counting."""

    __slots__ = (
        "asked",
        "attempt",
        "conns",
        "deadline",
        "done",
        "errors",
        "handle",
        "hedge",
        "held",
        "loop",
        "op",
        "outstanding",
        "prefer",
        "recorder",
        "retries",
        "rival",
        "sent",
        "started",
        "timeout",
    )

    def __init__(self, op: SansIOOp, conns: Sequence[Connection], timeout: float, retries: int,
                 recorder: Recorder, prefer: int | None = None, hedge: float = 0.0) -> None:
        self.op, self.conns, self.timeout, self.retries = op, conns, timeout, retries
        self.recorder = recorder
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[OpResult] = self.loop.create_future()
        self.errors: dict[int, str] = {}
        self.attempt = 0
        self.outstanding = 0
        self.rival: Ballot | None = None
        self.sent: list[tuple[Connection, int]] = []
        # Thrifty phases: held-back requests of the current phase, by acceptor, and the
        # acceptors asked in it that have not answered yet.
        self.prefer = prefer if prefer is not None and len(conns) > 2 else None
        self.held: dict[int, Any] = {}
        self.asked: list[int] = []
        self.hedge = hedge if self.prefer is not None and 0 < hedge < timeout else timeout
        self.started = self.loop.time()
        self.deadline = self.started + timeout
        self.send(op.start(), True)
        self.handle: asyncio.TimerHandle | None = self.loop.call_later(
            self.hedge if self.held else timeout, self.on_timeout)

    def finish(self) -> None:
        """The op is decided (or abandoned): stop the timer, and forget the requests still
        unanswered, so their replies are dropped unread (and nothing refers to us any more)."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        for conn, rid in self.sent:
            conn.forget(rid)
        self.sent.clear()

    def send(self, sends: Sequence[tuple[int, Any]], phase: bool = False) -> None:
        """Send ``sends``; ``phase``: they may start a phase, which a thrifty run sends to a
        majority only (see the module text)."""
        conns, sent = self.conns, self.sent
        if phase and self.prefer is not None and len(sends) == len(conns) \
                and sends[0][1] is sends[-1][1]:
            sends = self.thrifty(sends)
        for i, req in sends:
            if self.recorder.enabled:
                self.recorder.send(conns[i].server.id, req)
            self.outstanding += 1
            sent.append((conns[i], conns[i].request_cb(req, functools.partial(self.on_reply, i))))

    def thrifty(self, sends: Sequence[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """A phase's sends: those to the preferred majority; the others are held back."""
        conns = self.conns
        n = len(conns)
        now = time.monotonic()
        start = self.prefer % n  # type: ignore[operator]
        order = [(start + k) % n for k in range(n)]
        ready = [i for i in order if conns[i].available(now)]
        quorum = majority(n)
        if len(ready) < quorum:
            self.held, self.asked = {}, []
            return list(sends)
        asked = ready[:quorum]
        self.asked = asked
        self.held = {i: req for i, req in sends if i not in asked}
        return [(i, req) for i, req in sends if i in asked]

    def release(self) -> None:
        """Send the held-back requests of this phase."""
        held, self.held = self.held, {}
        self.asked = []
        self.send(list(held.items()))

    def on_reply(self, i: int, reply: Any, exc: BaseException | None) -> None:
        self.outstanding -= 1
        done = self.done
        if done.done():
            return
        if i in self.asked:
            self.asked.remove(i)
        if exc is not None:
            self.errors[i] = str(exc)
            if isinstance(exc, WrongKey) or (
                isinstance(exc, ServerError) and exc.code not in _TRANSIENT
            ):
                done.set_exception(exc)
                return
            if self.held:
                self.conns[i].slow_until = time.monotonic() + SLOW_FOR
                self.release()
        else:
            self.errors.pop(i, None)
            seen = _rival(reply)
            if seen is not None and (self.rival is None or seen > self.rival):
                self.rival = seen
            op = self.op
            self.send(op.on_reply(i, reply), True)
            if op.done:
                assert op.result is not None
                done.set_result(op.result)
                return
            if self.held and self.outstanding == 0:
                self.release()  # a refusal (or a read that disagrees): the op needs the rest
        if self.outstanding == 0 and self.rival is not None:
            # Every request has its answer or failed, and a rival ballot refused us: the op
            # waits for servers that are down (e.g. 1 OK + 1 PREEMPTED of 3, the third dead).
            # Give up now as PREEMPTED so the caller retries above the rival.
            done.set_result(OpResult(Outcome.PREEMPTED, ballot=self.rival))

    def on_timeout(self) -> None:
        if self.done.done():
            return
        now = self.loop.time()
        if now < self.deadline - 1e-4:
            # A hedge: send what is held, avoid the acceptors that kept us waiting.
            if self.held:
                until = time.monotonic() + SLOW_FOR
                for i in self.asked:
                    self.conns[i].slow_until = until
                self.release()
            self.handle = self.loop.call_later(min(self.hedge, self.deadline - now),
                                               self.on_timeout)
            return
        self.attempt += 1
        timeout, retries = self.timeout, self.retries
        if self.attempt > retries:
            detail = "; ".join(f"{self.conns[i].server.id}: {e}"
                               for i, e in sorted(self.errors.items()))
            waited = sum(timeout * min(2**k, 8) for k in range(retries + 1))
            self.done.set_exception(Unavailable(
                f"no quorum of {', '.join(c.server.id for c in self.conns)} answered within "
                f"{retries + 1} attempts ({waited:g} s)" + (f" ({detail})" if detail else "")))
            return
        self.held, self.asked = {}, []  # the resend goes to every acceptor not yet answered
        self.send(self.op.retry())
        # Back off: a resend to a server that is merely slow adds to its queue, and resending
        # at a fixed pace under overload snowballs.
        wait = timeout * min(2**self.attempt, 8)
        self.deadline = now + wait
        self.handle = self.loop.call_later(
            wait if self.prefer is None else min(self.hedge, wait), self.on_timeout)

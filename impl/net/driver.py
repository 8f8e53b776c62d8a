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
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any, Protocol

from ..core.chain import ChainReply
from ..core.messages import Accepted, AcceptedRange, Ballot, Promise, PromiseRange, Status
from ..core.ops import OpResult, Outcome
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


async def run_op(
    op: SansIOOp, conns: Sequence[Connection], timeout: float, retries: int,
    recorder: Recorder = OFF,
) -> OpResult:
    """Run ``op`` against ``conns`` (acceptor ``i`` is ``conns[i]``) until it is done.

    ``recorder``: the client's trace; each request sent is a ``send`` event (peer: the server
    id), which trace validation against the protocol model needs."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[OpResult] = loop.create_future()
    errors: dict[int, str] = {}
    attempt = 0
    handle: asyncio.TimerHandle | None = None
    outstanding = 0
    rival: Ballot | None = None

    sent: list[tuple[Connection, int]] = []

    def send(sends: Sequence[tuple[int, Any]]) -> None:
        nonlocal outstanding
        for i, req in sends:
            if recorder.enabled:
                recorder.send(conns[i].server.id, req)
            outstanding += 1
            sent.append((conns[i], conns[i].request_cb(req, functools.partial(on_reply, i))))

    def on_reply(i: int, reply: Any, exc: BaseException | None) -> None:
        nonlocal outstanding, rival
        outstanding -= 1
        if done.done():
            return
        if exc is not None:
            errors[i] = str(exc)
            if isinstance(exc, WrongKey) or (
                isinstance(exc, ServerError) and exc.code not in _TRANSIENT
            ):
                done.set_exception(exc)
                return
        else:
            errors.pop(i, None)
            seen = _rival(reply)
            if seen is not None and (rival is None or seen > rival):
                rival = seen
            send(op.on_reply(i, reply))
            if op.done:
                assert op.result is not None
                done.set_result(op.result)
                return
        if outstanding == 0 and rival is not None:
            # Every request has its answer or failed, and a rival ballot refused us: the op
            # waits for servers that are down (e.g. 1 OK + 1 PREEMPTED of 3, the third dead).
            # Give up now as PREEMPTED so the caller retries above the rival.
            done.set_result(OpResult(Outcome.PREEMPTED, ballot=rival))

    def on_timeout() -> None:
        nonlocal attempt, handle
        if done.done():
            return
        attempt += 1
        if attempt > retries:
            detail = "; ".join(f"{conns[i].server.id}: {e}" for i, e in sorted(errors.items()))
            waited = sum(timeout * min(2**k, 8) for k in range(retries + 1))
            done.set_exception(Unavailable(
                f"no quorum of {', '.join(c.server.id for c in conns)} answered within "
                f"{retries + 1} attempts ({waited:g} s)" + (f" ({detail})" if detail else "")))
            return
        send(op.retry())
        # Back off: a resend to a server that is merely slow adds to its queue, and resending
        # at a fixed pace under overload snowballs.
        handle = loop.call_later(timeout * min(2**attempt, 8), on_timeout)

    send(op.start())
    handle = loop.call_later(timeout, on_timeout)
    try:
        return await done
    finally:
        if handle is not None:
            handle.cancel()
        # The op is decided (or abandoned): replies still to come are dropped unread.
        for conn, rid in sent:
            conn.forget(rid)

"""Thrifty phases in the op driver (``run_op(prefer=...)``), against scripted connections.

Each fake connection records what it was sent and lets the test answer (or fail) each request
when it chooses, so every path is deterministic: the majority asked first, the held request
released by a refusal, by a failure and by the hedge, the rotation, and the plain (non-thrifty)
run that asks everyone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from wormspace.impl.core.messages import (
    Accept,
    Accepted,
    Kind,
    Prepare,
    Promise,
    Read,
    ReadReply,
    Status,
    WorId,
)
from wormspace.impl.core.ops import CaptureWriteOp, Outcome, ReadOp
from wormspace.impl.net import driver
from wormspace.impl.net.connection import ServerUnreachable

W = WorId(0, Kind.DATA, 5)
B = (1, 7)


@dataclass
class _Spec:
    id: str


class FakeConn:
    """What ``_Run`` uses of a Connection: ``request_cb``, ``forget``, ``available``,
    ``slow_until`` and ``server.id``; requests wait in ``inbox`` until the test answers."""

    def __init__(self, name: str) -> None:
        self.server = _Spec(name)
        self.slow_until = 0.0
        self.down = False
        self.inbox: list[tuple[Any, Any]] = []
        self.sent: list[Any] = []
        self._rid = 0

    def available(self, now: float) -> bool:
        return not self.down and now >= self.slow_until

    def request_cb(self, msg: Any, callback: Any) -> int:
        self.sent.append(msg)
        self.inbox.append((msg, callback))
        self._rid += 1
        return self._rid

    def forget(self, rid: int) -> None:
        pass

    def answer(self, make: Any) -> None:
        """Answer every waiting request with ``make(msg)`` (a reply, or an exception)."""
        waiting, self.inbox = self.inbox, []
        for msg, cb in waiting:
            r = make(msg)
            if isinstance(r, BaseException):
                cb(None, r)
            else:
                cb(r, None)


def promise(status: Status = Status.OK) -> Any:
    return lambda m: Promise(status, m.wor, m.ballot,
                             (9, 9) if status is not Status.OK else m.ballot)


def accepted(status: Status = Status.OK) -> Any:
    return lambda m: Accepted(status, m.wor, m.ballot,
                              (9, 9) if status is not Status.OK else m.ballot)


def empty(m: Any) -> ReadReply:
    return ReadReply(Status.OK, m.wor, (0, 0))


def start(op: Any, conns: list[FakeConn], **options: Any) -> asyncio.Future[Any]:
    """Run ``op`` over ``conns`` in the background (timeout 5 s and 1 retry unless given)."""
    options = {"timeout": 5, "retries": 1, **options}
    return asyncio.ensure_future(driver.run_op(op, conns, **options))


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_thrifty_capture_write_asks_a_majority_only():
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        task = start(CaptureWriteOp(W, b"v", B, 3), conns, prefer=4)
        await _settle()
        # prefer 4 -> rotation starts at 4 % 3 = 1: s1 and s2 asked, s0 held
        assert [len(c.sent) for c in conns] == [0, 1, 1]
        assert all(isinstance(c.sent[0], Prepare) for c in conns[1:])
        for c in conns[1:]:
            c.answer(promise())
        await _settle()
        assert [len(c.sent) for c in conns] == [0, 2, 2]  # the accept went to the same two
        assert all(isinstance(c.sent[1], Accept) for c in conns[1:])
        for c in conns[1:]:
            c.answer(accepted())
        res = await task
        assert res.outcome is Outcome.OK
        assert conns[0].sent == []  # never needed

    run(scenario())


def test_without_prefer_every_acceptor_is_asked():
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        task = start(CaptureWriteOp(W, b"v", B, 3), conns)
        await _settle()
        assert [len(c.sent) for c in conns] == [1, 1, 1]
        for c in conns[:2]:
            c.answer(promise())
        await _settle()
        for c in conns[:2]:
            c.answer(accepted())
        assert (await task).outcome is Outcome.OK

    run(scenario())


def test_a_refusal_releases_the_held_request():
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        task = start(CaptureWriteOp(W, b"v", B, 3), conns, prefer=0)
        await _settle()
        assert [len(c.sent) for c in conns] == [1, 1, 0]
        conns[0].answer(promise())
        conns[1].answer(promise(Status.PREEMPTED))  # s1 promised a higher ballot
        await _settle()
        assert len(conns[2].sent) == 1 and isinstance(conns[2].sent[0], Prepare)
        conns[2].answer(promise())
        await _settle()
        # phase 2 starts over from the rotation: s0 and s1 (s1 refused a prepare, it may
        # still accept; the driver does not guess), s2 held
        assert [type(c.sent[-1]) for c in conns] == [Accept, Accept, Prepare]
        conns[0].answer(accepted())
        conns[1].answer(accepted())
        assert (await task).outcome is Outcome.OK

    run(scenario())


def test_a_failed_request_releases_at_once_and_the_server_is_avoided():
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        task = start(CaptureWriteOp(W, b"v", B, 3), conns, prefer=0)
        await _settle()
        conns[0].answer(lambda m: ServerUnreachable("s0: connection refused"))
        await _settle()
        assert len(conns[2].sent) == 1  # no waiting for a hedge
        assert conns[0].slow_until > 0
        conns[1].answer(promise())
        conns[2].answer(promise())
        await _settle()
        # phase 2 leaves s0 out: it failed a moment ago
        assert [len(c.sent) for c in conns] == [1, 2, 2]
        conns[1].answer(accepted())
        conns[2].answer(accepted())
        assert (await task).outcome is Outcome.OK

    run(scenario())


def test_the_hedge_releases_a_silent_majority_and_marks_it_slow():
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        task = start(ReadOp(W, B, 3), conns, timeout=2.0, prefer=0, hedge=0.02)
        await _settle()
        assert [len(c.sent) for c in conns] == [1, 1, 0]
        conns[0].answer(empty)
        await asyncio.sleep(0.1)  # s1 stays silent past the hedge
        assert len(conns[2].sent) == 1 and isinstance(conns[2].sent[0], Read)
        assert conns[1].slow_until > 0 and conns[0].slow_until == 0
        conns[2].answer(empty)
        assert (await task).outcome is Outcome.EMPTY
        # the next op prefers s0 but skips s1 (slow): s0 and s2 asked
        task2 = start(ReadOp(W, B, 3), conns, timeout=2.0, prefer=0, hedge=0.02)
        await _settle()
        assert [len(c.sent) for c in conns] == [2, 1, 2]
        conns[0].answer(empty)
        conns[2].answer(empty)
        assert (await task2).outcome is Outcome.EMPTY

    run(scenario())


def test_with_too_few_available_servers_everyone_is_asked():
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        conns[0].down = conns[1].down = True
        task = start(ReadOp(W, B, 3), conns, prefer=0)
        await _settle()
        assert [len(c.sent) for c in conns] == [1, 1, 1]
        for c in conns:
            c.answer(empty)
        assert (await task).outcome is Outcome.EMPTY

    run(scenario())


@pytest.mark.parametrize("prefer", [None, 1])
def test_a_timeout_resends_to_every_unanswered_acceptor(prefer):
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        task = start(ReadOp(W, B, 3), conns, timeout=0.05, retries=3, prefer=prefer, hedge=0.04)
        await asyncio.sleep(0.15)  # nobody answers: hedge (thrifty), then a resend
        assert all(len(c.sent) >= 1 for c in conns)
        assert sum(len(c.sent) for c in conns) >= 5  # first sends + at least one resend round
        for c in conns:
            c.answer(empty)
        assert (await task).outcome is Outcome.EMPTY

    run(scenario())


def test_the_adaptive_hedge_follows_the_recent_latency():
    h = driver.Hedge(floor=0.002, ceiling=0.25, factor=4)
    assert h.delay() == 0.25  # nothing seen yet: the most patient
    h.observe(0.010)
    assert h.delay() == pytest.approx(0.040)
    for _ in range(200):
        h.observe(0.0001)
    assert h.delay() == 0.002  # the floor
    for _ in range(200):
        h.observe(1.0)
    assert h.delay() == 0.25  # the ceiling
    for bad in ({"floor": 0}, {"floor": 0.3, "ceiling": 0.2}, {"factor": 0}):
        with pytest.raises(ValueError, match="hedge needs"):
            driver.Hedge(**bad)


def test_with_an_adaptive_hedge_a_slow_server_costs_a_few_op_latencies_not_the_ceiling():
    async def scenario() -> None:
        conns = [FakeConn(f"s{i}") for i in range(3)]
        hedge = driver.Hedge(floor=0.002, ceiling=1.0, factor=4)
        hedge.observe(0.005)  # ops have been taking 5 ms: hedge at 20 ms
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        task = start(ReadOp(W, B, 3), conns, prefer=0, hedge=hedge)
        await _settle()
        conns[0].answer(empty)  # s1 never answers
        while not conns[2].sent:
            await asyncio.sleep(0.002)
        released = loop.time() - t0
        assert 0.015 <= released < 0.5, released
        conns[2].answer(empty)
        assert (await task).outcome is Outcome.EMPTY
        assert hedge.avg is not None and hedge.avg > 0.005  # it saw this slow op

    run(scenario())

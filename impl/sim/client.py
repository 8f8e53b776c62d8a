"""A simulated WormSpace client: the client library's calls over the core ops, in virtual time.

Each call is written as a generator that mirrors :class:`~wormspace.impl.net.client.WormSpaceClient`
line for line (``_preemptible``: fresh ballots above the rival and a random back-off while
preempted; ``trim``: decide the trim WOR, then apply; ``write_range``: capture the range, then
one write), yielding ``("run", op)`` to run a core op and ``("sleep", µs)`` to back off. Running
a core op copies :func:`~wormspace.impl.net.driver.run_op`: send what ``start()`` returns, feed
each reply to ``on_reply``, resend to the silent acceptors with ``retry()`` after the timeout and
then after 2, 4 and at most 8 times the timeout, give up after ``retries`` resends
(``Unavailable``: the call responds ``TIMEOUT``), and end an attempt early as PREEMPTED once every
request has been answered or has failed and some acceptor refused with a higher ballot. Replies
are matched to requests by id, as a real connection does, so a duplicated reply is seen once.

The client records ``invoke``/``response`` with the same op names, arguments and results as the
real client, and a ``send``/``recv`` per message.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..core.ballots import BallotCounter
from ..core.bugs import Bugs
from ..core.messages import (
    ZERO_BALLOT,
    Accepted,
    AcceptedRange,
    Ballot,
    Kind,
    Promise,
    PromiseRange,
    Reply,
    Request,
    Status,
    WorId,
)
from ..core.ops import CaptureOp, CaptureWriteOp, Op, OpResult, Outcome, ReadOp, TrimOp, WriteOp
from ..core.range_ops import CaptureRangeOp, WriteRangeOp
from ..trace import Recorder
from .acceptor_node import AcceptorNode
from .network import Loop, Network
from .schedule import SEGMENT_SIZE, OpSpec

TRIM_MARK = b"trimmed"  # the value the real client writes into a trim WOR

#: What a call generator yields: ("run", op) or ("sleep", µs); it is sent the op's result.
Command = tuple[str, Any]
Call = Generator[Command, Any, Any]


class CallFailed(Exception):
    """A call ended with a condition instead of a result; ``code`` is its response."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _rival(reply: Reply) -> Ballot | None:
    """The highest ballot that refused us in ``reply`` (as the real driver computes it)."""
    if isinstance(reply, (Promise, Accepted)):
        return reply.promised if reply.status is Status.PREEMPTED else None
    if isinstance(reply, (PromiseRange, AcceptedRange)):
        return max((x.promised for x in reply.results if x.status is Status.PREEMPTED),
                   default=None)
    return None


class SimClient:
    """Client ``cid`` (node ``c<cid>``) running its calls one after another."""

    def __init__(self, cid: int, calls: list[OpSpec], *, loop: Loop, net: Network,
                 rec: Recorder, acceptors: Sequence[AcceptorNode], rng: random.Random, bugs: Bugs,
                 plain: Callable[[Any], dict[str, Any]], unsafe_used: set[int],
                 on_idle: Callable[[SimClient], None], timeout: int = 3_000, retries: int = 6,
                 max_preempt: int = 20) -> None:
        self.cid, self.node = cid, f"c{cid}"
        self.calls = list(calls)
        self.loop, self.net, self.rec, self.rng, self.bugs = loop, net, rec, rng, bugs
        self.acceptors, self.n = acceptors, len(acceptors)
        self.plain, self.unsafe_used, self.on_idle = plain, unsafe_used, on_idle
        self.timeout, self.retries, self.max_preempt = timeout, retries, max_preempt
        self.ballots = BallotCounter(cid, bugs=bugs)
        self.held: dict[int, tuple[Ballot, bytes | None]] = {}  # address -> capture id
        self.busy = False
        self.completed = 0
        self._written = 0
        # The call in progress and the core op it is running.
        self._gen: Call | None = None
        self._call: tuple[int, str] | None = None
        self._op: Op | None = None
        self._token = 0
        self._attempt = 0
        self._pending: dict[int, int] = {}  # request id -> acceptor index
        self._rid = 0
        self._rival: Ballot | None = None
        self._completing_trim = False  # finishing a partly applied trim before answering TRIMMED

    # -- the call sequence ----------------------------------------------------------------------

    def start(self) -> None:
        """Begin the next call, if any; else report idle."""
        if not self.calls:
            self.busy = False
            self.on_idle(self)
            return
        self.busy = True
        spec = self.calls.pop(0)
        self.loop.after(spec.pause, self._begin, spec)

    def add(self, calls: list[OpSpec]) -> None:
        """Queue more calls (the final reads) and start them if idle."""
        self.calls.extend(calls)
        if not self.busy:
            self.start()

    def _begin(self, spec: OpSpec) -> None:
        name, args, gen = self._make(spec)
        self._call = (self.rec.invoke(name, **args), name)
        self._gen = gen
        self._advance(None)

    def _advance(self, value: Any, exc: BaseException | None = None) -> None:
        assert self._gen is not None and self._call is not None
        try:
            cmd = self._gen.throw(exc) if exc is not None else self._gen.send(value)
        except StopIteration as stop:
            self._respond(stop.value)
            return
        except CallFailed as failed:
            self._respond(failed.code)
            return
        if cmd[0] == "run":
            self._run(cmd[1])
        else:
            self.loop.after(cmd[1], self._advance, None)

    def _respond(self, result: Any) -> None:
        assert self._call is not None
        self.rec.respond(self._call[0], self._call[1], result)
        self._gen, self._call = None, None
        self.completed += 1
        self.start()

    # -- the calls (mirroring WormSpaceClient) --------------------------------------------------

    def _make(self, spec: OpSpec) -> tuple[str, dict[str, Any], Call]:
        a = spec.address
        wor = WorId(a // SEGMENT_SIZE, Kind.DATA, a % SEGMENT_SIZE)
        kind = spec.kind
        held = self.held.pop(a, None)  # any call on the address ends the hold of its capture
        if kind == "write_range":
            self.held.pop(a + 1, None)
        if kind == "write_cid" and held is None:
            kind = "write"  # normalisation: no capture to write with
        if kind == "unsafe_write":
            if a in self.unsafe_used:
                kind = "write"  # normalisation: one unsafe write per register
            else:
                self.unsafe_used.add(a)
        if kind == "capture":
            return "capture", {"address": a}, self._capture(a, wor)
        if kind == "read":
            return "read", {"address": a}, self._read(wor)
        if kind == "trim":
            return "trim", {"segment": wor.segment}, self._trim(wor.segment)
        if kind == "write_range":
            values = [self._value(), self._value()]
            args = {"segment": wor.segment, "lo": wor.offset, "values": values, "cids": None}
            return "write_range", args, self._write_range(wor.segment, wor.offset, values)
        value = self._value()
        if kind == "write_cid":
            assert held is not None
            return ("write", {"address": a, "value": value, "cid": list(held[0])},
                    self._write_with(wor, value, held[0], held[1]))
        if kind == "unsafe_write":
            return ("write", {"address": a, "value": value, "cid": 0},
                    self._write_with(wor, value, ZERO_BALLOT, None))
        return "write", {"address": a, "value": value, "cid": None}, self._write(wor, value)

    def _value(self) -> bytes:
        self._written += 1
        return f"{self.node}.{self._written}".encode()

    def _preemptible(self, make: Callable[[Ballot], Op]) -> Generator[Command, Any, OpResult]:
        rival: Ballot | None = None
        res = OpResult(Outcome.PREEMPTED)
        for k in range(self.max_preempt):
            res = yield "run", make(self.ballots.next(above=rival))
            assert isinstance(res, OpResult)
            if res.outcome is not Outcome.PREEMPTED:
                return res
            rival = res.ballot
            yield "sleep", self.rng.randint(0, min(5_000, 100 * 2**k))
        return res

    def _capture(self, address: int, wor: WorId) -> Call:
        res = yield from self._preemptible(lambda b: CaptureOp(wor, b, self.n, bugs=self.bugs))
        if res.outcome is not Outcome.OK or res.ballot is None:
            raise CallFailed("CONTENTION")
        self.held[address] = (res.ballot, res.adopted)
        return {"ballot": list(res.ballot),
                "adopted": None if res.adopted is None else res.adopted.hex()}

    def _write(self, wor: WorId, value: bytes) -> Call:
        res = yield from self._preemptible(
            lambda b: CaptureWriteOp(wor, value, b, self.n, bugs=self.bugs))
        return res.outcome.name

    def _write_with(self, wor: WorId, value: bytes, ballot: Ballot, adopted: bytes | None) -> Call:
        res = yield "run", WriteOp(wor, value, ballot, self.n, adopted=adopted)
        return res.outcome.name

    def _read(self, wor: WorId) -> Call:
        res = yield from self._preemptible(lambda b: ReadOp(wor, b, self.n, bugs=self.bugs))
        if res.outcome is Outcome.PREEMPTED:
            raise CallFailed("CONTENTION")
        return res.value.hex() if res.outcome is Outcome.OK and res.value is not None else "EMPTY"

    def _trim(self, segment: int) -> Call:
        wor = WorId(segment, Kind.TRIM)
        try:
            res = yield from self._preemptible(
                lambda b: CaptureWriteOp(wor, TRIM_MARK, b, self.n, bugs=self.bugs))
        except CallFailed as f:
            if f.code != "TRIMMED":
                raise
            return "OK"  # the trim was met and completed at a majority (see _end)
        if res.outcome is Outcome.PREEMPTED:
            raise CallFailed("CONTENTION")  # the trim WOR is undecided: apply nothing
        try:
            yield "run", TrimOp(segment, self.n)
        except CallFailed as f:
            if f.code != "TRIMMED":
                raise  # TrimOp ends TRIMMED once a majority dropped the segment: success
        return "OK"

    def _write_range(self, segment: int, lo: int, values: list[bytes]) -> Call:
        hi = lo + len(values)
        rival: Ballot | None = None
        for k in range(self.max_preempt):
            op = CaptureRangeOp(segment, lo, hi, self.ballots.next(above=rival), self.n,
                                bugs=self.bugs)
            res = yield "run", op
            per = op.range_result.per_offset if op.range_result is not None else ()
            lost = [r.ballot for r in per if r.outcome is Outcome.PREEMPTED and r.ballot]
            if res.outcome is Outcome.PREEMPTED and res.ballot is not None:
                lost.append(res.ballot)
            if not lost:
                wop = WriteRangeOp(segment, lo, tuple(values), op.ballot, self.n,
                                   adopted=tuple(r.adopted for r in per))
                yield "run", wop
                if wop.range_result is None:
                    return [s.result.outcome.name if s.result is not None else "PREEMPTED"
                            for s in wop.subs]
                return [r.outcome.name for r in wop.range_result.per_offset]
            rival = max(lost)
            yield "sleep", self.rng.randint(0, min(5_000, 100 * 2**k))
        raise CallFailed("CONTENTION")

    # -- running one core op (mirroring driver.run_op) -------------------------------------------

    def _run(self, op: Op) -> None:
        self._token += 1
        self._op, self._attempt, self._rival = op, 0, None
        self._pending.clear()
        self._send(op.start())
        self.loop.after(self.timeout, self._on_timeout, self._token)

    def _send(self, sends: list[tuple[int, Request]]) -> None:
        for i, req in sends:
            self._rid += 1
            self._pending[self._rid] = i
            acc = self.acceptors[i]
            self.rec.send(acc.name, self.plain(req))
            self.net.transmit(self.node, acc.name, type(req).__name__, acc.deliver, self.node,
                              req, self._reply_to(self._token, self._rid, i))

    def _reply_to(self, token: int, rid: int, i: int) -> Callable[[Reply | None], None]:
        return lambda reply: self._on_reply(token, rid, i, reply)

    def _on_reply(self, token: int, rid: int, i: int, reply: Reply | None) -> None:
        if reply is not None:
            self.rec.recv(self.acceptors[i].name, self.plain(reply))
        if token != self._token or self._pending.pop(rid, None) is None or self._op is None:
            return  # a reply to a finished op, or a duplicate
        op = self._op
        if reply is not None:  # None: the connection failed (the acceptor is down)
            seen = _rival(reply)
            if seen is not None and (self._rival is None or seen > self._rival):
                self._rival = seen
            self._send(op.on_reply(i, reply))
            if op.done:
                assert op.result is not None
                self._end(op.result)
                return
        if not self._pending and self._rival is not None:
            # Every request answered or failed, and a rival refused us: PREEMPTED now.
            self._end(OpResult(Outcome.PREEMPTED, ballot=self._rival))

    def _on_timeout(self, token: int) -> None:
        if token != self._token or self._op is None:
            return
        self._attempt += 1
        if self._attempt > self.retries:
            self._end(None)
            return
        self._send(self._op.retry())
        self.loop.after(self.timeout * min(2**self._attempt, 8), self._on_timeout, token)

    def _end(self, result: OpResult | None) -> None:
        finished = self._op
        self._token += 1
        self._op = None
        self._pending.clear()
        if result is None:
            self._completing_trim = False
            self._advance(None, CallFailed("TIMEOUT"))
        elif result.outcome is Outcome.TRIMMED:
            if not self._completing_trim and not isinstance(finished, TrimOp):
                # WOS: a client that meets a partly applied trim completes it at a majority
                # (mirrors impl/net/client.py) and only then answers TRIMMED.
                self._completing_trim = True
                self._run(TrimOp(_segment_of(finished), self.n))
                return
            self._completing_trim = False
            self._advance(None, CallFailed("TRIMMED"))
        elif result.outcome is Outcome.SEALED:
            self._advance(None, CallFailed("SEALED"))
        else:
            self._advance(result)


def _segment_of(op: Op | None) -> int:
    """The segment a core op is about (single WOR ops name a WOR, range ops a segment)."""
    wor = getattr(op, "wor", None)
    if wor is not None:
        return int(wor.segment)
    return int(getattr(op, "segment"))  # noqa: B009 - range ops; Op itself names no segment

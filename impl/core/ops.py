"""Client (proposer) logic for one WOR operation, as pure state machines.

Each op talks to ``n`` acceptors (indices ``0..n-1``) and needs a majority. The driver calls
``start()`` and sends what it returns, feeds every reply to ``on_reply(i, reply)`` and sends what
that returns, until ``done``; then ``result`` holds the outcome. An op has no clock: when replies
stop coming, the driver calls ``retry()`` (resend to the acceptors that have not answered) or
``retry(new_ballot)`` (start over at a higher ballot, after backoff, when preempted). Replies that
do not belong to the op (another WOR, an older ballot, a duplicate) are ignored, so the driver may
deliver anything it receives.

Outcomes (WORMSPACE.md section 1): a write returns OK, PREEMPTED (someone captured since) or
ALREADY_WRITTEN (the capture revealed another value, which this op finished instead); a read
returns the value (OK), EMPTY or TRIMMED; SEALED means the client's configuration is old. A
TRIMMED reply means the segment's trim was decided: the op completes the trim at the acceptors
that have not answered TRIMMED (fire and forget) and ends with TRIMMED.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .bugs import NO_BUGS, Bugs
from .messages import (
    Accept,
    Accepted,
    Ballot,
    InvalidMessage,
    Prepare,
    Promise,
    Read,
    ReadReply,
    Reply,
    Request,
    Seal,
    SealReply,
    Status,
    Trim,
    TrimReply,
    WorId,
)

#: Requests to send: ``(acceptor_index, request)`` pairs.
Sends = list[tuple[int, Request]]


class Outcome(StrEnum):
    """How an operation ended."""

    OK = "ok"
    PREEMPTED = "preempted"
    ALREADY_WRITTEN = "already_written"
    EMPTY = "empty"
    TRIMMED = "trimmed"
    SEALED = "sealed"


@dataclass(frozen=True)
class OpResult:
    """The result of an op.

    ``value``: the value read, or the value this write made chosen. ``ballot``: for a capture
    that succeeded, the capture id; for PREEMPTED, the highest rival ballot seen (retry above it).
    ``adopted``: for a capture, the highest-ballot value its promises revealed; the following
    write must write that value instead (Paxos rule).
    """

    outcome: Outcome
    value: bytes | None = None
    ballot: Ballot | None = None
    adopted: bytes | None = None


def majority(n: int) -> int:
    """Size of a majority quorum of ``n`` acceptors."""
    return n // 2 + 1


class Op:
    """Common machinery: the result, completion, and what a TRIMMED/SEALED reply does."""

    def __init__(self, n: int, epoch: int) -> None:
        if type(n) is not int or n < 1:
            raise InvalidMessage(f"n (acceptor count) must be a positive int, got {n!r}")
        self.n = n
        self.epoch = epoch
        self.quorum = majority(n)
        self.done = False
        self.result: OpResult | None = None

    def start(self) -> Sends:
        """The first requests to send."""
        raise NotImplementedError

    def on_reply(self, index: int, reply: Reply) -> Sends:
        """Feed one reply from acceptor ``index``; returns requests to send next."""
        raise NotImplementedError

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        """Resend to the acceptors that have not answered, or restart at ``new_ballot``."""
        raise NotImplementedError

    def _finish(self, result: OpResult) -> None:
        self.done = True
        self.result = result

    def _refused(self, index: int, status: Status, segment: int) -> Sends:
        """End the op on TRIMMED or SEALED; a trim seen anywhere is completed everywhere else."""
        if status is Status.SEALED:
            self._finish(OpResult(Outcome.SEALED))
            return []
        self._finish(OpResult(Outcome.TRIMMED))
        return [(j, Trim(self.epoch, segment)) for j in range(self.n) if j != index]


class CaptureOp(Op):
    """Phase 1 (capture): prepare ``ballot`` at a majority.

    Result OK carries the capture id and ``adopted``, the highest-ballot accepted value among the
    promises (None if none): a write with this capture id must finish that value.
    """

    def __init__(
        self, wor: WorId, ballot: Ballot, n: int, epoch: int = 0, *, bugs: Bugs = NO_BUGS
    ) -> None:
        super().__init__(n, epoch)
        self.wor, self.ballot, self.bugs = wor, ballot, bugs
        self.promises: dict[int, Promise] = {}
        self.rejects: dict[int, Ballot] = {}

    def start(self) -> Sends:
        msg = Prepare(self.epoch, self.wor, self.ballot)  # one message for every acceptor
        return [(i, msg) for i in range(self.n)]

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if (
            self.done
            or not isinstance(reply, Promise)
            or reply.wor != self.wor
            or reply.ballot != self.ballot
        ):
            return []
        return self.feed(index, reply)

    def feed(self, index: int, reply: Promise) -> Sends:
        """Count a promise already known to answer this op (range ops feed their entries)."""
        if reply.status in (Status.TRIMMED, Status.SEALED):
            return self._refused(index, reply.status, self.wor.segment)
        if reply.status is Status.OK:
            self.promises[index] = reply
        else:
            self.rejects[index] = reply.promised
        if len(self.promises) >= self.quorum:
            self._finish(OpResult(Outcome.OK, ballot=self.ballot, adopted=self._adopt()))
        elif len(self.rejects) > self.n - self.quorum:
            self._finish(OpResult(Outcome.PREEMPTED, ballot=max(self.rejects.values())))
        return []

    def _adopt(self) -> bytes | None:
        seen = [(p.accepted, p.value) for p in self.promises.values() if p.accepted is not None]
        if not seen:
            return None
        # Paxos rule: the value accepted at the highest ballot (planted bug: the lowest).
        pick = min if self.bugs.arbitrary_adopt else max
        return pick(seen, key=lambda av: av[0])[1]

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if new_ballot is None:
            if self.done:
                return []
            answered = self.promises.keys() | self.rejects.keys()
            return [(i, r) for i, r in self.start() if i not in answered]
        self.ballot, self.done, self.result = new_ballot, False, None
        self.promises.clear()
        self.rejects.clear()
        return self.start()


class WriteOp(Op):
    """Phase 2 (write): accept at a majority with capture id ``ballot``.

    If the capture revealed a value (``adopted``), that value is written instead and the result
    is ALREADY_WRITTEN (OK if it equals ``value``: indistinguishable from this client's own
    earlier attempt). ``ballot = ZERO_BALLOT`` is the unsafe write. A write keeps its capture id:
    after PREEMPTED the caller must capture again.
    """

    def __init__(
        self,
        wor: WorId,
        value: bytes,
        ballot: Ballot,
        n: int,
        epoch: int = 0,
        *,
        adopted: bytes | None = None,
    ) -> None:
        super().__init__(n, epoch)
        self.wor, self.value, self.ballot, self.adopted = wor, value, ballot, adopted
        self.sent = adopted if adopted is not None else value
        self.oks: set[int] = set()
        self.rejects: dict[int, Ballot] = {}

    def start(self) -> Sends:
        msg = Accept(self.epoch, self.wor, self.ballot, self.sent)
        return [(i, msg) for i in range(self.n)]

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if (
            self.done
            or not isinstance(reply, Accepted)
            or reply.wor != self.wor
            or reply.ballot != self.ballot
        ):
            return []
        return self.feed(index, reply)

    def feed(self, index: int, reply: Accepted) -> Sends:
        """Count an Accepted already known to answer this op."""
        if reply.status in (Status.TRIMMED, Status.SEALED):
            return self._refused(index, reply.status, self.wor.segment)
        if reply.status is Status.OK:
            self.oks.add(index)
        else:
            self.rejects[index] = reply.promised
        if len(self.oks) >= self.quorum:
            mine = self.adopted is None or self.adopted == self.value
            outcome = Outcome.OK if mine else Outcome.ALREADY_WRITTEN
            self._finish(OpResult(outcome, value=self.sent, ballot=self.ballot))
        elif len(self.rejects) > self.n - self.quorum:
            self._finish(OpResult(Outcome.PREEMPTED, ballot=max(self.rejects.values())))
        return []

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if new_ballot is not None:
            raise InvalidMessage("a write keeps its capture id; capture again for a new ballot")
        if self.done:
            return []
        answered = self.oks | self.rejects.keys()
        return [(i, r) for i, r in self.start() if i not in answered]


class CaptureWriteOp(Op):
    """``write`` without a pre-capture: capture at ``ballot``, then write (finishing any value
    the capture revealed). ``retry(new_ballot)`` after PREEMPTED starts over from the capture."""

    def __init__(
        self,
        wor: WorId,
        value: bytes,
        ballot: Ballot,
        n: int,
        epoch: int = 0,
        *,
        bugs: Bugs = NO_BUGS,
    ) -> None:
        super().__init__(n, epoch)
        self.wor, self.value, self.bugs = wor, value, bugs
        self.capture = CaptureOp(wor, ballot, n, epoch, bugs=bugs)
        self.write: WriteOp | None = None

    def start(self) -> Sends:
        return self.capture.start()

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if self.done:
            return []
        if self.write is None:
            out = self.capture.on_reply(index, reply)
            return out + self._after_capture()
        out = self.write.on_reply(index, reply)
        if self.write.done:
            assert self.write.result is not None
            self._finish(self.write.result)
        return out

    def _after_capture(self) -> Sends:
        if not self.capture.done:
            return []
        res = self.capture.result
        assert res is not None
        if res.outcome is not Outcome.OK or res.ballot is None:
            self._finish(res)
            return []
        self.write = WriteOp(
            self.wor, self.value, res.ballot, self.n, self.epoch, adopted=res.adopted
        )
        return self.write.start()

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if new_ballot is None:
            if self.done:
                return []
            return (self.write or self.capture).retry()
        self.done, self.result, self.write = False, None, None
        return self.capture.retry(new_ballot)


class ReadOp(Op):
    """Linearizable quorum read with read repair.

    Phase 1 reads a majority. If a majority reports the same accepted ballot, that value is
    chosen: return it. If none reports any value, nothing was chosen when the first reply was
    taken: EMPTY. Otherwise the quorum is half-written: capture at ``ballot`` and write the
    revealed value (repair) before returning it. If that capture reveals nothing, no value was
    chosen before the read started: EMPTY. If the repair is preempted the result is PREEMPTED,
    which the driver must not return to its caller: it calls ``retry(new_ballot)`` after backoff.
    """

    def __init__(
        self, wor: WorId, ballot: Ballot, n: int, epoch: int = 0, *, bugs: Bugs = NO_BUGS
    ) -> None:
        super().__init__(n, epoch)
        self.wor, self.ballot, self.bugs = wor, ballot, bugs
        self.replies: dict[int, ReadReply] = {}
        self.repair: CaptureOp | WriteOp | None = None

    def start(self) -> Sends:
        msg = Read(self.epoch, self.wor)
        return [(i, msg) for i in range(self.n)]

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if self.done:
            return []
        if self.repair is not None:
            return self._repair_reply(index, reply)
        if not isinstance(reply, ReadReply) or reply.wor != self.wor:
            return []
        if reply.status is not Status.OK:
            return self._refused(index, reply.status, self.wor.segment)
        self.replies[index] = reply
        if len(self.replies) < self.quorum:
            return []
        return self._decide()

    def _decide(self) -> Sends:
        counts: dict[tuple[Ballot, bytes], int] = {}
        for r in self.replies.values():
            if r.accepted is not None and r.value is not None:
                key = (r.accepted, r.value)
                counts[key] = counts.get(key, 0) + 1
        if not counts:
            self._finish(OpResult(Outcome.EMPTY))
            return []
        best, votes = max(counts.items(), key=lambda kv: kv[1])
        if votes >= self.quorum:
            self._finish(OpResult(Outcome.OK, value=best[1]))
            return []
        if self.bugs.read_without_repair:
            self._finish(OpResult(Outcome.OK, value=max(counts)[1]))  # planted bug
            return []
        self.repair = CaptureOp(self.wor, self.ballot, self.n, self.epoch, bugs=self.bugs)
        return self.repair.start()

    def _repair_reply(self, index: int, reply: Reply) -> Sends:
        assert self.repair is not None
        out = self.repair.on_reply(index, reply)
        if not self.repair.done:
            return out
        res = self.repair.result
        assert res is not None
        if isinstance(self.repair, WriteOp) or res.outcome is not Outcome.OK:
            self._finish(res)  # the repair write's OK carries the value; or PREEMPTED etc.
            return out
        if res.adopted is None:
            self._finish(OpResult(Outcome.EMPTY))
            return out
        assert res.ballot is not None
        self.repair = WriteOp(self.wor, res.adopted, res.ballot, self.n, self.epoch)
        return out + self.repair.start()

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if new_ballot is None:
            if self.done:
                return []
            if self.repair is not None:
                return self.repair.retry()
            return [(i, r) for i, r in self.start() if i not in self.replies]
        self.ballot, self.done, self.result, self.repair = new_ballot, False, None, None
        self.replies.clear()
        return self.start()


class TrimOp(Op):
    """Tell every acceptor to drop ``segment`` (after its trim WOR is chosen); OK at a majority,
    which every later read quorum meets."""

    def __init__(self, segment: int, n: int, epoch: int = 0) -> None:
        super().__init__(n, epoch)
        self.segment = segment
        self.oks: set[int] = set()

    def start(self) -> Sends:
        msg = Trim(self.epoch, self.segment)
        return [(i, msg) for i in range(self.n)]

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if self.done or not isinstance(reply, TrimReply) or reply.segment != self.segment:
            return []
        if reply.status is Status.SEALED:
            return self._refused(index, reply.status, self.segment)
        self.oks.add(index)
        if len(self.oks) >= self.quorum:
            self._finish(OpResult(Outcome.TRIMMED))
        return []

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if self.done:
            return []
        return [(i, r) for i, r in self.start() if i not in self.oks]


class SealOp(Op):
    """Seal every epoch below ``epoch`` at a majority (Vertical-Paxos-style reconfiguration)."""

    def __init__(self, epoch: int, n: int) -> None:
        super().__init__(n, epoch)
        self.oks: set[int] = set()

    def start(self) -> Sends:
        msg = Seal(self.epoch)
        return [(i, msg) for i in range(self.n)]

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if self.done or not isinstance(reply, SealReply) or reply.epoch < self.epoch:
            return []
        self.oks.add(index)
        if len(self.oks) >= self.quorum:
            self._finish(OpResult(Outcome.OK))
        return []

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if self.done:
            return []
        return [(i, r) for i, r in self.start() if i not in self.oks]

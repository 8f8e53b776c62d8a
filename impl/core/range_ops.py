"""Batch capture and write of a range of data WORs in one message per acceptor.

A range op is a bundle of single-WOR ops (one per offset) fed from the per-offset entries of
range replies, so the quorum logic is exactly that of :mod:`.ops`. The whole range may be refused
(TRIMMED, SEALED); otherwise each offset ends on its own (OK, PREEMPTED, ALREADY_WRITTEN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .bugs import NO_BUGS, Bugs
from .messages import (
    AcceptedRange,
    AcceptRange,
    Ballot,
    InvalidMessage,
    Kind,
    PrepareRange,
    PromiseRange,
    Reply,
    Status,
    WorId,
)
from .ops import CaptureOp, Op, OpResult, Outcome, Sends, WriteOp


class _Fed(Protocol):
    """A single-WOR op that range replies feed per offset (CaptureOp, WriteOp)."""

    done: bool
    result: OpResult | None

    def feed(self, index: int, reply: Any) -> Sends: ...


@dataclass(frozen=True)
class RangeResult:
    """``outcome`` is OK when the acceptors served the range (then see ``per_offset``), else
    TRIMMED or SEALED for the whole range. The op's own ``result`` says the same (OK means
    "served"); ``per_offset`` is what a caller reads."""

    outcome: Outcome
    per_offset: tuple[OpResult, ...] = ()


class _RangeOp(Op):
    """Shared bookkeeping: which acceptors answered, per-offset sub-ops, the range result."""

    def __init__(self, segment: int, lo: int, hi: int, n: int, epoch: int) -> None:
        super().__init__(n, epoch)
        if not 0 <= lo < hi:
            raise InvalidMessage(f"range [{lo}, {hi}) must be non-empty")
        self.segment, self.lo, self.hi = segment, lo, hi
        self.answered: set[int] = set()
        self.range_result: RangeResult | None = None

    def wors(self) -> list[WorId]:
        return [WorId(self.segment, Kind.DATA, o) for o in range(self.lo, self.hi)]

    def _feed(
        self, index: int, reply: PromiseRange | AcceptedRange, subs: Sequence[_Fed]
    ) -> Sends:
        if reply.status in (Status.TRIMMED, Status.SEALED):
            out = self._refused(index, reply.status, self.segment)
            assert self.result is not None
            self.range_result = RangeResult(self.result.outcome)
            return out
        self.answered.add(index)
        for sub, entry in zip(subs, reply.results):
            if not sub.done:
                sub.feed(index, entry)
        if all(sub.done for sub in subs):
            per = tuple(sub.result for sub in subs if sub.result is not None)
            self.range_result = RangeResult(Outcome.OK, per)
            self._finish(OpResult(Outcome.OK))  # served: the per-offset results say the rest
        return []


class CaptureRangeOp(_RangeOp):
    """``capture_range(segment, lo, hi)``: one PrepareRange per acceptor; per-offset capture
    results (with ``adopted`` values to finish) in ``range_result.per_offset``."""

    def __init__(
        self,
        segment: int,
        lo: int,
        hi: int,
        ballot: Ballot,
        n: int,
        epoch: int = 0,
        *,
        bugs: Bugs = NO_BUGS,
    ) -> None:
        super().__init__(segment, lo, hi, n, epoch)
        self.ballot, self.bugs = ballot, bugs
        self.subs = [CaptureOp(w, ballot, n, epoch, bugs=bugs) for w in self.wors()]

    def start(self) -> Sends:
        req = PrepareRange(self.epoch, self.segment, self.lo, self.hi, self.ballot)
        return [(i, req) for i in range(self.n)]

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if (
            self.done
            or not isinstance(reply, PromiseRange)
            or (reply.segment, reply.lo, reply.hi, reply.ballot)
            != (self.segment, self.lo, self.hi, self.ballot)
        ):
            return []
        return self._feed(index, reply, self.subs)

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if new_ballot is None:
            return [] if self.done else [(i, r) for i, r in self.start() if i not in self.answered]
        # Start over: same range, new ballot, nothing counted.
        self.ballot, self.done, self.result, self.range_result = new_ballot, False, None, None
        self.answered.clear()
        self.subs = [CaptureOp(w, new_ballot, self.n, self.epoch, bugs=self.bugs)
                     for w in self.wors()]
        return self.start()


class WriteRangeOp(_RangeOp):
    """``write_range``: one AcceptRange per acceptor with capture id ``ballot``; ``values[i]``
    goes to offset ``lo + i`` unless the capture revealed ``adopted[i]``, which wins."""

    def __init__(
        self,
        segment: int,
        lo: int,
        values: tuple[bytes, ...],
        ballot: Ballot,
        n: int,
        epoch: int = 0,
        *,
        adopted: tuple[bytes | None, ...] | None = None,
    ) -> None:
        super().__init__(segment, lo, lo + len(values), n, epoch)
        adopted = adopted if adopted is not None else (None,) * len(values)
        if len(adopted) != len(values):
            raise InvalidMessage("adopted must have one entry per value")
        self.ballot = ballot
        self.subs = [
            WriteOp(w, v, ballot, n, epoch, adopted=a)
            for w, v, a in zip(self.wors(), values, adopted)
        ]

    def start(self) -> Sends:
        values = tuple(sub.sent for sub in self.subs)
        req = AcceptRange(self.epoch, self.segment, self.lo, self.hi, self.ballot, values)
        return [(i, req) for i in range(self.n)]

    def on_reply(self, index: int, reply: Reply) -> Sends:
        if (
            self.done
            or not isinstance(reply, AcceptedRange)
            or (reply.segment, reply.lo, reply.hi, reply.ballot)
            != (self.segment, self.lo, self.hi, self.ballot)
        ):
            return []
        return self._feed(index, reply, self.subs)

    def retry(self, new_ballot: Ballot | None = None) -> Sends:
        if new_ballot is not None:
            raise InvalidMessage("a write keeps its capture id; capture again for a new ballot")
        return [] if self.done else [(i, r) for i, r in self.start() if i not in self.answered]

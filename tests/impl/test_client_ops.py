"""Client ops (capture, write, read with repair, trim, ranges) and a shuffled-network safety run."""

from __future__ import annotations

import pytest
from shuffle_net import ShuffleNet
from wormspace.impl.core import (
    NO_BUGS,
    ZERO_BALLOT,
    Accept,
    Acceptor,
    AcceptorState,
    Ballot,
    BallotCounter,
    Bugs,
    CaptureOp,
    CaptureRangeOp,
    CaptureWriteOp,
    InvalidMessage,
    Kind,
    Op,
    OpResult,
    Outcome,
    Prepare,
    Promise,
    Read,
    ReadOp,
    SealOp,
    Status,
    Trim,
    TrimOp,
    WorId,
    WorState,
    WriteOp,
    WriteRangeOp,
)

W = WorId(1, Kind.DATA, 0)


def deliver(accs: list[Acceptor], op: Op, only: set[int] | None = None) -> list:
    """Run ``op`` to quiescence, in order, dropping messages to acceptors not in ``only``."""
    sent: list = []
    queue = list(op.start())
    while queue:
        i, req = queue.pop(0)
        sent.append((i, req))
        if only is not None and i not in only:
            continue
        reply, _ = accs[i].handle(req)
        queue.extend(op.on_reply(i, reply))
    return sent


def acceptors(n: int, **states: WorState) -> list[Acceptor]:
    out = [Acceptor() for _ in range(n)]
    for key, s in states.items():  # a0=WorState(...) sets acceptor 0's state of W
        out[int(key[1:])].state.wors[W] = s
    return out


def test_capture_then_write_ok_and_second_writer_finishes_the_first_value() -> None:
    accs = acceptors(3)
    op = CaptureWriteOp(W, b"a", (1, 1), 3)
    deliver(accs, op)
    assert op.result is not None and (op.result.outcome, op.result.value) == (Outcome.OK, b"a")
    op2 = CaptureWriteOp(W, b"b", (1, 2), 3)
    deliver(accs, op2)
    assert op2.result is not None
    assert (op2.result.outcome, op2.result.value) == (Outcome.ALREADY_WRITTEN, b"a")
    assert all(a.state.get(W).value == b"a" for a in accs)


def test_same_value_revealed_by_capture_is_ok() -> None:
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"a"))
    op = CaptureWriteOp(W, b"a", (2, 1), 3)
    deliver(accs, op)
    assert op.result is not None and op.result.outcome is Outcome.OK


@pytest.mark.parametrize("bug, expect", [(False, b"y"), (True, b"x")])
def test_capture_adopts_the_highest_ballot_value(bug: bool, expect: bytes) -> None:
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"x"), a1=WorState((2, 1), (2, 1), b"y"))
    op = CaptureOp(W, (3, 2), 3, bugs=Bugs(arbitrary_adopt=bug))
    deliver(accs, op, only={0, 1})
    assert op.result is not None and op.result.adopted == expect


def test_write_waits_while_a_majority_is_possible_then_reports_preempted() -> None:
    op = WriteOp(W, b"v", (1, 1), 3)
    op.start()
    reject = Acceptor().handle(Prepare(0, W, (5, 5)))[0]
    assert reject.status is Status.OK
    higher = Acceptor(AcceptorState(wors={W: WorState((5, 5))}))
    nack, _ = higher.handle(Accept(0, W, (1, 1), b"v"))
    op.on_reply(0, nack)
    assert not op.done  # two acceptors can still accept
    op.on_reply(1, nack)
    assert op.done and op.result is not None
    assert (op.result.outcome, op.result.ballot) == (Outcome.PREEMPTED, (5, 5))


def test_stale_foreign_and_duplicate_replies_are_ignored() -> None:
    op = CaptureOp(W, (2, 1), 3)
    op.start()
    stale = Promise(Status.OK, W, (1, 1), (1, 1))
    foreign = Promise(Status.OK, WorId(2, Kind.DATA, 0), (2, 1), (2, 1))
    good = Promise(Status.OK, W, (2, 1), (2, 1))
    op.on_reply(0, stale)
    op.on_reply(0, foreign)
    op.on_reply(0, good)
    op.on_reply(0, good)  # a duplicate does not count twice
    assert not op.done
    op.on_reply(1, good)
    assert op.done and op.result is not None and op.result.outcome is Outcome.OK


def test_retry_resends_only_to_silent_acceptors_and_write_keeps_its_ballot() -> None:
    op = CaptureOp(W, (2, 1), 3)
    op.start()
    op.on_reply(1, Promise(Status.OK, W, (2, 1), (2, 1)))
    assert [i for i, _ in op.retry()] == [0, 2]
    sends = op.retry((3, 1))
    assert [(i, r.ballot) for i, r in sends] == [(0, (3, 1)), (1, (3, 1)), (2, (3, 1))]
    with pytest.raises(InvalidMessage):
        WriteOp(W, b"v", (1, 1), 3).retry((2, 1))


def test_read_of_a_chosen_value_needs_no_repair() -> None:
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"v"), a1=WorState((1, 1), (1, 1), b"v"))
    op = ReadOp(W, (2, 1), 3)
    sent = deliver(accs, op, only={0, 1})
    assert all(isinstance(r, Read) for _, r in sent)
    assert op.result is not None and (op.result.outcome, op.result.value) == (Outcome.OK, b"v")


def test_read_of_an_untouched_wor_is_empty() -> None:
    op = ReadOp(W, (2, 1), 3)
    deliver(acceptors(3), op)
    assert op.result is not None and op.result.outcome is Outcome.EMPTY


def test_read_repairs_a_half_written_wor_before_returning() -> None:
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"v"))
    op = ReadOp(W, (2, 9), 3)
    sent = deliver(accs, op, only={0, 1})
    kinds = [type(r).__name__ for _, r in sent]
    assert "Prepare" in kinds and "Accept" in kinds
    assert op.result is not None and (op.result.outcome, op.result.value) == (Outcome.OK, b"v")
    assert [a.state.get(W).accepted for a in accs[:2]] == [(2, 9), (2, 9)]  # now chosen
    # A later read from the other majority sees it too.
    op2 = ReadOp(W, (3, 9), 3)
    deliver(accs, op2, only={1, 2})
    assert op2.result is not None and op2.result.value == b"v"


def test_read_without_repair_bug_returns_an_unchosen_value() -> None:
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"v"))
    op = ReadOp(W, (2, 9), 3, bugs=Bugs(read_without_repair=True))
    sent = deliver(accs, op, only={0, 1})
    assert op.result is not None and op.result.value == b"v"
    assert all(isinstance(r, Read) for _, r in sent)
    assert accs[1].state.get(W).accepted is None  # nothing was completed


def read_then_repair_at(accs: list[Acceptor], op: ReadOp, repair_at: set[int]) -> None:
    """Read from acceptors {0, 1}; the repair's messages reach only ``repair_at``."""
    for i, r in op.start():
        if i in (0, 1):
            queue = op.on_reply(i, accs[i].handle(r)[0])
            while queue:
                j, req = queue.pop(0)
                if j in repair_at:
                    queue.extend(op.on_reply(j, accs[j].handle(req)[0]))


def test_read_repair_that_finds_nothing_returns_empty() -> None:
    # {0, 1} look half-written, but the repair's capture quorum {1, 2} has no value: the value
    # at 0 was not chosen when the read began, so EMPTY is a correct answer.
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"v"))
    op = ReadOp(W, (2, 1), 3)
    read_then_repair_at(accs, op, {1, 2})
    assert op.result is not None and op.result.outcome is Outcome.EMPTY


def test_preempted_read_repair_reports_preempted_and_restarts_with_a_new_ballot() -> None:
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"v"), a1=WorState((9, 9)),
                     a2=WorState((9, 9)))
    op = ReadOp(W, (2, 1), 3)
    read_then_repair_at(accs, op, {1, 2})
    assert op.result is not None and op.result.outcome is Outcome.PREEMPTED
    assert op.result.ballot == (9, 9)
    sends = op.retry((10, 1))
    assert not op.done and all(isinstance(r, Read) for _, r in sends)


def test_trimmed_reply_ends_the_op_and_completes_the_trim_elsewhere() -> None:
    accs = acceptors(3)
    accs[1].handle(Trim(0, 1))
    op = ReadOp(W, (1, 1), 3)
    out = []
    for i, r in op.start():
        if i == 1:
            out = op.on_reply(i, accs[i].handle(r)[0])
    assert op.result is not None and op.result.outcome is Outcome.TRIMMED
    assert sorted(i for i, _ in out) == [0, 2] and all(isinstance(r, Trim) for _, r in out)


def test_trim_and_seal_ops() -> None:
    accs = acceptors(3)
    t = TrimOp(1, 3)
    deliver(accs, t, only={0, 2})
    assert t.result is not None and t.result.outcome is Outcome.TRIMMED
    s = SealOp(4, 3)
    deliver(accs, s)
    assert s.result is not None and s.result.outcome is Outcome.OK
    old = CaptureWriteOp(WorId(2, Kind.META), b"m", (1, 1), 3, epoch=3)
    deliver(accs, old)
    assert old.result is not None and old.result.outcome is Outcome.SEALED


def test_unsafe_write_succeeds_once() -> None:
    accs = acceptors(3)
    first = WriteOp(W, b"a", ZERO_BALLOT, 3)
    deliver(accs, first)
    second = WriteOp(W, b"b", ZERO_BALLOT, 3)
    deliver(accs, second)
    assert first.result is not None and first.result.outcome is Outcome.OK
    assert second.result is not None and second.result.outcome is Outcome.PREEMPTED


def test_range_capture_then_write_finishes_revealed_values() -> None:
    accs = acceptors(3, a0=WorState((1, 1), (1, 1), b"old"))  # offset 0 half-written
    cap = CaptureRangeOp(1, 0, 3, (2, 1), 3)
    deliver(accs, cap, only={0, 1})
    assert cap.range_result is not None
    adopted = tuple(r.adopted for r in cap.range_result.per_offset)
    assert adopted == (b"old", None, None)
    wr = WriteRangeOp(1, 0, (b"a", b"b", b"c"), (2, 1), 3, adopted=adopted)
    deliver(accs, wr)
    assert wr.range_result is not None
    got = [(r.outcome, r.value) for r in wr.range_result.per_offset]
    assert got == [(Outcome.ALREADY_WRITTEN, b"old"), (Outcome.OK, b"b"), (Outcome.OK, b"c")]


def test_range_on_a_trimmed_segment_is_trimmed() -> None:
    accs = acceptors(3)
    for a in accs:
        a.handle(Trim(0, 1))
    cap = CaptureRangeOp(1, 0, 3, (2, 1), 3)
    deliver(accs, cap)
    assert cap.range_result is not None and cap.range_result.outcome is Outcome.TRIMMED


def test_ballot_counter_is_unique_increasing_and_can_outbid() -> None:
    c = BallotCounter(7)
    assert [c.next(), c.next(), c.next(above=(10, 3)), c.next()] == [(1, 7), (2, 7), (11, 7), (12, 7)]
    bad = BallotCounter(7, bugs=Bugs(reuse_capture_id=True))
    assert bad.next() == bad.next() == (1, 7)
    with pytest.raises(InvalidMessage):
        BallotCounter(0)


# -- many concurrent ops over a lossy, duplicating, reordering network ------------------------


class RangeCaptureThenWrite(Op):
    """A sticky-leader step for the shuffled runs: capture a range, then write it (finishing
    revealed values). Any preempted offset makes the whole capture PREEMPTED (restart higher)."""

    def __init__(self, segment: int, lo: int, values: tuple[bytes, ...], ballot: Ballot, n: int):
        super().__init__(n, 0)
        self.segment, self.lo, self.values = segment, lo, values
        self.cap = CaptureRangeOp(segment, lo, lo + len(values), ballot, n)
        self.wr: WriteRangeOp | None = None
        self.per_offset: tuple[OpResult, ...] = ()

    def start(self) -> list:
        return self.cap.start()

    def on_reply(self, index: int, reply: object) -> list:
        if self.done:
            return []
        if self.wr is not None:
            out = self.wr.on_reply(index, reply)  # type: ignore[arg-type]
            if self.wr.done:
                assert self.wr.range_result is not None and self.wr.result is not None
                self.per_offset = self.wr.range_result.per_offset
                self._finish(self.wr.result)
            return out
        out = self.cap.on_reply(index, reply)  # type: ignore[arg-type]
        if not self.cap.done:
            return out
        rr = self.cap.range_result
        assert rr is not None
        rivals = [r.ballot for r in rr.per_offset if r.outcome is Outcome.PREEMPTED]
        if rr.outcome is not Outcome.OK or rivals:
            self._finish(OpResult(rr.outcome if not rivals else Outcome.PREEMPTED,
                                  ballot=max(rivals) if rivals else None))
            return out
        adopted = tuple(r.adopted for r in rr.per_offset)
        self.wr = WriteRangeOp(self.segment, self.lo, self.values, self.cap.ballot, self.n,
                               adopted=adopted)
        return out + self.wr.start()

    def retry(self, new_ballot: Ballot | None = None) -> list:
        if new_ballot is None:
            return [] if self.done else (self.wr or self.cap).retry()
        self.done, self.result, self.wr = False, None, None
        return self.cap.retry(new_ballot)


def workload(net: ShuffleNet, clients: int = 3, wors: int = 2, *, bugs: Bugs = NO_BUGS,
             ranges: bool = False) -> None:
    """Each client writes two values per WOR concurrently; reads join in the middle. With
    ``ranges``, one more client captures and writes the whole range in one go."""
    counters = [BallotCounter(c + 1, bugs=bugs) for c in range(clients + 1)]
    targets = [WorId(0, Kind.DATA, k) for k in range(wors)]
    for c, counter in enumerate(counters[:clients]):
        for w in targets:
            for j in range(2):
                value = f"c{c}-w{w.offset}-{j}".encode()
                op = CaptureWriteOp(w, value, counter.next(), net.n, bugs=bugs)
                net.submit(op, "capture-write", w, value, counter)
    if ranges:
        # One more offset than the single writers use, so some range writes win outright.
        values = tuple(f"range-w{k}".encode() for k in range(wors + 1))
        op = RangeCaptureThenWrite(0, 0, values, counters[-1].next(), net.n)
        net.submit(op, "range-write", targets[0], None, counters[-1])
    for _ in range(60):
        net.step()
    for counter in counters:
        for w in targets:
            net.submit(ReadOp(w, counter.next(), net.n, bugs=bugs), "read", w, None, counter)
    net.run()
    net.loss = net.dup = net.crash = 0.0  # quiet network: final reads must see the chosen value
    for w in targets:
        net.submit(ReadOp(w, counters[0].next(), net.n, bugs=bugs), "read", w, None, counters[0])
    net.run()


@pytest.mark.parametrize("n", [3, 5])
def test_shuffled_network_chooses_at_most_one_value_and_reads_return_it(n: int) -> None:
    ended = total = 0
    range_results = 0
    for seed in range(60):
        net = ShuffleNet(seed, n, loss=0.15, dup=0.15, crash=0.01)
        workload(net, ranges=seed % 2 == 0)
        assert net.violations() == [], f"seed {seed}"
        for t in net.ops:  # each offset of a range write is checked like a single write
            if isinstance(t.op, RangeCaptureThenWrite) and t.end is not None:
                for k, r in enumerate(t.op.per_offset):
                    chosen = net.chosen.get(WorId(0, Kind.DATA, k), {})
                    if r.outcome in (Outcome.OK, Outcome.ALREADY_WRITTEN):
                        assert r.value in chosen and chosen[r.value] <= t.end, f"seed {seed}"
                        range_results += 1
        for t in net.ops[-2:]:  # the final reads on a quiet network: a chosen value or EMPTY
            assert t.result is not None
            chosen = net.chosen.get(t.wor, {})
            assert t.result.value == (next(iter(chosen)) if chosen else None), f"seed {seed}"
        ended += sum(t.end is not None for t in net.ops)
        total += len(net.ops)
        assert any(net.chosen.values()), f"seed {seed}: nothing was ever chosen"
    assert ended / total > 0.95  # liveness is not guaranteed, but retries get nearly all done
    assert range_results > 0  # the range writes did take part


@pytest.mark.parametrize(
    "bug, crash",
    [
        (Bugs(arbitrary_adopt=True), 0.0),
        (Bugs(read_without_repair=True), 0.0),
        (Bugs(reuse_capture_id=True), 0.0),
        (Bugs(ack_before_persist=True), 0.05),
    ],
    ids=["arbitrary_adopt", "read_without_repair", "reuse_capture_id", "ack_before_persist"],
)
def test_the_safety_check_catches_each_planted_bug(bug: Bugs, crash: float) -> None:
    for seed in range(300):
        net = ShuffleNet(seed, 3, loss=0.2, dup=0.2, crash=crash, bugs=bug)
        workload(net, bugs=bug)
        if net.violations():
            return
    pytest.fail(f"no seed out of 300 exposed {bug}")

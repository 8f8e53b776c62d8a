"""The Paxos-WOR acceptor: promise/accept rules, unsafe writes, trim, seal, ranges, records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wor_strategies import requests
from wormspace.impl.core import (
    ZERO_BALLOT,
    Accept,
    Acceptor,
    AcceptRange,
    Bugs,
    InvalidMessage,
    Kind,
    Prepare,
    PrepareRange,
    Read,
    Seal,
    Status,
    Trim,
    TrimRecord,
    WorId,
    WorRecord,
    WorState,
    replay,
)

W = WorId(7, Kind.DATA, 3)


def test_prepare_promises_and_persists_once() -> None:
    a = Acceptor()
    reply, persist = a.handle(Prepare(0, W, (1, 1)))
    assert reply.status is Status.OK and reply.promised == (1, 1) and reply.accepted is None
    assert persist.records == (WorRecord(W, WorState((1, 1))),) and not persist.deferred
    # A retransmitted prepare is promised again without a new record (nothing to fsync).
    reply, persist = a.handle(Prepare(0, W, (1, 1)))
    assert reply.status is Status.OK and not persist


def test_lower_prepare_and_accept_are_preempted_with_the_higher_ballot() -> None:
    a = Acceptor()
    a.handle(Prepare(0, W, (5, 2)))
    before = a.state.copy()
    reply, persist = a.handle(Prepare(0, W, (5, 1)))
    assert reply.status is Status.PREEMPTED and reply.promised == (5, 2) and not persist
    reply, persist = a.handle(Accept(0, W, (4, 9), b"v"))
    assert reply.status is Status.PREEMPTED and reply.promised == (5, 2) and not persist
    assert a.state == before


def test_accept_at_or_above_promise_and_promise_reveals_it() -> None:
    a = Acceptor()
    a.handle(Prepare(0, W, (2, 1)))
    reply, persist = a.handle(Accept(0, W, (2, 1), b"v"))
    assert reply.status is Status.OK
    assert persist.records == (WorRecord(W, WorState((2, 1), (2, 1), b"v")),)
    reply, _ = a.handle(Accept(0, W, (3, 1), b"v"))  # above the promise: no prepare needed
    assert reply.status is Status.OK
    promise, _ = a.handle(Prepare(0, W, (4, 2)))
    assert (promise.accepted, promise.value) == ((3, 1), b"v")
    read, persist = a.handle(Read(0, W))
    assert (read.promised, read.accepted, read.value) == ((4, 2), (3, 1), b"v") and not persist


def test_unsafe_write_only_on_an_untouched_wor() -> None:
    a = Acceptor()
    assert a.handle(Accept(0, W, ZERO_BALLOT, b"u"))[0].status is Status.OK
    reply, persist = a.handle(Accept(0, W, ZERO_BALLOT, b"u"))  # retransmission
    assert reply.status is Status.OK and not persist
    assert a.handle(Accept(0, W, ZERO_BALLOT, b"x"))[0].status is Status.PREEMPTED
    assert a.state.get(W).value == b"u"
    other = WorId(7, Kind.DATA, 4)
    a.handle(Prepare(0, other, (1, 1)))
    assert a.handle(Accept(0, other, ZERO_BALLOT, b"u"))[0].status is Status.PREEMPTED
    assert a.state.get(other).accepted is None


def test_zero_ballot_prepare_cannot_be_built() -> None:
    with pytest.raises(InvalidMessage, match="non-zero ballot"):
        Prepare(0, W, ZERO_BALLOT)


def test_trim_drops_state_answers_trimmed_and_is_idempotent() -> None:
    a = Acceptor()
    a.handle(Accept(0, W, (1, 1), b"v"))
    a.handle(Accept(0, WorId(8, Kind.META), (1, 1), b"m"))
    reply, persist = a.handle(Trim(0, 7))
    assert reply.status is Status.OK and persist.records == (TrimRecord(7),)
    assert all(w.segment != 7 for w in a.state.wors) and WorId(8, Kind.META) in a.state.wors
    for req in (Read(0, W), Prepare(0, W, (9, 9)), Accept(0, W, (9, 9), b"x"),
                PrepareRange(0, 7, 0, 4, (9, 9)), AcceptRange(0, 7, 0, 1, (9, 9), (b"x",))):
        reply, persist = a.handle(req)
        assert reply.status is Status.TRIMMED and not persist
    assert all(w.segment != 7 for w in a.state.wors)
    reply, persist = a.handle(Trim(0, 7))
    assert reply.status is Status.OK and not persist


def test_seal_rejects_old_epochs_and_never_moves_back() -> None:
    a = Acceptor()
    reply, persist = a.handle(Seal(3))
    assert reply.epoch == 3 and len(persist) == 1
    assert a.handle(Prepare(2, W, (1, 1)))[0].status is Status.SEALED
    assert a.handle(Trim(2, 7))[0].status is Status.SEALED
    assert a.handle(Prepare(3, W, (1, 1)))[0].status is Status.OK
    reply, persist = a.handle(Seal(1))
    assert reply.epoch == 3 and not persist and a.state.epoch == 3


def test_range_prepare_and_accept_report_per_offset() -> None:
    a = Acceptor()
    a.handle(Prepare(0, WorId(1, Kind.DATA, 2), (9, 9)))  # offset 2 promised higher
    a.handle(Accept(0, WorId(1, Kind.DATA, 1), (1, 1), b"old"))
    reply, persist = a.handle(PrepareRange(0, 1, 0, 4, (5, 1)))
    assert [r.status for r in reply.results] == [Status.OK, Status.OK, Status.PREEMPTED, Status.OK]
    assert reply.results[1].value == b"old" and reply.results[2].promised == (9, 9)
    assert len(persist) == 3  # one record per newly promised offset
    reply, _ = a.handle(AcceptRange(0, 1, 0, 4, (5, 1), (b"a", b"b", b"c", b"d")))
    assert [r.status for r in reply.results] == [Status.OK, Status.OK, Status.PREEMPTED, Status.OK]
    assert a.state.get(WorId(1, Kind.DATA, 2)).accepted is None


def test_handle_rejects_non_requests_without_changing_state() -> None:
    a = Acceptor()
    reply, _ = a.handle(Prepare(0, W, (1, 1)))
    before = a.state.copy()
    for junk in (reply, None, {"t": "prepare"}, b"\x00"):
        with pytest.raises(InvalidMessage):
            a.handle(junk)  # type: ignore[arg-type]
    assert a.state == before


def test_planted_bugs_change_behaviour() -> None:
    _, persist = Acceptor(bugs=Bugs(ack_before_persist=True)).handle(Prepare(0, W, (1, 1)))
    assert persist.deferred and len(persist) == 1
    a = Acceptor(bugs=Bugs(serve_trimmed=True))
    a.handle(Accept(0, W, (1, 1), b"v"))
    a.handle(Trim(0, 7))
    reply, _ = a.handle(Read(0, W))
    assert reply.status is Status.OK and reply.value is None  # wrong on purpose: not TRIMMED


# -- property: any sequence of requests keeps the acceptor's invariants ------------------------

@settings(max_examples=300, deadline=None)
def _revalidate(msg: object) -> None:
    """Rebuild ``msg`` through its constructor (running ``__post_init__``): it must pass and
    give an equal message; nested range results likewise."""
    from dataclasses import fields

    again = type(msg)(**{f.name: getattr(msg, f.name) for f in fields(msg)})  # type: ignore
    assert again == msg
    for r in getattr(msg, "results", ()):
        _revalidate(r)


@given(st.lists(requests, max_size=40))
def test_invariants_hold_and_records_replay_to_the_state(reqs: list) -> None:
    a = Acceptor()
    log: list = []
    for req in reqs:
        before = a.state.copy()
        reply, persist = a.handle(req)
        _revalidate(reply)  # replies built without their constructor's checks pass them
        log.extend(persist)
        for wor, s in a.state.wors.items():
            assert s.accepted is None or s.accepted <= s.promised
            old = before.wors.get(wor)
            if old is not None:  # promises and accepted ballots only grow
                assert s.promised >= old.promised
                assert old.accepted is None or (s.accepted is not None and s.accepted >= old.accepted)
        assert before.trimmed <= a.state.trimmed and a.state.epoch >= before.epoch
        assert all(w.segment not in a.state.trimmed for w in a.state.wors)
        # Nothing changes without a record (a change the driver would not persist).
        assert (a.state == before) == (not persist)
    assert replay(log) == a.state
    assert replay(a.state.snapshot()) == a.state

"""The deterministic simulator: same schedule, same trace; faults do what they say; a crash keeps
exactly the durable records (and loses the deferred ones of ``ack_before_persist``)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from wormspace.impl import trace
from wormspace.impl.core import (
    ZERO_BALLOT,
    Accept,
    AcceptedRange,
    AcceptRange,
    Bugs,
    Kind,
    Prepare,
    Promise,
    PromiseRange,
    ReadReply,
    Status,
    TrimReply,
    WorId,
    WorRecord,
    replay,
)
from wormspace.impl.core.records import record_from_plain
from wormspace.impl.sim import (
    FaultSpec,
    OpSpec,
    Schedule,
    ScheduleError,
    random_schedule,
    shrink,
    simulate,
)
from wormspace.impl.sim.simulator import Simulator, _Plain

W0 = WorId(0, Kind.DATA, 0)


def _writes(n: int = 2) -> tuple[OpSpec, ...]:
    return tuple(OpSpec(c, "write", 0) for c in range(1, n + 1))


# -- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_same_schedule_gives_the_same_trace(seed: int) -> None:
    s = random_schedule(random.Random(seed))
    a, b = simulate(s), simulate(s)
    assert a.events == b.events and len(a.events) > 20
    assert a.faults == b.faults and a.operations == b.operations


def test_another_seed_gives_another_trace() -> None:
    s = random_schedule(random.Random(3))
    other = replace(s, seed=s.seed + 1)
    assert simulate(s).events != simulate(other).events


def test_the_trace_follows_the_schema_and_round_trips(tmp_path: Any) -> None:
    run = simulate(random_schedule(random.Random(11)))
    for ev in run.events:
        trace.validate(ev)
    kinds = Counter(ev["kind"] for ev in run.events)
    assert {"send", "recv", "persist", "invoke", "response"} <= set(kinds)
    assert kinds["invoke"] == kinds["response"] == run.operations
    path = tmp_path / "t.ndjson"
    trace.write(path, run.events)
    assert trace.read(path) == run.events
    # One clock for all nodes: the list is in time order.
    times = [ev["time"] for ev in run.events]
    assert times == sorted(times)


def test_fast_message_form_equals_the_trace_module_s() -> None:
    w1 = WorId(0, Kind.DATA, 1)
    msgs = [
        Prepare(0, W0, (1, 2)), Accept(3, W0, ZERO_BALLOT, b"\x00v"),
        AcceptRange(0, 0, 0, 2, (2, 1), (b"a", b"")),
        Promise(Status.OK, W0, (2, 1), (2, 1), (1, 1), b"x"),
        PromiseRange(Status.OK, 0, 0, 2, (1, 1), (
            Promise(Status.OK, W0, (1, 1), (1, 1)),
            Promise(Status.PREEMPTED, w1, (1, 1), (3, 2), (2, 2), b"q"))),
        AcceptedRange(Status.TRIMMED, 0, 0, 2, (1, 1)),
        ReadReply(Status.OK, W0, (1, 1), (1, 1), b"z"), TrimReply(Status.OK, 4),
    ]
    plain = _Plain()
    for m in msgs:
        assert plain(m) == trace.message(m)
        assert plain(m) is plain(m)  # converted once


# -- schedules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, words", [
    (lambda: Schedule(1, ops=(OpSpec(3, "write", 0),)), "no client c3"),
    (lambda: Schedule(1, ops=(OpSpec(1, "scribble", 0),)), "unknown op kind 'scribble'"),
    (lambda: Schedule(1, faults=(FaultSpec(0, "kill", 5, 10),)), "no acceptor s5"),
    (lambda: Schedule(1, faults=(FaultSpec(0, "meteor", 0, 10),)), "unknown fault 'meteor'"),
    (lambda: Schedule(1, loss=1.5), "loss must be a probability"),
    (lambda: Schedule(1, ops=(OpSpec(1, "write_range", 3),)), "must fit in its segment"),
    (lambda: random_schedule(random.Random(0), faults={"flood"}), "unknown fault kind"),
])
def test_bad_schedules_are_refused_with_the_reason(bad: Any, words: str) -> None:
    with pytest.raises(ScheduleError, match=words):
        bad()


def test_shrink_keeps_a_failing_schedule_and_drops_the_rest() -> None:
    s = random_schedule(random.Random(5), ops=8)
    assert len(s.ops) >= 8
    target = s.ops[3]

    def fails(x: Schedule) -> bool:  # "fails" while the fourth call is still there
        return target in x.ops

    small = shrink(s, fails)
    assert small.ops == (target,) and small.faults == () and not small.loss and not small.reorder


def test_shrink_respects_its_budget() -> None:
    s = random_schedule(random.Random(5), ops=8)
    runs = []
    shrink(s, lambda x: runs.append(x) is None, budget=5)
    assert len(runs) == 5


# -- faults ------------------------------------------------------------------------------------


def test_network_faults_are_recorded_and_counted() -> None:
    s = Schedule(2, clients=3, ops=_writes(3) + (OpSpec(1, "read", 0),), loss=0.3, dup=0.3,
                 delay=0.2)
    run = simulate(s)
    recorded = Counter(ev["fault"] for ev in run.events if ev["kind"] == "fault")
    for kind in ("loss", "dup", "delay", "reorder"):
        assert recorded[kind] == run.faults[kind] > 0, kind
    # Every call still ends: lost messages are resent after the timeout.
    assert run.finished and run.operations == 4 + 1  # + the final read


def test_without_reorder_links_are_fifo() -> None:
    s = Schedule(4, clients=3, ops=_writes(3), reorder=False, dup=0.3)
    run = simulate(s)
    assert not any(ev["kind"] == "fault" and ev["fault"] == "reorder" for ev in run.events)
    sent: dict[tuple[str, str], list[Any]] = {}
    got: dict[tuple[str, str], list[Any]] = {}
    for ev in run.events:
        if ev["kind"] == "send":
            sent.setdefault((ev["node"], ev["peer"]), []).append(ev["msg"])
        elif ev["kind"] == "recv":
            got.setdefault((ev["peer"], ev["node"]), []).append(ev["msg"])
    for link, msgs in got.items():
        # Received in sending order (duplicates follow their original).
        dedup = [m for i, m in enumerate(msgs) if i == 0 or m is not msgs[i - 1]]
        assert [m for m in sent[link] if any(m is x for x in dedup)] == dedup


def test_a_partitioned_acceptor_hears_nothing_until_healed() -> None:
    s = Schedule(1, ops=(OpSpec(1, "write", 0, pause=100), OpSpec(2, "read", 0, pause=5_000)),
                 faults=(FaultSpec(0, "partition", 2, 50_000),), final_reads=False)
    run = simulate(s)
    start = next(e["time"] for e in run.events if e["kind"] == "fault" and e["fault"] == "partition")
    heal = [e["time"] for e in run.events if e["kind"] == "fault" and e["fault"] == "heal"]
    assert not heal  # the calls end (a majority answers) before the partition heals
    assert not any(e["node"] == "s2" and e["kind"] == "recv" and e["time"] >= start
                   for e in run.events)
    assert [e["result"] for e in run.events if e["kind"] == "response"] == ["OK", b"c1.1".hex()]


def test_a_paused_acceptor_handles_its_queue_on_resume() -> None:
    # s0 is paused during the write (which a majority completes); the final phase resumes it.
    s = Schedule(1, ops=(OpSpec(1, "write", 0, pause=100),),
                 faults=(FaultSpec(0, "pause", 0, 20_000),), reorder=False)
    run = simulate(s)
    resume = next(e for e in run.events if e["kind"] == "fault" and e["fault"] == "resume")
    s0 = [e for e in run.events if e["node"] == "s0" and e["kind"] == "recv"]
    queued = [e for e in s0 if e["time"] == resume["time"]]
    assert [e["msg"]["t"] for e in queued] == ["prepare", "accept"]  # handled at resume, in order
    assert all(e["time"] >= resume["time"] for e in s0)  # nothing while paused
    assert run.faults["pause"] == 1


def test_requests_to_a_killed_acceptor_fail_fast_and_the_call_still_ends() -> None:
    # Two of three acceptors down: no quorum. The call gives up after its retries (TIMEOUT).
    s = Schedule(1, ops=(OpSpec(1, "write", 0, pause=100),),
                 faults=(FaultSpec(0, "kill", 0, 10**7), FaultSpec(0, "kill", 1, 10**7)),
                 final_reads=False)
    run = simulate(s)
    assert [e["result"] for e in run.events if e["kind"] == "response"] == ["TIMEOUT"]
    assert not any(e["node"] in ("s0", "s1") and e["kind"] == "recv" for e in run.events)


# -- crash and restart -------------------------------------------------------------------------


def _durable_from_trace(events: list[dict[str, Any]], node: str) -> Any:
    """Replay the persist events of ``node`` as storage records."""
    recs = []
    for e in events:
        if e["node"] == node and e["kind"] == "persist" and e["change"] in ("promise", "accept"):
            acc = e.get("accepted")
            recs.append(record_from_plain(["w", e["wor"][0], e["wor"][1], e["wor"][2],
                                           e["promised"], acc,
                                           bytes.fromhex(e["value"]) if acc is not None else None]))
    return replay(recs)


def test_restart_recovers_exactly_the_durable_state() -> None:
    s = Schedule(9, clients=2, ops=_writes(2) + (OpSpec(1, "write", 1),),
                 faults=(FaultSpec(150, "kill", 1, 700), FaultSpec(2_000, "kill", 0, 500)),
                 loss=0.1)
    sim = Simulator(s)
    run = sim.run()
    assert run.faults["kill"] == 2 and run.faults["restart"] == 2
    for node in sim.acceptors:
        assert node.up
        assert node.acceptor.state.wors == node.durable.wors  # memory == disk after recovery
        assert _durable_from_trace(run.events, node.name).wors == node.durable.wors


def test_a_correct_acceptor_never_acknowledges_what_is_not_durable() -> None:
    for seed in range(5):
        run = simulate(random_schedule(random.Random(seed)))
        durable: dict[tuple[str, tuple[Any, ...]], tuple[Any, ...]] = {}
        for e in run.events:
            if e["kind"] == "persist" and "wor" in e:
                durable[(e["node"], tuple(e["wor"]))] = (tuple(e["promised"]),
                                                         e.get("accepted") and tuple(e["accepted"]))
            elif e["kind"] == "send" and e["msg"]["t"] == "promise" and e["msg"]["status"] == "ok":
                m = e["msg"]
                assert durable[(e["node"], tuple(m["wor"]))][0] == tuple(m["ballot"])


def test_ack_before_persist_loses_acknowledged_records_in_a_crash() -> None:
    # c1's prepares reach the acceptors at ~100 µs; s0 is killed at 150 µs, before its deferred
    # promise (fsync latency 100-1500 µs) reached the disk.
    s = Schedule(1, ops=(OpSpec(1, "capture", 0),), faults=(FaultSpec(150, "kill", 0, 5_000),),
                 reorder=False, final_reads=False)
    sim = Simulator(s, Bugs(ack_before_persist=True))
    run = sim.run()
    kill = next(e for e in run.events if e["kind"] == "fault" and e["fault"] == "kill")
    assert kill["detail"]["lost_records"] == 1
    acked = [e for e in run.events if e["node"] == "s0" and e["kind"] == "send"]
    assert acked and acked[0]["msg"]["status"] == "ok"  # s0 promised (1, 1) to c1...
    s0 = sim.acceptors[0]
    assert s0.durable.get(W0).promised == ZERO_BALLOT  # ...and forgot it
    assert not any(e["node"] == "s0" and e["kind"] == "persist" for e in run.events)
    # The same schedule without the bug: the promise is durable before the reply.
    fixed = Simulator(s)
    fixed_run = fixed.run()
    assert fixed.acceptors[0].durable.get(W0).promised == (1, 1)
    first = [e["kind"] for e in fixed_run.events if e["node"] == "s0"][:3]
    assert first == ["recv", "persist", "send"]


def test_deferred_records_reach_the_disk_without_a_crash() -> None:
    s = Schedule(3, ops=_writes(2), final_reads=False)
    sim = Simulator(s, Bugs(ack_before_persist=True))
    sim.run()
    sim.loop.stopped = False
    sim.loop.run(10**9)  # let the last flushes happen
    for node in sim.acceptors:
        assert node.durable.wors == node.acceptor.state.wors
        assert all(isinstance(r, WorRecord) for r in node.durable.snapshot())


def test_final_reads_follow_the_workload_after_every_fault_ends() -> None:
    s = Schedule(6, ops=(OpSpec(1, "write", 0), OpSpec(2, "write_range", 1)),
                 faults=(FaultSpec(100, "kill", 2, 10**8),))
    run = simulate(s)
    reads = [e for e in run.events if e["kind"] == "invoke" and e["op"] == "read"]
    assert [r["args"]["address"] for r in reads] == [0, 1, 2]
    restart = next(e for e in run.events if e["kind"] == "fault" and e["fault"] == "restart")
    assert restart["time"] <= reads[0]["time"]

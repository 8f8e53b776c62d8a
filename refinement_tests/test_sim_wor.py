"""Simulated Paxos-WOR clusters under faults, checked against ``wor.paxos`` and the atomic WOR.

* The correct implementation passes every check on the schedules Hypothesis generates.
* Each planted bug (``impl/core/bugs.py``) is found by a Hypothesis search over schedules, which
  then shrinks the failing schedule; the violation says what is wrong in the trace's words and
  shows the trace excerpt. Rare races use :func:`seeded_schedules` (the campaign's own random
  schedules, Hypothesis choosing the seed and dropping what the failure does not need).
* The checks are not vacuous: a correct trace with one event tampered with is rejected.
* ``run_campaign`` (the API of ``wormspace refine --sim``) keeps a failing trace for replay.

Searches are derandomized (the same examples every run). The ``campaign_full`` tests run the
long campaigns (``pytest -m campaign_full refinement_tests/test_sim_wor.py``).
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from wormspace.impl import trace
from wormspace.impl.core import NO_BUGS, Bugs
from wormspace.impl.sim import OpSpec, Schedule, random_schedule, simulate
from wormspace.refinement_tests import wor_events as we
from wormspace.refinement_tests.sim_checks import (
    check_trace,
    run_campaign,
    schedules,
    seeded_schedules,
)

#: Hypothesis settings of a search: deterministic, no example database, no explain phase (it
#: traces every line and makes each run ten times slower).
SEARCH = dict(derandomize=True, database=None, deadline=None,
              phases=[Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Workload profiles: the call mix that exercises each kind of bug.
TRIMS: dict[str, Any] = dict(addresses=(4, 5),
                             kinds=("trim", "read", "write", "capture", "write_cid"))
RACES: dict[str, Any] = dict(clients=4, ops=8, kinds=("unsafe_write", "write", "read"), addresses=(0,))

#: bug -> (strategy, search budget, check that must report it, words its reason must contain)
PLANTED: dict[str, tuple[Any, int, str, str]] = {
    "ack_before_persist": (schedules(), 100, "wor.paxos", "not durable"),
    "reuse_capture_id": (schedules(), 200, "wor.paxos", "fresh ballot"),
    "serve_trimmed": (schedules(**TRIMS), 200, "trim", "trimmed segment"),
    "read_without_repair": (seeded_schedules(**RACES), 400, "wor.paxos", "no quorum"),
    "arbitrary_adopt": (seeded_schedules(**RACES), 600, "wor.paxos", "highest ballot"),
}


def violations(schedule: Schedule, bugs: Bugs = NO_BUGS) -> list[dict[str, Any]]:
    return check_trace(simulate(schedule, bugs).events).violations


def _report(schedule: Schedule, found: list[dict[str, Any]]) -> str:
    v = found[0]
    return "\n".join([schedule.describe(), f"{v['check']}: {v['reason']}", *v["excerpt"]])


# -- the correct implementation ----------------------------------------------------------------


@pytest.mark.campaign
@settings(max_examples=40, **SEARCH)  # type: ignore[arg-type]
@given(schedules())
def test_correct_implementation_passes_generated_schedules(schedule: Schedule) -> None:
    found = violations(schedule)
    assert not found, _report(schedule, found)


@pytest.mark.campaign
@settings(max_examples=15, **SEARCH)  # type: ignore[arg-type]
@given(st.one_of(schedules(**TRIMS), seeded_schedules(**RACES)))
def test_correct_implementation_passes_the_bug_hunting_profiles(schedule: Schedule) -> None:
    found = violations(schedule)
    assert not found, _report(schedule, found)


# -- planted bugs ------------------------------------------------------------------------------


def _search(bug: str) -> tuple[Schedule, list[dict[str, Any]]]:
    strategy, budget, _check, _words = PLANTED[bug]
    bugs = Bugs(**{bug: True})
    found = find(strategy, lambda s: bool(violations(s, bugs)),
                 settings=settings(max_examples=budget, **SEARCH))  # type: ignore[arg-type]
    return found, violations(found, bugs)


@pytest.mark.campaign
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_found_shrunk_and_explained(bug: str) -> None:
    schedule, found = _search(bug)
    _strategy, _budget, check, words = PLANTED[bug]
    assert found, f"{bug}: the shrunk schedule no longer fails"
    ours = [v for v in found if v["check"] == check]
    assert ours, f"{bug}: expected a {check} violation, got {[v['check'] for v in found]}"
    v = ours[0]
    assert words in v["reason"], v["reason"]
    # Readable: the reason names nodes and values as the trace does, and the excerpt marks the
    # offending event among the events about the same WOR.
    assert any(f"s{i}" in v["reason"] or f"c{i}" in v["reason"] for i in range(5)), v["reason"]
    assert v["excerpt"] and sum(line.startswith(">>") for line in v["excerpt"]) == 1
    assert v["event"] in v["excerpt"][-1]
    # Shrunk: every remaining call is needed (dropping any one of them makes the run pass).
    bugs = Bugs(**{bug: True})
    for i in range(len(schedule.ops)):
        smaller = replace(schedule, ops=schedule.ops[:i] + schedule.ops[i + 1:])
        assert not violations(smaller, bugs), (f"{bug}: call {i} was not needed\n"
                                               + _report(schedule, found))
    assert len(schedule.ops) <= 6, _report(schedule, found)
    # The same schedule passes once the bug is switched off: the checks see the bug.
    assert not violations(schedule), _report(schedule, violations(schedule))


def test_trim_is_final_for_calls_that_start_after_it() -> None:
    # Found by a long campaign of the implementation (check_trace(..., wos=True)) and shrunk:
    # c2's trim met s0's trim and returned OK while its Trims to s1, s2 were lost; c2's capture
    # then got promises from s1 and s2. Fixed: a client that meets TRIMMED first completes the
    # trim at a majority (impl/net/client.py, mirrored by impl/sim/client.py).
    s = Schedule(1755223378, clients=2, loss=0.15, ops=(
        OpSpec(1, "trim", 4), OpSpec(2, "write", 4), OpSpec(2, "trim", 4), OpSpec(2, "capture", 4)))
    events = simulate(s).events
    assert check_trace(events).ok  # the WOR layer's checks pass
    found = [v for v in check_trace(events, wos=True).violations if v["check"] == "trim"]
    assert not found, found[0]["reason"]


# -- the checks are not vacuous ----------------------------------------------------------------


def _correct_trace(seed: int = 3) -> list[dict[str, Any]]:
    s = Schedule(seed, clients=2, ops=(OpSpec(1, "write", 0), OpSpec(2, "write", 0, 3_000),
                                       OpSpec(2, "read", 0), OpSpec(1, "capture", 1),
                                       OpSpec(1, "write_cid", 1)), loss=0.1)
    events = simulate(s).events
    assert check_trace(events).ok
    return events


def test_a_lost_persist_is_noticed() -> None:
    events = _correct_trace()
    i = next(i for i, e in enumerate(events) if e["kind"] == "persist" and e["change"] == "accept")
    node = events[i]["node"]
    rep = check_trace(events[:i] + events[i + 1:])
    assert not rep.ok
    v = rep.violations[0]
    # The acceptor's next event about the WOR (its reply or its next record) reveals a vote
    # that was never durably accepted.
    assert v["check"] == "wor.paxos" and v["reason"].count(node) >= 1, v["reason"]
    assert v["event_index"] >= i and f"{node}" in v["event"]


def test_a_promise_hiding_an_accepted_value_is_noticed() -> None:
    events = copy.deepcopy(_correct_trace())
    i = next(i for i, e in enumerate(events) if e["kind"] == "send"
             and e["msg"]["t"] == "promise" and e["msg"]["accepted"] is not None)
    events[i]["msg"]["accepted"] = events[i]["msg"]["value"] = None
    v = check_trace(events).violations
    assert v and v[0]["check"] == "wor.paxos" and v[0]["event_index"] == i
    assert "accepted nothing" not in v[0]["reason"] and "accepted 'c1.1'" in v[0]["reason"]


def test_an_invented_value_is_noticed() -> None:
    events = copy.deepcopy(_correct_trace())
    i = max(i for i, e in enumerate(events) if e["kind"] == "response" and e["op"] == "read")
    events[i]["result"] = b"forged".hex()
    found = check_trace(events).violations
    assert {"wor.paxos", "linearizability", "wor"} <= {v["check"] for v in found}
    assert any("'forged'" in v["reason"] for v in found)


def test_a_write_with_a_stale_capture_id_is_noticed_by_the_spec() -> None:
    # c1 captures, c2 captures (later), then c1's write with its old capture id returns OK:
    # forge the OK on a trace where the write was really PREEMPTED.
    s = Schedule(1, clients=2, ops=(OpSpec(1, "capture", 0), OpSpec(2, "capture", 0, 500),
                                    OpSpec(1, "write_cid", 0, 2_000)), reorder=False,
                 final_reads=False)
    events = copy.deepcopy(simulate(s).events)
    assert check_trace(events).ok
    w = next(e for e in events if e["kind"] == "response" and e["op"] == "write")
    assert w["result"] == "PREEMPTED"
    w["result"] = "OK"
    kinds = {v["check"] for v in check_trace(events).violations}
    assert "wor" in kinds and "wor.paxos" in kinds


def test_client_nodes_without_send_events_are_refused() -> None:
    events = [e for e in _correct_trace() if not (e["kind"] == "send" and e["node"] == "c2")]
    with pytest.raises(we.ProjectionError, match="c2 recorded calls but no message sends"):
        we.project(events)


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 4)), min_size=2, max_size=20))
def test_ballot_numbering_keeps_the_order_of_ballots(ballots: list[tuple[int, int]]) -> None:
    num = we.Numbering(("s0", "s1", "s2"), ("c1", "c2", "c3", "c4"), (1, 2, 3, 4))
    mapped = [num.ballot(b) for b in ballots]
    for a, ma in zip(ballots, mapped):
        assert num.trace_ballot(ma) == a
        for b, mb in zip(ballots, mapped):
            assert (a < b) == (ma < mb)


# -- campaigns ---------------------------------------------------------------------------------


@pytest.mark.campaign
def test_campaign_of_the_correct_implementation_reports_its_numbers() -> None:
    r = run_campaign(runs=25, seed=11)
    doc = r.as_json()
    assert r.ok and doc["violations"] == [] and doc["trace"] is None
    assert doc["runs"] == 25 and doc["operations"] > 25 * 6  # 6 calls + final reads per run
    assert doc["events"] > 1000 and doc["events_per_second"] > 0
    assert set(doc["faults"]) <= {"kill", "pause", "partition", "loss", "dup", "reorder", "delay"}
    assert sum(doc["faults"].values()) > 0
    assert run_campaign(runs=25, seed=11).as_json()["events"] == doc["events"]  # deterministic


@pytest.mark.campaign
def test_campaign_keeps_a_shrunk_failing_trace_for_replay(tmp_path: Any) -> None:
    r = run_campaign(runs=10, seed=2, bugs=Bugs(ack_before_persist=True), keep_dir=tmp_path)
    assert not r.ok and r.runs == 1  # stops at the first violation
    assert r.trace_path is not None and r.schedule is not None
    events = trace.read(r.trace_path)
    again = check_trace(events)
    assert [v["reason"] for v in again.violations] == [
        v["reason"] for v in r.violations]  # the kept trace shows the same violations
    assert r.violations[0]["schedule"] == r.schedule


def test_campaign_refuses_what_the_simulator_does_not_run() -> None:
    with pytest.raises(ValueError, match="Paxos-WOR only"):
        run_campaign(protocol="chain", runs=1)
    with pytest.raises(ValueError, match="WOR layer only"):
        run_campaign(layer="wos", runs=1)
    with pytest.raises(ValueError, match="unknown fault kind"):
        run_campaign(faults=["earthquake"], runs=1)


@pytest.mark.campaign_full
@pytest.mark.parametrize("profile", [{}, TRIMS, RACES])
def test_long_campaign_of_the_correct_implementation(profile: dict[str, Any]) -> None:
    rng = random.Random(2024)
    for _ in range(1500):
        s = random_schedule(rng, **profile)
        found = violations(s)
        assert not found, _report(s, found)


@pytest.mark.campaign_full
def test_ack_before_persist_breaks_the_client_visible_history_under_crashes() -> None:
    # Beyond the trace-level catch (a reply before the record is durable): crashes in the fsync
    # window lose acknowledged state, which the client-visible checks alone notice (e.g. a
    # write OK, two acceptors killed, then a read EMPTY).
    bugs = Bugs(ack_before_persist=True)

    def visible(s: Schedule) -> bool:
        return any(v["check"] in ("linearizability", "wor") for v in violations(s, bugs))

    found = find(schedules(addresses=(0,), kinds=("write", "read", "capture", "write_cid"),
                           faults=("kill", "reorder", "loss")), visible,
                 settings=settings(max_examples=3000, **SEARCH))  # type: ignore[arg-type]
    assert visible(found) and not violations(found)
    assert any(f.kind == "kill" for f in found.faults)


@pytest.mark.campaign_full
@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_long_campaign_finds_every_bug(bug: str) -> None:
    r = run_campaign(runs=3000, seed=7, bugs=Bugs(**{bug: True}), shrink=False,
                     keep_dir="/tmp/wormspace-sim")
    assert not r.ok, f"{bug}: not found in {r.runs} runs"

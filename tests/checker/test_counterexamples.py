"""Violations come back as shortest traces that really lead to the violating state."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from wormspace.checker.explore import check
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.tcommit import consistent

BROKEN = TwoPhase(rm=3, bug="commit_without_all_prepared")


def _shortest_distance(model: TwoPhase, bad: Any) -> int:
    """Independent oracle: BFS distance (in states) from init to the nearest bad state."""
    start = next(iter(model.init_states()))
    dist = {start: 1}
    queue = deque([start])
    while queue:
        s = queue.popleft()
        if bad(s):
            return dist[s]
        for a in model.actions():
            for _p, t in a.successors(s):
                if t not in dist:
                    dist[t] = dist[s] + 1
                    queue.append(t)
    raise AssertionError("no bad state reachable")


def _replays(model: TwoPhase, trace: list[Any]) -> bool:
    """Each step of the trace is a step of the model, by the action it names."""
    assert trace[0].state in list(model.init_states())
    actions = {a.name: a for a in model.actions()}
    for prev, step in itertools.pairwise(trace):
        succ = [t for _p, t in actions[step.action].successors(prev.state)]
        if step.state not in succ:
            return False
    return True


def test_broken_twophase_violates_consistency_with_a_shortest_trace() -> None:
    r = check(BROKEN, refinement=False)
    assert r.result == "invariant" and r.violated == "TCConsistent"
    assert r.exit_code == 12
    assert not consistent(r.trace[-1].state[0])
    assert all(consistent(step.state[0]) for step in r.trace[:-1])
    assert len(r.trace) == _shortest_distance(BROKEN, lambda s: not consistent(s[0]))
    assert _replays(BROKEN, r.trace)


def test_broken_twophase_violates_refinement_with_spec_view() -> None:
    r = check(BROKEN)
    assert r.result == "refinement"
    assert r.exit_code == 12
    assert _replays(BROKEN, r.trace)
    # The spec's view is shown beside each state.
    assert all(step.spec_variables is not None for step in r.trace)
    # The last step commits an RM while another is still working: TCommit forbids it.
    last = r.trace[-1].state[0]
    assert 2 in last and 0 in last
    assert "tcommit" in r.message


def test_correct_twophase_has_no_counterexample() -> None:
    r = check(TwoPhase(rm=3))
    assert r.ok and r.trace == []


def test_trace_labels_name_actions_and_parameters() -> None:
    r = check(BROKEN, refinement=False)
    assert r.trace[0].label == "Initial predicate"
    assert r.trace[1].label.startswith("RMPrepare(rm=r")
    assert r.trace[1].params == {"rm": r.trace[1].label[len("RMPrepare(rm="):-1]}

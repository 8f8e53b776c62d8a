"""--workers N explores with N processes and must count exactly as one worker does."""

from __future__ import annotations

import pytest
from wormspace.checker.explore import check
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.tcommit import TCommit


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("rm", [3, 5])
def test_parallel_counts_equal_sequential(rm: int, workers: int) -> None:
    one = check(TwoPhase(rm=rm))
    many = check(TwoPhase(rm=rm), workers=workers)
    assert many.result == "ok"
    assert (many.distinct, many.generated, many.depth) == (one.distinct, one.generated, one.depth)
    assert many.levels == one.levels
    # Per-action generated counts are exact; the distinct split may differ, its total may not.
    assert {k: v[1] for k, v in many.coverage.items()} == {k: v[1] for k, v in one.coverage.items()}
    assert sum(v[0] for v in many.coverage.values()) == many.distinct - 1


def test_parallel_with_symmetry_and_constraint_free_tcommit() -> None:
    assert check(TwoPhase(rm=3), symmetry=True, workers=2).distinct == 80
    r = check(TCommit(rm=3), deadlock=False, workers=2)
    assert (r.distinct, r.generated, r.depth) == (34, 94, 7)


def test_parallel_finds_shortest_violations_with_valid_traces() -> None:
    broken = TwoPhase(rm=3, bug="commit_without_all_prepared")
    one = check(broken, refinement=False)
    many = check(broken, refinement=False, workers=2)
    assert many.result == "invariant" and many.violated == "TCConsistent"
    assert len(many.trace) == len(one.trace)
    actions = {a.name: a for a in broken.actions()}
    for prev, step in zip(many.trace, many.trace[1:]):
        assert step.state in [t for _p, t in actions[step.action].successors(prev.state)]
    ref = check(broken, workers=2)
    assert ref.result == "refinement" and len(ref.trace) == len(check(broken).trace)


def test_parallel_deadlock() -> None:
    r = check(TCommit(rm=3), workers=2)
    assert r.result == "deadlock" and len(r.trace) == 4

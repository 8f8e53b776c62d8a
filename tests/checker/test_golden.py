"""The checker's counts against TLC's (../shared/design/GOLDEN.md), on the same specifications."""

from __future__ import annotations

import itertools

import pytest
from wormspace.checker.explore import check
from wormspace.model.examples.twophase import TwoPhase
from wormspace.spec.tcommit import TCommit


def test_tcommit_3_matches_tlc_with_deadlock_check_off() -> None:
    r = check(TCommit(rm=3), deadlock=False)
    assert r.result == "ok"
    assert (r.distinct, r.generated, r.depth) == (34, 94, 7)


def test_tcommit_reports_deadlock_when_the_check_is_on() -> None:
    r = check(TCommit(rm=3))
    assert r.result == "deadlock"
    assert r.exit_code == 11
    # The final state has no successor, and every RM has decided there.
    last = r.trace[-1].state
    assert all(x in (2, 3) for x in last)


@pytest.mark.parametrize(
    "rm, distinct, generated, depth",
    [(3, 288, 1146, 11), (4, 1568, 8258, 14), (5, 8832, 58146, 17), (6, 50816, 402306, 20)],
)
def test_twophase_matches_tlc(rm: int, distinct: int, generated: int, depth: int) -> None:
    r = check(TwoPhase(rm=rm))
    assert r.result == "ok"
    assert (r.distinct, r.generated, r.depth) == (distinct, generated, depth)
    assert r.left_on_queue == 0
    assert sum(r.levels) == distinct and len(r.levels) == depth


def test_twophase_symmetry_matches_tlc() -> None:
    r = check(TwoPhase(rm=3), symmetry=True)
    assert r.result == "ok"
    assert r.distinct == 80


def _orbit_count(model: TwoPhase) -> int:
    """Independent oracle: explore without symmetry, then count orbits by brute force."""
    states = set()
    frontier = list(model.init_states())
    states.update(frontier)
    while frontier:
        nxt = []
        for s in frontier:
            for a in model.actions():
                for _p, t in a.successors(s):
                    if t not in states:
                        states.add(t)
                        nxt.append(t)
        frontier = nxt
    n = model.rm

    def permute(perm: tuple[int, ...], s):  # type: ignore[no-untyped-def]
        rms, tm, prepared, msgs = s
        new_rms = [0] * n
        new_prep = 0
        new_msgs = msgs & ~((1 << n) - 1)
        for i in range(n):
            j = perm[i]
            new_rms[j] = rms[i]
            new_prep |= ((prepared >> i) & 1) << j
            new_msgs |= ((msgs >> i) & 1) << j
        return (tuple(new_rms), tm, new_prep, new_msgs)

    perms = list(itertools.permutations(range(n)))
    return len({min(permute(p, s) for p in perms) for s in states})


@pytest.mark.parametrize("rm", [2, 3, 4])
def test_symmetry_is_exact(rm: int) -> None:
    m = TwoPhase(rm=rm)
    assert check(m, symmetry=True).distinct == _orbit_count(m)


def test_twophase_refines_tcommit() -> None:
    r = check(TwoPhase(rm=4))
    assert r.refinement_checked == "tcommit"
    assert r.result == "ok"


def test_symmetry_gives_fewer_states_yet_the_same_depth() -> None:
    full, sym = check(TwoPhase(rm=5)), check(TwoPhase(rm=5), symmetry=True)
    assert sym.distinct < full.distinct
    assert sym.depth == full.depth

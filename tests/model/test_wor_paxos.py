"""Paxos-WOR: exhaustive checks of invariants and refinement, and the seeded-bug mutants."""

import pytest
from wormspace.checker.explore import check
from wormspace.model.wor.paxos import BUGS, PaxosWOR


def test_small_config_holds_invariants_and_refines_the_spec() -> None:
    r = check(PaxosWOR(acceptors=3, clients=1, values=2, rounds=1))
    assert r.result == "ok", r.message
    assert r.refinement_checked == "wor"


@pytest.mark.slow
def test_default_config_with_symmetry() -> None:
    r = check(PaxosWOR(clients=2, values=2, rounds=1, unsafe=False), symmetry=True)
    assert r.result == "ok", r.message
    plain = check(PaxosWOR(clients=2, values=2, rounds=1, unsafe=False))
    assert plain.result == "ok" and r.distinct < plain.distinct


def test_canonical_is_a_valid_state_and_idempotent() -> None:
    m = PaxosWOR(clients=2, values=2, unsafe=False)
    s = next(iter(m.init_states()))
    for a in m.actions():
        for _p, t in a.successors(s):
            c = m.canonical(t)
            assert m.canonical(c) == c
            assert isinstance(c[2], frozenset)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_mutant_is_caught_with_a_short_counterexample(bug: str) -> None:
    m = PaxosWOR(clients=2, values=2, rounds=1, unsafe=False, bug=bug)
    r = check(m)
    assert r.result in ("invariant", "refinement"), bug
    assert 2 <= len(r.trace) <= 14
    # The same mutant also breaks a safety invariant in the model's own vocabulary.
    inv = check(m, refinement=False)
    assert inv.result == "invariant", bug
    last = inv.trace[-1].state
    assert not m.invariants()[inv.violated](last)
    assert len(inv.trace) <= 16

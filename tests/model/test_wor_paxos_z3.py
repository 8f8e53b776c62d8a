"""Paxos-WOR's Z3 proof: it closes in EPR, each seeded bug breaks an obligation, and the
encoding conforms to the explicit model (for the mutants too)."""

import pytest
from wormspace.checker.prove import run_suite
from wormspace.model.wor.paxos import BUGS
from wormspace.model.wor.paxos_z3 import conformance, proof_suite

#: For each seeded bug, an obligation it breaks (measured; see docs/layers/wor.md).
BROKEN = {
    "accept_below_promise": "Accept => choosable",
    "ignore_promised_values": "Write => choosable",
    "read_without_repair": "ReadDecide => read_is_chosen",
    "half_quorum": "Write => choosable",
    "shared_ballots": "Write => past_ballots",
    "forget_promise": "Restart => promise_joined",
}


@pytest.fixture(scope="module")
def proof() -> object:
    return run_suite(proof_suite())


def test_proof_closes_and_is_stratified(proof: object) -> None:
    r = proof
    assert r.ok, r.summary  # type: ignore[attr-defined]
    assert r.alternation_cycle == []  # type: ignore[attr-defined]
    names = {o.name for o in r.obligations}  # type: ignore[attr-defined]
    # One obligation per (action, conjunct), plus init and the safety properties.
    for must in ("init -> choosable", "Write => choosable", "Accept => choosable",
                 "ReadDecide => read_is_chosen", "WriteDone => ok_is_chosen",
                 "inv -> AtMostOneChosen", "inv -> Lemma1", "Accept => Theorem1"):
        assert must in names
    assert set(BROKEN.values()) <= names


def test_bug_table_covers_every_bug() -> None:
    assert set(BROKEN) == set(BUGS)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_bug_breaks_an_obligation_with_a_cti(bug: str) -> None:
    r = run_suite(proof_suite(bug=bug), only={BROKEN[bug]})
    [ob] = r.obligations
    assert ob.verdict == "cti", (bug, ob.verdict)
    assert "m2a" in ob.cti and "node0" in ob.cti  # printed in the encoding's names


def test_conformance_holds_on_every_reachable_state() -> None:
    r = conformance()  # 3 acceptors, 1 client, 2 values, 1 round: exhaustive
    assert r.ok, r.detail
    assert r.exhaustive and r.states == 201
    assert set(r.actions) >= {"Capture", "Write", "Promise", "Accept", "ReadDecide"}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_conformance_holds_for_the_mutants(bug: str) -> None:
    # Two clients, so that shared ballots matter; the first states in BFS order.
    r = conformance(clients=2, values=1, bug=bug, max_states=12)
    assert r.ok, r.detail


def test_conformance_catches_an_encoding_of_another_system() -> None:
    """An encoding that allows the unsafe write, against a model that does not: the formula
    allows steps the model never takes."""
    from wormspace.checker.conformance import check_conformance
    from wormspace.model.wor import paxos as px
    from wormspace.model.wor.paxos_z3 import PaxosEncoding, project, universe

    m = px.PaxosWOR(clients=1, unsafe=False)
    r = check_conformance(m, lambda V: PaxosEncoding(V, unsafe=True), universe(m),
                          lambda s: project(m, s), max_states=50)
    assert not r.ok
    assert {(x.kind, x.action) for x in r.mismatches} == {("symbolic-not-explicit",
                                                           "UnsafeWrite")}
    assert "m2a +[(0, " in r.mismatches[0].detail


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(BUGS))
def test_full_mutant_suite_fails_and_conforms_exhaustively(bug: str) -> None:
    r = run_suite(proof_suite(bug=bug), timeout_ms=20_000)
    assert not r.ok and BROKEN[bug] in {o.name for o in r.failed}
    c = conformance(clients=2 if bug == "shared_ballots" else 1, values=1 if bug ==
                    "shared_ballots" else 2, bug=bug)
    assert c.ok and c.exhaustive, c.detail

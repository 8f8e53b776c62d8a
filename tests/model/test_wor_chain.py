"""Chain-WOR: exhaustive check with refinement, symmetry, crashes, its Z3 proof and
conformance."""

import pytest
from wormspace.checker.explore import check
from wormspace.checker.prove import run_suite
from wormspace.model.wor.chain import CAPTURING, WRITING, ChainWOR
from wormspace.model.wor.chain_z3 import conformance, proof_suite


def test_default_config_holds_invariants_and_refines_the_spec() -> None:
    r = check(ChainWOR())
    assert r.result == "ok", r.message
    assert r.refinement_checked == "wor"
    assert r.distinct == 5571


def test_value_symmetry_is_exact_and_reduces() -> None:
    m = ChainWOR(clients=1)
    plain, sym = check(m), check(m, symmetry=True)
    assert sym.result == "ok" and sym.distinct < plain.distinct
    for s in [next(iter(m.init_states()))]:
        assert m.canonical(m.canonical(s)) == m.canonical(s)


def test_a_crashed_node_blocks_writes_but_not_safety() -> None:
    m = ChainWOR(nodes=2, clients=1, values=1)
    acts = {a.name: a for a in m.actions()}
    s = next(iter(m.init_states()))
    s = next(t for _p, t in acts["Capture"].successors(s))
    while s[2][0][0] == CAPTURING:
        s = next(t for _p, t in acts["CaptureStep"].successors(s))
    s = next(t for _p, t in acts["Write"].successors(s))
    s = next(t for _p, t in acts["WriteStep"].successors(s))  # the head has the value
    down = next(t for p, t in acts["Crash"].successors(s) if p == (1,))  # the tail crashes
    assert down[2][0][0] == WRITING
    assert list(acts["WriteStep"].successors(down)) == []  # blocked at the tail
    assert all(inv(down) for inv in m.invariants().values())


def test_proof_closes() -> None:
    for nodes in (2,):
        r = run_suite(proof_suite(nodes=nodes))
        assert r.ok, r.summary
        assert r.alternation_cycle == []


def test_dropping_a_conjunct_gives_a_cti() -> None:
    suite = proof_suite()
    full = suite.invariant
    suite.invariant = lambda at: {k: f for k, f in full(at).items() if k != "writer_has_value"}
    r = run_suite(suite, only={"WriteStep => writer_carries"})
    assert [o.verdict for o in r.obligations] == ["cti"]
    assert "phase(client0) = WRITING" in r.obligations[0].cti


def test_conformance_holds() -> None:
    r = conformance()
    assert r.ok and r.exhaustive, r.detail
    r2 = conformance(clients=2, max_states=60)
    assert r2.ok, r2.detail


@pytest.mark.slow
def test_proof_closes_for_three_nodes_and_conformance_with_two_clients() -> None:
    assert run_suite(proof_suite(nodes=3)).ok
    r = conformance(clients=2)
    assert r.ok and r.exhaustive, r.detail

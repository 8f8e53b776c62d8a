"""WormPaxos over the atomic WormSpace: the default configuration (pinned counts, every action
taken, refinement to the SMR spec), each seeded mutant caught by the checker with a shortest
trace and breaking a named proof obligation with a CTI, the Z3 proof, its two-way conformance
with the explicit model, liveness with its lassos, and the size of the model code."""

import ast
import io
import tokenize
from pathlib import Path

import pytest
from wormspace.checker.explore import check
from wormspace.checker.liveness import check_liveness
from wormspace.checker.model import ParameterError
from wormspace.checker.prove import run_suite
from wormspace.model.apps import wormpaxos as wp
from wormspace.model.apps.wormpaxos import BUGS, WormPaxos
from wormspace.model.apps.wormpaxos_z3 import conformance, proof_suite

#: Per mutant: the model parameters it is checked with; the checker's verdict and violated
#: name (with refinement); the key invariant it breaks without refinement or the helper
#: invariants; and the proof obligation it breaks (measured; see docs/layers/wormpaxos.md).
CAUGHT = {
    "no_hole_filling": ({}, ("refinement", "Fill"), "ReplicasAgree",
                        "Fill => applied_is_written"),
    "no_capture": ({}, ("invariant", "AckedPrefixChosen"), "RealTimeOrder",
                   "Alloc => owning_prefix"),
    "ack_before_apply": ({"policy": "rotating", "size": 1}, ("refinement", "Respond"),
                         "RealTimeOrder", "Respond => done_prefix"),
}
#: The action each mutant changes.
MUTATED = {"no_hole_filling": "Fill", "no_capture": "Alloc", "ack_before_apply": "Respond"}
KEY = ["ReplicasAgree", "AppliedWasProposed", "ChosenOnce", "RealTimeOrder", "LeaderOwnsSegment"]


def test_default_configuration_holds_refines_smr_and_takes_every_action() -> None:
    r = check(WormPaxos())
    assert r.result == "ok", r.message
    assert r.refinement_checked == "smr"
    assert (r.distinct, r.generated, r.depth) == (20_572, 77_753, 26)
    for name, (_distinct, generated) in r.coverage.items():
        assert generated > 0, f"{name} never enabled"
    # The takeover ran: holes were captured and filled, and late proposals landed (Settle).
    assert {"Capture", "Fill", "Settle", "Respond"} <= {n for n, c in r.coverage.items() if c[0]}


def test_rotating_policy_holds_and_refines_smr() -> None:
    r = check(WormPaxos(policy="rotating", size=1))
    assert r.result == "ok", r.message
    assert (r.distinct, r.depth) == (10_672, 24)
    assert r.coverage["Skip"][0] > 0 and r.coverage["Capture"][0] > 0  # skips and revocations


def test_every_seeded_bug_is_tested() -> None:
    assert set(CAUGHT) == set(BUGS)


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_is_caught_by_the_checker_with_a_shortest_trace(bug: str) -> None:
    params, (verdict, name), _key, _ob = CAUGHT[bug]
    r = check(WormPaxos(bug=bug, **params))
    assert (r.result, r.violated) == (verdict, name), r.message
    assert 5 <= len(r.trace) <= 9
    # The same bug run without it is safe at the same depth: the trace is the bug's doing.
    assert check(WormPaxos(**params)).result == "ok"


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_breaks_a_key_safety_property(bug: str) -> None:
    """Without refinement and the helper invariants, the key property itself fails."""
    params, _caught, key, _ob = CAUGHT[bug]
    r = check(WormPaxos(bug=bug, **params), refinement=False, invariants=KEY)
    assert (r.result, r.violated) == ("invariant", key), r.message


def test_no_hole_filling_lets_replicas_disagree() -> None:
    r = check(WormPaxos(bug="no_hole_filling"), refinement=False, invariants=["ReplicasAgree"])
    last = r.trace[-1].state
    firsts = {a[0] for _ph, _seg, _cur, a in last[1] if a}
    assert firsts == {1, WormPaxos().noop}  # one replica applied c1 where the other took NO-OP
    # The new leader's capture did not stop the old one: it still wrote its command there.
    assert any(t.label.startswith("Fill(p=1, a=0, ret=read-as-noop") for t in r.trace)
    assert r.trace[-1].variables["log"]["a0"].startswith("c1")


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ParameterError, match="policy"):
        WormPaxos(policy="round-robin")
    with pytest.raises(ParameterError, match="unknown bug"):
        WormPaxos(bug="nope")
    with pytest.raises(ParameterError, match="leaders <= procs"):
        WormPaxos(procs=2, leaders=3)
    with pytest.raises(ParameterError, match="rotating"):
        WormPaxos(policy="rotating", leaders=1)
    with pytest.raises(ParameterError, match="mistake of the rotating policy"):
        WormPaxos(bug="ack_before_apply")


# -- the proof -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sticky_proof() -> object:
    return run_suite(proof_suite())


def test_sticky_proof_closes_and_is_stratified(sticky_proof: object) -> None:
    r = sticky_proof
    assert r.ok, r.summary  # type: ignore[attr-defined]
    assert r.alternation_cycle == []  # type: ignore[attr-defined]
    names = {o.name for o in r.obligations}  # type: ignore[attr-defined]
    for must in ("inv -> ReplicasAgree", "inv -> RealTimeOrder", "inv -> AppliedWasProposed",
                 "Settle => WriteOnce", "Propose => real_time", "Fill => applied_is_written",
                 "Alloc => owning_prefix"):
        assert must in names


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_breaks_its_obligation_with_a_cti(bug: str) -> None:
    params, _caught, _key, ob = CAUGHT[bug]
    r = run_suite(proof_suite(policy=params.get("policy", "sticky"), bug=bug), only={ob})
    [o] = r.obligations
    assert o.verdict == "cti", (bug, o.verdict)
    assert "val" in o.cti and "proc0" in o.cti  # printed in the encoding's names


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_the_broken_obligation_holds_without_the_bug(bug: str) -> None:
    params, _caught, _key, ob = CAUGHT[bug]
    r = run_suite(proof_suite(policy=params.get("policy", "sticky")), only={ob})
    assert [o.verdict for o in r.obligations] == ["proved"]


def test_proof_suite_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="policy"):
        proof_suite(policy="x")
    with pytest.raises(ValueError, match="bug"):
        proof_suite(bug="x")
    with pytest.raises(ValueError, match="sticky policy"):
        proof_suite(policy="rotating", bug="no_capture")


@pytest.mark.slow
def test_rotating_proof_closes() -> None:
    r = run_suite(proof_suite(policy="rotating"))
    assert r.ok and not r.alternation_cycle, r.summary


# -- conformance ---------------------------------------------------------------------------------

def test_conformance_both_ways_covers_every_action() -> None:
    # The first 160 states in BFS order: deep enough that a hole is captured and filled and a
    # preempted proposal lands (Settle is first enabled at the 154th state).
    r = conformance(max_states=160)
    assert r.ok, r.detail
    assert r.states == 160 and r.steps > 400
    assert set(r.actions) == {a.name for a in WormPaxos().actions()}


def test_conformance_both_ways_for_the_rotating_policy() -> None:
    r = conformance(policy="rotating", max_states=120)
    assert r.ok, r.detail
    assert {"Elect", "Alloc", "CaptureOwn", "Propose", "Skip", "Learn"} <= set(r.actions)


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_conformance_holds_for_the_mutants(bug: str) -> None:
    params, *_rest = CAUGHT[bug]
    r = conformance(policy=params.get("policy", "sticky"), bug=bug, max_states=60)
    assert r.ok, r.detail
    assert r.actions.get(MUTATED[bug], 0) > 0  # the mutated action was compared


def test_conformance_catches_an_encoding_of_another_system() -> None:
    """The no_capture encoding against the correct model: the formula lets a new leader own
    its segment at once, which the model never does."""
    from wormspace.checker.conformance import check_conformance
    from wormspace.model.apps.wormpaxos_z3 import WormPaxosEncoding, project, universe

    m = WormPaxos(commands=1, size=1)
    r = check_conformance(m, lambda V: WormPaxosEncoding(V, bug="no_capture"), universe(m),
                          lambda s: project(m, s), max_states=40)
    assert not r.ok
    assert {(x.kind, x.action) for x in r.mismatches} == {("symbolic-not-explicit", "Alloc"),
                                                          ("explicit-not-symbolic", "Alloc")}


@pytest.mark.slow
@pytest.mark.parametrize("policy", wp.POLICIES)
def test_conformance_exhaustive(policy: str) -> None:
    r = conformance(policy=policy)
    assert r.ok and r.exhaustive, r.detail


# -- liveness ------------------------------------------------------------------------------------

def test_progress_holds_under_a_stable_leader() -> None:
    r = check_liveness(WormPaxos(leaders=1, crashes=0))
    assert r.result == "ok" and r.holds == ["AllCommandsApplied", "ChosenIsApplied"]


def test_progress_fails_without_fairness_by_stuttering() -> None:
    r = check_liveness(WormPaxos(leaders=1, crashes=0), fairness=[])
    assert (r.result, r.violated, r.loop_label) == ("liveness", "AllCommandsApplied", "Stuttering")
    assert len(r.trace) == 1


def test_a_second_contender_preempts_and_the_proposal_is_lost() -> None:
    r = check_liveness(WormPaxos(leaders=2, crashes=0))
    assert (r.result, r.violated) == ("liveness", "AllCommandsApplied")
    labels = [t.label for t in r.trace]
    assert sum(x.startswith("Alloc(") and "won=True" in x for x in labels) == 2
    assert any("PREEMPTED" in x or "ALREADY_WRITTEN" in x for x in labels)


def test_chosen_commands_reach_every_live_replica_despite_a_crash() -> None:
    m = WormPaxos()  # two contenders, one crash
    prop = [p for p in m.properties() if p.name == "ChosenIsApplied"]
    assert check_liveness(m, prop).holds == ["ChosenIsApplied"]


def test_rotating_revokers_can_duel_forever() -> None:
    m = WormPaxos(policy="rotating", size=1)
    prop = [p for p in m.properties() if p.name == "ChosenIsApplied"]
    r = check_liveness(m, prop)
    assert (r.result, r.violated) == ("liveness", "ChosenIsApplied")
    cycle = [t.label for t in r.trace[r.loop:]] + [r.loop_label]
    assert any(x.startswith("Fill(") and "PREEMPTED" in x for x in cycle)
    assert any(x.startswith("Capture(") for x in cycle)


# -- the size of the model -----------------------------------------------------------------------

def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring (of the
    module, a class or a function). The rule used for the counts in the docs."""
    src = path.read_text()
    docs: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docs.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines: set[int] = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docs)


def test_line_counter_skips_docstrings_comments_and_blanks(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text('"""doc\nmore"""\n\n# c\ndef f(x):\n    """d"""\n    return (x +\n            1)  # c\n')
    assert code_lines(f) == 3


def test_the_model_is_a_few_hundred_lines() -> None:
    n = code_lines(Path(wp.__file__))
    assert 150 <= n <= 350, n

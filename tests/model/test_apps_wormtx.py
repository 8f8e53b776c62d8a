"""WormTX over the atomic WOS, both variants: the default configurations (pinned counts, every
action taken, refinement to TCommit on every edge), each seeded mutant caught by the checker
with a shortest trace and breaking a named proof obligation, the Z3 proof and its two-way
conformance with the explicit model, and non-blocking termination under the model's fairness,
with a lasso for each plausible mistake in that fairness."""

from __future__ import annotations

import pytest
from wormspace.checker.conformance import Universe, check_conformance
from wormspace.checker.explore import check
from wormspace.checker.liveness import check_liveness, weak
from wormspace.checker.prove import run_suite
from wormspace.model.apps import wormtx as tx
from wormspace.model.apps.wormtx import BUGS, WormTX
from wormspace.model.apps.wormtx_z3 import conformance, encoding, project, proof_suite
from wormspace.spec.tcommit import ABORTED, COMMITTED, PREPARED, WORKING

E3_ACTIONS = {"CaptureVote", "Vote", "Notify", "Timeout", "ForceNo", "Settle", "Finished"}
A8_ACTIONS = {"Prepare", "ChooseToAbort", "TMCommit", "TMAbort", "Takeover", "ReadDecision",
              "Settle", "Finished"}


@pytest.mark.parametrize("variant, counts, actions", [
    ("E3", (30_707, 207_411, 20), E3_ACTIONS),
    ("A8", (370, 1_435, 10), A8_ACTIONS),
])
def test_default_configuration_holds_and_refines_tcommit(variant: str, counts: tuple[int, ...],
                                                          actions: set[str]) -> None:
    r = check(WormTX(variant=variant))
    assert r.result == "ok", r.message
    assert r.refinement_checked == "tcommit"
    assert (r.distinct, r.generated, r.depth) == counts
    assert set(r.coverage) == actions
    assert all(generated > 0 for _new, generated in r.coverage.values()), r.coverage


def test_precaptured_votes_need_no_capture_step() -> None:
    m = WormTX(rm=2, precaptured=True)
    assert "CaptureVote" not in {a.name for a in m.actions()}
    r = check(m)
    assert r.result == "ok", r.message
    assert all(generated > 0 for _new, generated in r.coverage.values()), r.coverage


def test_timeouts_of_the_interface_keep_safety() -> None:
    for variant in ("E3", "A8"):
        r = check(WormTX(rm=2, variant=variant, flaky=True))
        assert r.result == "ok", r.message


def test_a_chosen_yes_survives_a_forced_no() -> None:
    # First write wins: a vote WOR holding YES is never overturned by a timed-out peer, so
    # every RM that hears it hears YES. Walk a schedule by hand: r2 captures r1's vote WOR
    # (r1's YES is then only proposed), the proposal lands, and r2's forced NO does not.
    m = WormTX(rm=2)
    acts = {a.name: a for a in m.actions()}

    def step(s: tx.State, name: str, params: tuple[str, ...]) -> tx.State:
        found = [t for p, t in acts[name].successors(s) if p == params]
        assert len(found) == 1, (name, params, found)
        return found[0]

    s = next(iter(m.init_states()))
    for name, params in [("CaptureVote", ("r1",)), ("CaptureVote", ("r2",)), ("Vote", ("r2", "YES")),
                         ("Timeout", ("r2", "r1")), ("Vote", ("r1", "YES")),
                         ("Settle", ("r1", "YES")), ("ForceNo", ("r2", "r1"))]:
        s = step(s, name, params)
    assert s[3][0][2][0][0] == tx.YES
    for name, params in [("Notify", ("r1", "r1", "YES")), ("Notify", ("r1", "r2", "YES"))]:
        s = step(s, name, params)
    assert s[0] == (COMMITTED, PREPARED)


#: How each mutant is caught: the checker's verdict, the violated name, the shortest trace's
#: length (states), and the proof obligation that fails.
CAUGHT = {
    "timeout_overwrites_yes": ("invariant", "HeardIsWritten", 8,
                               "ForceNo => committed_saw_all_yes"),
    "partial_commit": ("refinement", "Notify", 4, "Notify => committed_saw_all_yes"),
    "empty_read_aborts": ("refinement", "ReadDecision", 7, "ReadDecision => aborted_is_justified"),
}


def test_every_seeded_bug_is_tested() -> None:
    assert set(BUGS) == set(CAUGHT)


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_is_caught_by_the_checker_with_a_shortest_trace(bug: str) -> None:
    verdict, name, length, _ob = CAUGHT[bug]
    r = check(WormTX(variant=BUGS[bug][0], bug=bug))
    assert (r.result, r.violated, len(r.trace)) == (verdict, name, length), r.message
    # And the damage is real: some RM commits while another aborts.
    r = check(WormTX(variant=BUGS[bug][0], bug=bug), invariants=["Consistent"], refinement=False)
    assert (r.result, r.violated) == ("invariant", "Consistent")
    last = r.trace[-1].state[0]
    assert COMMITTED in last and ABORTED in last


def test_proof_suite_proves_every_obligation_in_epr() -> None:
    for variant in ("E3", "A8"):
        rep = run_suite(proof_suite(variant=variant))
        assert rep.ok, [(o.name, o.cti) for o in rep.failed]
        assert not rep.alternation_cycle
        assert {"inv -> Consistent", "inv -> CommitNeedsAllPrepared"} <= {o.name for o in rep.obligations}


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_breaks_a_proof_obligation(bug: str) -> None:
    rep = run_suite(proof_suite(variant=BUGS[bug][0], bug=bug), minimize=False)
    failed = {o.name: o for o in rep.failed}
    assert CAUGHT[bug][3] in failed, sorted(failed)
    assert failed[CAUGHT[bug][3]].verdict == "cti" and failed[CAUGHT[bug][3]].cti


@pytest.mark.parametrize("cfg", [dict(variant="E3"), dict(variant="E3", precaptured=True),
                                 dict(variant="A8"), dict(variant="A8", flaky=True)])
def test_encoding_has_the_explicit_models_transitions(cfg: dict[str, object]) -> None:
    rep = conformance(rm=2, **cfg)  # type: ignore[arg-type]
    assert rep.ok and rep.exhaustive, rep.detail
    names = E3_ACTIONS if cfg["variant"] == "E3" else A8_ACTIONS
    if cfg.get("precaptured"):
        names = names - {"CaptureVote"}
    assert set(rep.actions) == names


def test_conformance_sees_a_model_the_encoding_does_not_describe() -> None:
    m = WormTX(rm=2, bug="partial_commit")
    rep = check_conformance(m, encoding("E3"), Universe({"rm": 2}), lambda s: project(m, s),
                            max_mismatches=1)
    assert not rep.ok
    assert (rep.mismatches[0].kind, rep.mismatches[0].action) == ("explicit-not-symbolic", "Notify")


@pytest.mark.parametrize("cfg", [dict(variant="E3"), dict(variant="A8", flaky=True)])
def test_every_prepared_rm_decides_under_the_models_fairness(cfg: dict[str, object]) -> None:
    m = WormTX(**cfg)  # type: ignore[arg-type]
    r = check_liveness(m)
    assert r.holds == [p.name for p in m.properties()] and not r.trace


#: Plausible mistakes, each a fairness the protocol does not survive: the lasso's cycle.
MISTAKES = {
    # RMs never time out on a stalled peer: the blocking of two-phase commit.
    "no timeouts": (2, ["Notify", "ForceNo", "Settle"]),
    # Notifications may be withheld forever.
    "no notification fairness": (2, ["Timeout", "ForceNo", "Settle"]),
    # Two RMs force the same stalled peer and preempt each other forever (dueling proposers).
    "no settle fairness": (3, ["Notify", "Timeout", "ForceNo"]),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_missing_fairness_assumption_gives_a_lasso(mistake: str) -> None:
    rm, fair = MISTAKES[mistake]
    r = check_liveness(WormTX(rm=rm), fairness=[weak(a) for a in fair])
    assert r.trace and r.loop is not None
    assert r.violated.startswith("PreparedDecides_")
    cycle = r.trace[r.loop:]
    i = int(r.violated.rsplit("_r", 1)[1]) - 1
    assert all(step.state[0][i] == PREPARED for step in cycle)  # never decides
    assert any(WORKING in step.state[0] for step in cycle)  # a peer stalled before voting
    if mistake == "no settle fairness":
        taken = {step.action for step in cycle[1:]} | {r.loop_action}
        assert taken == {"Timeout", "ForceNo"}, taken


@pytest.mark.parametrize("kwargs, text", [
    (dict(variant="E4"), "variant must be one of E3, A8"),
    (dict(rm=0), "rm must be between 1 and 8"),
    (dict(bug="nope"), "unknown bug 'nope'"),
    (dict(bug="empty_read_aborts"), "bug 'empty_read_aborts' is a bug of variant A8"),
    (dict(variant="A8", precaptured=True), "precaptured applies to variant E3"),
    (dict(tms=3), "tms applies to variant A8"),
])
def test_bad_parameters_are_named(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        WormTX(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, text", [
    (dict(variant="E4"), "variant must be one of E3, A8"),
    (dict(bug="nope"), "unknown bug 'nope'"),
    (dict(variant="A8", bug="partial_commit"), "bug 'partial_commit' is a bug of variant E3"),
])
def test_bad_proof_parameters_are_named(kwargs: dict[str, str], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        proof_suite(**kwargs)

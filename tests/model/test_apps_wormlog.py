"""WormLog over the atomic WormSpace: the default configuration's exhaustive check (pinned
counts, every action enabled, refinement to the shared-log spec), the seeded mutants (each
caught by the checker with a shortest trace, and breaking a named proof obligation), the Z3
proof, and its conformance with the explicit model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from wormspace.checker.explore import check
from wormspace.checker.model import ParameterError
from wormspace.checker.prove import run_suite
from wormspace.model.apps import wormlog as wl
from wormspace.model.apps.wormlog import BUGS, WormLog, parse_workload
from wormspace.model.apps.wormlog_z3 import conformance, proof_suite
from wormspace.spec import sharedlog as spec


def test_default_config_holds_and_refines_the_shared_log() -> None:
    m = WormLog()
    r = check(m)
    assert r.result == "ok", r.message
    assert r.refinement_checked == "sharedlog"
    assert (r.distinct, r.generated, r.depth) == (67191, 203329, 29)
    never = [a.name for a in m.actions() if r.coverage[a.name][1] == 0]
    assert never == [], f"actions never enabled: {never}"


SECOND = dict(size=1, workload="append,append/read,trim,read,tail")


def test_second_config_holds_and_refines_the_shared_log() -> None:
    r = check(WormLog(**SECOND))
    assert r.result == "ok", r.message
    assert (r.distinct, r.generated, r.depth) == (53605, 157048, 27)


class Probe(WormLog):
    """WormLog whose only invariant is that ``goal`` is never reached: a violation is a
    shortest trace to it (reachability, checked by the checker itself)."""

    def __init__(self, goal: Callable[[Any], bool], **params: Any) -> None:
        super().__init__(**params)
        self.goal = goal

    def invariants(self) -> Mapping[str, Callable[[Any], bool]]:
        return {"Unreached": lambda st: not self.goal(st)}


GOALS = {
    # a read answers TRIMMED, and one answers JUNK (a filled hole)
    "read TRIMMED": lambda st: any(x[5][0] == spec.READ and x[5][2] == spec.TRIMMED
                                   for x in st[2]),
    "read JUNK": lambda st: any(x[5][0] == spec.READ and x[5][2] == spec.JUNK for x in st[2]),
    # check_tail scanned past a trimmed segment (its last seen metadata is unknown)
    "tail scans a trimmed segment": lambda st: any(
        x[1] in (wl.SCAN, wl.ASK) and x[2] >= 1 and x[3] == 0 and st[0][x[2] - 1][1]
        for x in st[2]),
}


@pytest.mark.parametrize("goal", sorted(GOALS))
def test_second_config_reaches_the_trimmed_branches(goal: str) -> None:
    r = check(Probe(GOALS[goal], **SECOND), refinement=False)
    assert (r.result, r.violated) == ("invariant", "Unreached"), goal


#: How each mutant is caught: the checker's verdict and the violated name (all invariants and
#: refinement), and the proof obligation it breaks (None: not in the encoding).
CAUGHT = {
    "duplicate_address": ("invariant", "OneSequencerPerSegment", "Alloc => serving_won"),
    "fill_overwrites": ("refinement", "FillWrite", "FillJunk => read_answer_holds"),
    "append_ignores_preempted": ("refinement", "Write", "AppendReturns => append_answer_holds"),
    "stale_tail": ("refinement", "TailAsk", None),
}


def test_every_seeded_bug_is_tested() -> None:
    assert set(BUGS) == set(CAUGHT)


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_is_caught_by_the_checker_with_a_shortest_trace(bug: str) -> None:
    verdict, name, _ob = CAUGHT[bug]
    r = check(WormLog(bug=bug))
    assert (r.result, r.violated) == (verdict, name), r.message
    assert 3 <= len(r.trace) <= 10


def test_duplicate_address_really_returns_one_address_twice() -> None:
    # With only the headline invariant, the mutant's consequence is what gets caught: an append
    # answered with an address already given (the spec refuses the step, the monitor flags it).
    m = WormLog(bug="duplicate_address")
    r = check(m, invariants=["UniqueAddresses"])
    assert (r.result, r.violated) == ("refinement", "Write"), r.message
    last = r.trace[-1].state
    assert last[4] == 1 and "append(v1)=@0" in str(r.trace[-1].spec_variables)
    r = check(m, invariants=["UniqueAddresses"], refinement=False)
    assert (r.result, r.violated) == ("invariant", "UniqueAddresses")


@pytest.mark.parametrize("bug, invariant", [("fill_overwrites", "ReadsAreStable"),
                                            ("append_ignores_preempted", "AppendIsWritten")])
def test_mutant_also_breaks_an_invariant_without_refinement(bug: str, invariant: str) -> None:
    r = check(WormLog(bug=bug), refinement=False)
    assert (r.result, r.violated) == ("invariant", invariant), r.message


def test_proof_suite_proves_every_obligation_in_epr() -> None:
    rep = run_suite(proof_suite())
    assert rep.ok, [(o.name, o.cti) for o in rep.failed]
    assert not rep.alternation_cycle
    names = {o.name for o in rep.obligations}
    assert {"inv -> UniqueAddresses", "inv -> AnswersHold", "Land => EntriesAreFinal"} <= names


@pytest.mark.parametrize("bug", sorted(b for b in CAUGHT if CAUGHT[b][2]))
def test_mutant_breaks_a_proof_obligation_with_a_cti(bug: str) -> None:
    rep = run_suite(proof_suite(bug))
    failed = {o.name: o for o in rep.failed}
    ob = CAUGHT[bug][2]
    assert ob in failed, sorted(failed)
    assert failed[ob].verdict == "cti" and "seg0" in failed[ob].cti


def test_stale_tail_is_outside_the_encoding() -> None:
    assert run_suite(proof_suite("stale_tail")).ok


def test_encoding_simulates_the_explicit_model() -> None:
    rep = conformance(workload="append,append/read,trim")
    assert rep.ok, rep.summary
    # Every abstract action explains some step of the model.
    assert set(rep.actions) == {"Alloc", "Retire", "Skip", "Grant", "AppendReturns",
                                "WriteFails", "Land", "FillJunk", "ReadAnswer", "Forget", "Trim"}


def test_conformance_sees_a_model_the_encoding_does_not_describe() -> None:
    cfg = dict(workload="append,append/read", max_problems=1)
    own = conformance(bug="fill_overwrites", **cfg)  # the encoding's own mutant
    assert not own.mismatches and own.invariant_failures  # simulated, and unsafe
    other = conformance(bug="fill_overwrites", encoding_bug="", **cfg)
    assert other.mismatches and "FillWrite" in other.mismatches[0]


def test_workload_and_parameters_are_checked() -> None:
    assert parse_workload("append, read/trim2,tail", 2) == (((0, 1), (1, 1)), ((3, 2), (2, 1)))
    for bad in ("append,frob", "trim3", "read2", "/"):
        with pytest.raises(ParameterError):
            parse_workload(bad, 2)
    with pytest.raises(ParameterError):
        WormLog(bug="nope")
    with pytest.raises(ParameterError):
        WormLog(segments=8, size=4)
    with pytest.raises(ValueError):
        proof_suite("nope")


def test_the_model_uses_the_specs_answer_codes() -> None:
    # The mapping is the identity on answers: the WOS value JUNK is the spec's JUNK.
    assert spec.JUNK < 30 and WormLog().spec.addresses == 4

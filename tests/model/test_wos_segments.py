"""WOS segments over WORs: exhaustive check with refinement to the WOS interface, the seeded
mutants (each caught by the checker with a shortest trace and breaking a proof obligation),
the Z3 proof, its conformance with the explicit module, and the plug over both lower models."""

import pytest
from wormspace.checker.explore import check
from wormspace.checker.prove import run_suite
from wormspace.model.wos.plug import WorPlug
from wormspace.model.wos.segments import BUGS, Segments
from wormspace.model.wos.segments_z3 import conformance, proof_suite
from wormspace.spec import wor


def test_default_config_holds_invariants_and_refines_the_interface() -> None:
    r = check(Segments())
    assert r.result == "ok", r.message
    assert r.refinement_checked == "wos"
    # Every part of the protocol ran, including a reader completing a partly applied trim.
    for action in ("CompleteTrim", "Seal", "Meta.WriteTakesEffect", "Trim.WriteTakesEffect"):
        assert r.coverage[action][0] > 0, action


#: How each mutant is caught: the checker's verdict and the violated name, and the obligation.
CAUGHT = {
    "alloc_without_capture": ("invariant", "WorContractRespected",
                              "UnsafeMetaWrite => one_unsafe_meta_writer"),
    "trim_not_completed": ("refinement", "Respond", "TrimmedAnswer => trimmed_told_dropped"),
    "batch_write_unchecked": ("refinement", "Proceed",
                              "UnsafeDataWrite => one_unsafe_data_writer"),
    "sealed_accept": ("refinement", "Respond", "AllocAnswer => never_served_stale"),
}


def test_every_seeded_bug_is_tested() -> None:
    assert set(BUGS) == set(CAUGHT) | {"notify_unwritten"}


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_is_caught_by_the_checker_with_a_shortest_trace(bug: str) -> None:
    verdict, name, _ob = CAUGHT[bug]
    r = check(Segments(bug=bug))
    assert (r.result, r.violated) == (verdict, name), r.message
    assert 2 <= len(r.trace) <= 26


def test_trim_mutant_also_breaks_an_invariant_without_refinement() -> None:
    r = check(Segments(bug="trim_not_completed"), refinement=False)
    assert (r.result, r.violated) == ("invariant", "TrimIsFinal")


def test_proof_suite_proves_every_obligation() -> None:
    rep = run_suite(proof_suite())
    assert rep.ok, [(o.name, o.cti) for o in rep.failed]


@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_mutant_breaks_a_proof_obligation(bug: str) -> None:
    rep = run_suite(proof_suite(bug))
    failed = {o.name for o in rep.failed}
    assert CAUGHT[bug][2] in failed, failed


def test_encoding_simulates_the_explicit_module() -> None:
    rep = conformance(workload="alloc1,capture,write1/alloc2,read", epochs=1)
    assert rep.ok, rep.summary
    assert {"MetaWritten", "AllocAnswer", "DataWritten"} <= set(rep.actions)


def test_conformance_sees_a_module_the_encoding_does_not_describe() -> None:
    # The trim mutant against the correct encoding: its early TRIMMED is no abstract step.
    cfg = dict(workload="alloc1,trim/check", epochs=1, max_problems=1)
    own = conformance(bug="trim_not_completed", **cfg)  # the encoding's own mutant
    assert not own.mismatches and own.invariant_failures  # simulated, and unsafe
    other = conformance(bug="trim_not_completed", encoding_bug="", **cfg)
    assert other.mismatches


@pytest.mark.parametrize("lower", ["wor", "wor.paxos"])
def test_plug_runs_the_lower_models_own_invocations(lower: str) -> None:
    plug = WorPlug(lower, clients=2, values=2)
    inst = plug.init()
    assert plug.idle(inst, 0) and plug.reg(inst) == 0
    (after,) = plug.invoke(inst, 0, wor.CAPTURE)
    assert not plug.idle(after, 0) and plug.idle(after, 1)
    assert plug.invoke(inst, 0, wor.WRITE, 1) == []  # no capture id held: not enabled
    uw = plug.invoke(inst, 1, wor.UWRITE, 2)
    assert uw and all(plug.contract_respected(i) for i in uw)
    twice = plug.invoke(uw[0], 0, wor.UWRITE, 1) if lower == "wor" else []
    assert all(not plug.contract_respected(i) for i in twice)


@pytest.mark.slow
def test_flat_over_paxos_refines_the_same_interface() -> None:
    cfg = dict(workload="alloc1/alloc2", timeouts=True, epochs=1)
    layered = check(Segments(**cfg))
    flat = check(Segments(lower="wor.paxos", rounds=2, **cfg))
    assert layered.result == flat.result == "ok"
    assert flat.distinct > 100 * layered.distinct


#: The listen workload: client 0 subscribes while client 1 allocates, captures and writes.
LISTEN = "listen/alloc1,capture,write1"


@pytest.mark.parametrize("size", [1, 2])
def test_listen_workload_notifies_and_refines_the_interface(size: int) -> None:
    r = check(Segments(workload=LISTEN, size=size))
    assert r.result == "ok", r.message
    assert r.refinement_checked == "wos"
    assert r.coverage["InvokeListen"][0] > 0 and r.coverage["Notify"][0] > 0


def test_listen_with_trim_refines_the_interface() -> None:
    r = check(Segments(workload="listen,read/alloc1,capture,write1,trim", epochs=1))
    assert r.result == "ok", r.message
    assert r.coverage["Notify"][0] > 0 and r.coverage["CompleteTrim"][0] > 0


def test_notify_unwritten_mutant_is_caught_with_a_shortest_trace() -> None:
    r = check(Segments(workload=LISTEN, bug="notify_unwritten"))
    assert (r.result, r.violated) == ("refinement", "Proceed"), r.message
    assert 2 <= len(r.trace) <= 20
    # Without the refinement check, the module's own invariant catches it as soon as queued.
    r = check(Segments(workload=LISTEN, bug="notify_unwritten"), refinement=False)
    assert (r.result, r.violated) == ("invariant", "NotifiedIsWritten"), r.message
    assert 2 <= len(r.trace) <= 20


def test_notification_steps_are_stutters_of_the_encoding() -> None:
    rep = conformance(workload=LISTEN, epochs=1)
    assert rep.ok, rep.summary

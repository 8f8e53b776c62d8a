"""The generic obligation engine on a toy system (a counter that only grows past zero)."""

import z3

from wormspace.checker.prove import ProofSuite, SymbolicVocab, run_suite


def _suite(bad_step: bool) -> ProofSuite:
    V = SymbolicVocab()
    V.sort("elem")
    le = V.rigid("le", "elem", "elem")
    zero = V.const("zero", "elem")
    x = V.function("x", [], "elem")
    axioms = [V.forall(["elem"], lambda a: le(zero, a)),
              V.forall(["elem"] * 3, lambda a, b, c: z3.Implies(z3.And(le(a, b), le(b, c)),
                                                                 le(a, c)))]
    step = V.exists(["elem"], lambda e: z3.And(
        le(x.pre(), e) if not bad_step else True, x.post() == e))
    inv = {"above_zero": (le(zero, x.pre()), le(zero, x.post()))}
    return ProofSuite("toy", V, axioms, x.pre() == zero, {"Step": step}, inv,
                      {"safe": le(zero, x.pre())})


def test_proved_suite_reports_every_obligation() -> None:
    r = run_suite(_suite(False))
    assert r.ok
    assert [o.name for o in r.obligations] == ["init -> above_zero", "Step => above_zero",
                                               "inv -> safe"]
    assert r.to_json()["ok"] is True


def test_cti_is_printed_in_the_encodings_names() -> None:
    V = SymbolicVocab()
    V.sort("elem")
    le = V.rigid("le", "elem", "elem")
    zero = V.const("zero", "elem")
    x = V.function("x", [], "elem")
    step = V.exists(["elem"], lambda e: x.post() == e)  # jumps anywhere: not inductive
    refl = V.forall(["elem"], lambda a: le(a, a))
    suite = ProofSuite("toy-bad", V, [refl], x.pre() == zero, {"Step": step},
                       {"above_zero": (le(zero, x.pre()), le(zero, x.post()))}, {})
    r = run_suite(suite)
    assert not r.ok
    bad = [o for o in r.obligations if o.verdict == "cti"]
    assert bad and bad[0].name == "Step => above_zero"
    assert "x'" in bad[0].cti and "elem0" in bad[0].cti

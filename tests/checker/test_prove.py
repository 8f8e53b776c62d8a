"""The generic obligation engine on a toy system (a counter that only grows past zero)."""

import z3
from wormspace.checker.prove import ProofSuite, SymbolicVocab, Transition, View, alternation_cycle, run_suite


def _suite(jump_anywhere: bool) -> ProofSuite:
    V = SymbolicVocab()
    V.sort("elem")
    le = V.rigid("le", "elem", "elem")
    zero = V.const("zero", "elem")
    x = V.function("x", [], "elem")
    seen = V.relation("seen", "elem")
    axioms = [V.forall(["elem"], lambda a: le(zero, a)),
              V.forall(["elem"], lambda a: le(a, a)),
              V.forall(["elem"] * 3, lambda a, b, c: z3.Implies(z3.And(le(a, b), le(b, c)),
                                                                 le(a, c)))]
    grow = V.exists(["elem"], lambda e: z3.And(
        True if jump_anywhere else le(x.pre(), e), x.post() == e))
    mark = V.exists(["elem"], lambda e: V.define(seen, lambda a: z3.Or(seen.pre(a), a == e)))

    def inv(at: View) -> dict[str, z3.BoolRef]:
        return {"above_zero": le(zero, at(x)())}

    return ProofSuite("toy", V, axioms, x.pre() == zero,
                      {"Step": Transition(grow, frozenset({"x"})),
                       "Mark": Transition(mark, frozenset({"seen"}))},
                      inv, {"safe": le(zero, x.pre())})


def test_proved_suite_reports_every_obligation() -> None:
    r = run_suite(_suite(False))
    assert r.ok, r.summary
    assert [o.name for o in r.obligations] == ["init -> above_zero", "Step => above_zero",
                                               "Mark => above_zero", "inv -> safe"]
    # Mark changes nothing the conjunct reads: proved by the frame, with no solver call.
    assert [o.how for o in r.obligations] == ["z3", "z3", "frame", "z3"]
    assert r.to_json()["ok"] is True and r.to_json()["stratified"] is True


def test_cti_is_printed_in_the_encodings_names() -> None:
    V = SymbolicVocab()
    V.sort("elem")
    le = V.rigid("le", "elem", "elem")
    zero = V.const("zero", "elem")
    x = V.function("x", [], "elem")
    step = V.exists(["elem"], lambda e: x.post() == e)  # jumps anywhere: not inductive
    refl = V.forall(["elem"], lambda a: le(a, a))
    suite = ProofSuite("toy-bad", V, [refl], x.pre() == zero,
                       {"Step": Transition(step, frozenset({"x"}))},
                       lambda at: {"above_zero": le(zero, at(x)())})
    r = run_suite(suite)
    assert not r.ok
    bad = [o for o in r.obligations if o.verdict == "cti"]
    assert [o.name for o in bad] == ["Step => above_zero"]
    assert "x'" in bad[0].cti and "elem0" in bad[0].cti
    # The CTI is shrunk: two elements (zero and a non-zero one) suffice.
    assert "elem: elem0, elem1\n" in bad[0].cti


def test_only_selects_obligations() -> None:
    r = run_suite(_suite(True), only={"Step => above_zero"})
    assert [o.name for o in r.obligations] == ["Step => above_zero"]
    assert r.obligations[0].verdict == "proved"  # zero is the least element anyway


def test_alternation_cycle_is_found() -> None:
    a, b = z3.DeclareSort("A"), z3.DeclareSort("B")
    r = z3.Function("r", a, b, z3.BoolSort())
    x, y = z3.Const("x", a), z3.Const("y", b)
    fwd = z3.ForAll([x], z3.Exists([y], r(x, y)))  # A -> B
    back = z3.ForAll([y], z3.Exists([x], r(x, y)))  # B -> A
    assert alternation_cycle([fwd], []) == []
    assert alternation_cycle([fwd], [([back], z3.BoolVal(True))]) in (["A", "B", "A"],
                                                                      ["B", "A", "B"])
    # In a goal (negated) the same formula alternates the other way.
    assert alternation_cycle([fwd], [([], z3.Not(back))]) != []

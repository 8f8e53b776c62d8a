"""Conformance on a toy system: a counter 0..K-1 that steps by one and marks what it saw.

The explicit model and its encoding agree; three deliberately wrong encodings are each caught,
one per direction of the check and one for the frame."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from wormspace.checker.conformance import Universe, check_conformance
from wormspace.checker.model import Action, Model
from wormspace.checker.prove import Formula, Transition, View, Vocab

K = 4


@dataclass
class Counter(Model[tuple[int, frozenset[int]]]):
    """x goes 0, 1, ..., K-1 and stops; ``Mark`` records x in ``seen``."""

    def __post_init__(self) -> None:
        self.name = "counter"

    def init_states(self) -> list[tuple[int, frozenset[int]]]:
        return [(0, frozenset())]

    def actions(self) -> list[Action[tuple[int, frozenset[int]]]]:
        return [Action("Inc", self._inc), Action("Mark", self._mark)]

    def _inc(self, s: tuple[int, frozenset[int]]) -> Iterator[tuple[tuple[()], Any]]:
        if s[0] + 1 < K:
            yield (), (s[0] + 1, s[1])

    def _mark(self, s: tuple[int, frozenset[int]]) -> Iterator[tuple[tuple[()], Any]]:
        yield (), (s[0], s[1] | {s[0]})


class CounterEncoding:
    """The encoding; ``flaw`` makes it deliberately wrong in one way."""

    def __init__(self, V: Vocab, flaw: str = "") -> None:
        self.V, self.flaw = V, flaw
        V.sort("num")
        self.succ = V.rigid("succ", "num", "num")
        self.zero = V.const("zero", "num")
        self.x = V.function("x", [], "num")
        self.seen = V.relation("seen", "num")
        self.state = [self.x, self.seen]

    def axioms(self) -> list[Formula]:
        return []

    def init(self) -> Formula:
        V = self.V
        return V.And(V.eq(self.x.pre(), self.zero),
                     V.forall(["num"], lambda n: V.Not(self.seen.pre(n))))

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        V = self.V

        def inc() -> Transition:
            if self.flaw == "too_loose":  # any larger number, not only the next one
                return Transition(V.exists(["num"], lambda n: V.And(
                    V.Not(V.eq(n, self.x.pre())), V.Not(V.eq(n, self.zero)),
                    V.eq(self.x.post(), n))), frozenset({"x"}))
            return Transition(V.exists(["num"], lambda n: V.And(
                self.succ(self.x.pre(), n), V.eq(self.x.post(), n))), frozenset({"x"}))

        def mark() -> Transition:
            if self.flaw == "too_strict":  # only marks zero
                return Transition(V.And(V.eq(self.x.pre(), self.zero), V.define(
                    self.seen, lambda n: V.Or(self.seen.pre(n), V.eq(n, self.x.pre())))),
                    frozenset({"seen"}))
            if self.flaw == "frame":  # claims Mark changes nothing
                return Transition(True, frozenset())
            return Transition(V.define(self.seen, lambda n: V.Or(
                self.seen.pre(n), V.eq(n, self.x.pre()))), frozenset({"seen"}))

        return {"Inc": inc, "Mark": mark}

    def invariant(self, at: View) -> dict[str, Formula]:
        return {}

    def safety(self) -> dict[str, Formula]:
        return {}

    def steps(self, at: View) -> dict[str, Formula]:
        return {}


def _check(flaw: str) -> Any:
    universe = Universe(sizes={"num": K}, consts={"zero": 0},
                        rigid={"succ": {(i, i + 1) for i in range(K - 1)}})
    return check_conformance(Counter(), lambda V: CounterEncoding(V, flaw), universe,
                             lambda s: {"x": {(): s[0]}, "seen": {(n,) for n in s[1]}})


def test_matching_encoding_conforms() -> None:
    r = _check("")
    assert r.ok and r.summary == "holds", r.detail
    # Every reachable (x, seen) with seen a subset of 0..x: 2 + 4 + 8 + 16.
    assert r.exhaustive and r.states == sum(2 ** (x + 1) for x in range(K))
    assert r.steps == r.solutions > 0
    assert r.to_json()["mismatches"] == []


def test_too_loose_encoding_is_caught_by_enumeration() -> None:
    r = _check("too_loose")
    assert not r.ok and r.summary == "fails"
    kinds = {m.kind for m in r.mismatches}
    assert kinds == {"symbolic-not-explicit"}
    assert all(m.action == "Inc" for m in r.mismatches)


def test_too_strict_encoding_is_caught() -> None:
    r = _check("too_strict")
    assert not r.ok
    assert {m.kind for m in r.mismatches} == {"explicit-not-symbolic"}
    assert "seen +[(1,)]" in r.mismatches[0].detail


def test_a_false_frame_claim_is_caught() -> None:
    r = _check("frame")
    assert not r.ok
    assert "frame" in {m.kind for m in r.mismatches}
    assert "changes seen" in r.mismatches[0].detail

"""A misbehaving model gets one clear error naming the model, the action and the state."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from wormspace.checker.explore import check
from wormspace.checker.fingerprint import UnstableStateError, validate_state
from wormspace.checker.model import Action, Model, ModelError


@dataclass
class Counter(Model[Any]):
    """Counts to ``limit``; optionally misbehaves at ``at``."""

    limit: int = 5
    fault: str = ""
    at: int = 3

    def __post_init__(self) -> None:
        self.name = "counter"

    def init_states(self) -> Iterable[Any]:
        return [0]

    def actions(self) -> Sequence[Action[Any]]:
        return [Action("Inc", self._inc)]

    def _inc(self, s: Any) -> Iterable[tuple[tuple[Any, ...], Any]]:
        if s == self.at and self.fault == "raise":
            raise KeyError("boom")
        if s == self.at and self.fault == "unhashable":
            return [((), [s + 1])]
        if s == self.at and self.fault == "string":
            return [((), ("x", s + 1))]
        if s < self.limit:
            return [((), s + 1)]
        return []

    def invariants(self) -> Mapping[str, Any]:
        return {"Small": lambda s: not isinstance(s, int) or s <= 100}


def test_action_that_raises_is_named() -> None:
    with pytest.raises(ModelError) as err:
        check(Counter(fault="raise"), deadlock=False)
    msg = str(err.value)
    assert "counter" in msg and "Inc" in msg and "KeyError" in msg and "3" in msg


def test_unhashable_state_is_named() -> None:
    with pytest.raises(ModelError) as err:
        check(Counter(fault="unhashable"), deadlock=False)
    assert "unhashable" in str(err.value) and "Inc" in str(err.value)


def test_string_in_state_is_rejected_as_unstable() -> None:
    with pytest.raises(ModelError) as err:
        check(Counter(fault="string"), deadlock=False)
    assert "str" in str(err.value) and "Inc" in str(err.value)


def test_symmetry_on_a_model_without_one_is_an_error() -> None:
    with pytest.raises(ModelError, match="no symmetry"):
        check(Counter(), symmetry=True)


def test_deadlock_at_the_end_of_the_counter() -> None:
    r = check(Counter(limit=4))
    assert r.result == "deadlock"
    assert [s.state for s in r.trace] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("value", ["a", None, 1.5, [1], {1}, -1, (1, ("x",))])
def test_validator_rejects_unstable_values(value: Any) -> None:
    if value is None and sys.version_info >= (3, 12):
        pytest.skip("None hashes stably on 3.12+")
    with pytest.raises(UnstableStateError):
        validate_state(value)


def test_validator_accepts_plain_values() -> None:
    validate_state((1, True, frozenset({(2, 3)}), (0, (5,))))


def test_fingerprints_are_stable_across_processes() -> None:
    code = (
        "from wormspace.model.examples.twophase import TwoPhase\n"
        "from wormspace.checker.graph import state_graph\n"
        "print(sorted(state_graph(TwoPhase(rm=2)).nodes)[:5])\n"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout
        for seed in ("1", "2", "random")
    }
    assert len(outs) == 1


@dataclass
class Bounded(Model[Any]):
    """A counter with a state constraint, to pin TLC's CONSTRAINT semantics."""

    def __post_init__(self) -> None:
        self.name = "bounded"

    def init_states(self) -> Iterable[Any]:
        return [0]

    def actions(self) -> Sequence[Action[Any]]:
        return [Action("Inc", lambda s: [((), s + 1)]), Action("Stay", lambda s: [((), s)])]

    def within_bounds(self, s: Any) -> bool:
        return s <= 3

    def invariants(self) -> Mapping[str, Any]:
        return {"Below5": lambda s: s < 5}


def test_state_constraint_counts_like_tlc() -> None:
    # 0..3 are stored and expanded (2 successors each); 4 is generated, checked, not stored.
    r = check(Bounded())
    assert r.result == "ok"
    assert (r.distinct, r.generated, r.depth) == (4, 1 + 4 * 2, 4)


def test_state_constraint_still_checks_invariants_of_the_excluded_state() -> None:
    m = Bounded()
    m.invariants = lambda: {"Below4": lambda s: s < 4}  # type: ignore[method-assign]
    r = check(m)
    assert r.result == "invariant" and r.trace[-1].state == 4


def test_invariant_that_raises_on_a_successor_is_named() -> None:
    m = Counter()
    m.invariants = lambda: {"Odd": lambda s: 1 // (s - 2) >= -5}  # type: ignore[method-assign]
    with pytest.raises(ModelError) as err:
        check(m, deadlock=False)
    assert "invariant" in str(err.value) and "ZeroDivisionError" in str(err.value)


def test_generator_actions_are_accepted() -> None:
    @dataclass
    class Gen(Counter):
        def actions(self) -> Sequence[Action[Any]]:
            def inc(s: Any) -> Iterable[tuple[tuple[Any, ...], Any]]:
                if s < self.limit:
                    yield (), s + 1
            return [Action("Inc", inc)]

    r = check(Gen(limit=6), deadlock=False)
    assert (r.distinct, r.generated, r.depth) == (7, 7, 7)


def test_action_returning_a_generator_expression_gets_a_clear_error() -> None:
    @dataclass
    class GenExpr(Counter):
        def actions(self) -> Sequence[Action[Any]]:
            return [Action("Inc", lambda s: (((), x) for x in [s + 1] if s < 3))]

    with pytest.raises(ModelError, match="must return a list or tuple"):
        check(GenExpr(), deadlock=False)

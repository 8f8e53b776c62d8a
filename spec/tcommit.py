"""TCommit: the atomic-commit specification (Gray and Lamport, "Consensus on Transaction Commit").

Each resource manager (RM) is working, prepared, committed or aborted. An RM may prepare; it may
commit once every RM is prepared or committed; it may abort while working or prepared if no RM
has committed. The safety property is *consistency*: no RM commits while another aborts.

TwoPhase (``model/examples/twophase.py``) refines this spec, and WormTX will too.

State: a tuple ``rm_state`` with one small int per RM (the constants below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from wormspace.checker.model import Action, Model, Params
from wormspace.checker.symmetry import canonical_tuple_perm

WORKING, PREPARED, COMMITTED, ABORTED = 0, 1, 2, 3
RM_STATE_NAMES = ("working", "prepared", "committed", "aborted")

State = tuple[int, ...]


def rm_name(i: int) -> str:
    """Display name of resource manager ``i``: r1, r2, ..."""
    return f"r{i + 1}"


@dataclass
class TCommit(Model[State]):
    """The TCommit specification over ``rm`` resource managers."""

    rm: int = 3

    def __post_init__(self) -> None:
        if self.rm < 1:
            raise ValueError("rm must be at least 1")
        self.name = "tcommit"
        self.params = {"rm": self.rm}
        self._names = tuple(rm_name(i) for i in range(self.rm))

    def init_states(self) -> Iterable[State]:
        return [(WORKING,) * self.rm]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("Prepare", self._prepare, ("rm",)),
            Action("Decide", self._decide, ("rm", "decision")),
        ]

    def _prepare(self, s: State) -> Iterable[tuple[Params, State]]:
        names = self._names
        for i, st in enumerate(s):
            if st == WORKING:
                yield (names[i],), s[:i] + (PREPARED,) + s[i + 1 :]

    def _decide(self, s: State) -> Iterable[tuple[Params, State]]:
        names = self._names
        can_commit = all(st == PREPARED or st == COMMITTED for st in s)
        can_abort = COMMITTED not in s
        for i, st in enumerate(s):
            if st == PREPARED and can_commit:
                yield (names[i], "commit"), s[:i] + (COMMITTED,) + s[i + 1 :]
            if (st == WORKING or st == PREPARED) and can_abort:
                yield (names[i], "abort"), s[:i] + (ABORTED,) + s[i + 1 :]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        n = self.rm
        return {
            "TypeOK": lambda s: len(s) == n and all(0 <= x <= 3 for x in s),
            "Consistent": consistent,
        }

    def canonical(self, s: State) -> State:
        return canonical_tuple_perm(s)

    def variables(self, s: State) -> Mapping[str, object]:
        return {"rmState": {self._names[i]: RM_STATE_NAMES[x] for i, x in enumerate(s)}}


def consistent(s: State) -> bool:
    """No RM is committed while another is aborted."""
    return not (COMMITTED in s and ABORTED in s)

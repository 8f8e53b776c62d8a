"""TwoPhase: two-phase commit (Gray and Lamport), a module that refines TCommit.

A transaction manager (TM) collects Prepared messages from the resource managers (RMs), then
commits (once all have prepared) or aborts; RMs may prepare or spontaneously abort while
working, and learn the decision from the TM's Commit or Abort message. Messages are never
removed from ``msgs``, so loss, duplication and reordering are all behaviours of the spec.

This is the example the user guide walks through, and the model whose counts pin the checker to
TLC's (``../shared/design/GOLDEN.md``).

State (plain ints for speed; see ``checker/model.py``):
``(rm_state, tm_state, tm_prepared, msgs)`` where ``rm_state`` is a tuple of per-RM constants
from ``spec/tcommit.py``, ``tm_state`` one of ``TM_INIT``, ``TM_COMMITTED``, ``TM_ABORTED``,
``tm_prepared`` a bitmask of RMs, and ``msgs`` a bitmask: bit ``i`` is Prepared(r(i+1)), then
one bit for Commit and one for Abort.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from wormspace.checker.liveness import Fairness, Property, eventually, leads_to, weak
from wormspace.checker.model import Action, Model, Params, Refinement
from wormspace.spec.tcommit import (
    ABORTED,
    COMMITTED,
    PREPARED,
    RM_STATE_NAMES,
    WORKING,
    TCommit,
    consistent,
    rm_name,
)

TM_INIT, TM_COMMITTED, TM_ABORTED = 0, 1, 2
TM_STATE_NAMES = ("init", "committed", "aborted")

State = tuple[tuple[int, ...], int, int, int]

_PREPARED, _ABORTED, _COMMITTED = (PREPARED,), (ABORTED,), (COMMITTED,)

#: Seeded bugs, for tests that the checker catches them.
BUGS = ("", "commit_without_all_prepared")


@dataclass
class TwoPhase(Model[State]):
    """Two-phase commit with ``rm`` resource managers.

    ``bug="commit_without_all_prepared"`` lets the TM commit as soon as one Prepared message has
    been received: it breaks consistency and the refinement to TCommit.
    """

    rm: int = 3
    bug: str = ""

    def __post_init__(self) -> None:
        if self.rm < 1:
            raise ValueError("rm must be at least 1")
        if self.bug not in BUGS:
            raise ValueError(f"unknown bug {self.bug!r}; known: {', '.join(b for b in BUGS if b)}")
        self.name = "twophase"
        self.params = {"rm": self.rm, "bug": self.bug} if self.bug else {"rm": self.rm}
        n = self.rm
        self._names = tuple(rm_name(i) for i in range(n))
        self._all = (1 << n) - 1
        self._commit_bit = 1 << n
        self._abort_bit = 1 << (n + 1)
        # (index, params, Prepared-message bit) per RM, built once.
        self._rm_index = tuple((i, (self._names[i],), 1 << i) for i in range(n))
        self._rm_bits = tuple((p, bit) for _i, p, bit in self._rm_index)

    def init_states(self) -> Iterable[State]:
        return [((WORKING,) * self.rm, TM_INIT, 0, 0)]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("TMCommit", self._tm_commit),
            Action("TMAbort", self._tm_abort),
            Action("TMRcvPrepared", self._tm_rcv_prepared, ("rm",)),
            Action("RMPrepare", self._rm_prepare, ("rm",)),
            Action("RMChooseToAbort", self._rm_choose_to_abort, ("rm",)),
            Action("RMRcvCommitMsg", self._rm_rcv_commit, ("rm",)),
            Action("RMRcvAbortMsg", self._rm_rcv_abort, ("rm",)),
        ]

    # Actions return lists (a comprehension is cheaper than a generator in the checker's inner
    # loop) and reuse one params tuple per RM: this model is the checker's speed benchmark.

    # -- transaction manager ------------------------------------------------------------------

    def _tm_commit(self, s: State) -> list[tuple[Params, State]]:
        rms, tm, prepared, msgs = s
        ready = prepared != 0 if self.bug == "commit_without_all_prepared" else prepared == self._all
        if tm == TM_INIT and ready:
            return [((), (rms, TM_COMMITTED, prepared, msgs | self._commit_bit))]
        return []

    def _tm_abort(self, s: State) -> list[tuple[Params, State]]:
        rms, tm, prepared, msgs = s
        if tm == TM_INIT:
            return [((), (rms, TM_ABORTED, prepared, msgs | self._abort_bit))]
        return []

    def _tm_rcv_prepared(self, s: State) -> list[tuple[Params, State]]:
        rms, tm, prepared, msgs = s
        if tm != TM_INIT:
            return []
        return [(p, (rms, tm, prepared | bit, msgs)) for p, bit in self._rm_bits if msgs & bit]

    # -- resource managers --------------------------------------------------------------------

    def _rm_prepare(self, s: State) -> list[tuple[Params, State]]:
        rms, tm, prepared, msgs = s
        return [
            (p, (rms[:i] + _PREPARED + rms[i + 1 :], tm, prepared, msgs | bit))
            for i, p, bit in self._rm_index
            if rms[i] == WORKING
        ]

    def _rm_choose_to_abort(self, s: State) -> list[tuple[Params, State]]:
        rms, tm, prepared, msgs = s
        return [
            (p, (rms[:i] + _ABORTED + rms[i + 1 :], tm, prepared, msgs))
            for i, p, _bit in self._rm_index
            if rms[i] == WORKING
        ]

    def _rm_rcv_commit(self, s: State) -> list[tuple[Params, State]]:
        rms, tm, prepared, msgs = s
        if not msgs & self._commit_bit:
            return []
        return [
            (p, (rms[:i] + _COMMITTED + rms[i + 1 :], tm, prepared, msgs))
            for i, p, _bit in self._rm_index
        ]

    def _rm_rcv_abort(self, s: State) -> list[tuple[Params, State]]:
        rms, tm, prepared, msgs = s
        if not msgs & self._abort_bit:
            return []
        return [
            (p, (rms[:i] + _ABORTED + rms[i + 1 :], tm, prepared, msgs))
            for i, p, _bit in self._rm_index
        ]

    # -- properties ---------------------------------------------------------------------------

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        n = self.rm
        top = self._abort_bit << 1

        def type_ok(s: State) -> bool:
            rms, tm, prepared, msgs = s
            return (
                len(rms) == n
                and all(0 <= x <= 3 for x in rms)
                and 0 <= tm <= 2
                and 0 <= prepared <= self._all
                and 0 <= msgs < top
            )

        return {"TPTypeOK": type_ok, "TCConsistent": lambda s: consistent(s[0])}

    def properties(self) -> Sequence[Property]:
        """Temporal properties (checked by ``checker/liveness.py``): every RM decides, and a
        commit by the TM reaches every RM."""

        def all_decided(s: State) -> bool:
            return all(x == COMMITTED or x == ABORTED for x in s[0])

        return [
            eventually("EveryRMDecides", all_decided,
                       text='<>(\\A rm \\in RM: rmState[rm] \\in {"committed", "aborted"})'),
            leads_to("CommitReachesEveryRM", lambda s: s[1] == TM_COMMITTED,
                     lambda s: all(x == COMMITTED for x in s[0]),
                     text='tmState = "committed" ~> \\A rm \\in RM: rmState[rm] = "committed"'),
        ]

    def fairness(self) -> Sequence[Fairness]:
        """Weak fairness of the TM's actions and of each RM's receive actions (per RM): the TM
        eventually decides and every RM hears the decision. RMs need not prepare."""
        return [weak("TMCommit"), weak("TMAbort"), weak("TMRcvPrepared"),
                weak("RMRcvCommitMsg"), weak("RMRcvAbortMsg")]

    def canonical(self, s: State) -> State:
        # Exact: an RM owns its rmState, its tmPrepared bit and its Prepared message, and the
        # rest (tmState, Commit, Abort) is global, so the orbit is the multiset of these slots.
        rms, tm, prepared, msgs = s
        slots = sorted((rms[i], (prepared >> i) & 1, (msgs >> i) & 1) for i in range(self.rm))
        new_prepared = 0
        new_msgs = msgs & ~self._all
        for i, (_, p, m) in enumerate(slots):
            new_prepared |= p << i
            new_msgs |= m << i
        return (tuple(slot[0] for slot in slots), tm, new_prepared, new_msgs)

    def variables(self, s: State) -> Mapping[str, object]:
        rms, tm, prepared, msgs = s
        names = self._names
        shown_msgs = [f"Prepared({names[i]})" for i in range(self.rm) if msgs >> i & 1]
        if msgs & self._commit_bit:
            shown_msgs.append("Commit")
        if msgs & self._abort_bit:
            shown_msgs.append("Abort")
        return {
            "rmState": {names[i]: RM_STATE_NAMES[x] for i, x in enumerate(rms)},
            "tmState": TM_STATE_NAMES[tm],
            "tmPrepared": frozenset(names[i] for i in range(self.rm) if prepared >> i & 1),
            "msgs": frozenset(shown_msgs),
        }

    def refinement(self) -> Refinement[State, tuple[int, ...]]:
        # itemgetter: the mapping runs on every edge, and a C-level getter is the cheapest call.
        return Refinement(TCommit(rm=self.rm), operator.itemgetter(0), "rmState |-> rmState")

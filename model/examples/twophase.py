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

    def init_states(self) -> Iterable[State]:
        return [((WORKING,) * self.rm, TM_INIT, 0, 0)]

    def actions(self) -> Sequence[Action[State]]:
        # This model is the checker's speed benchmark, so its actions are closures over local
        # constants (no attribute lookups), test their guard on one field before unpacking,
        # share one empty tuple, and build lists with loops (on Python 3.11 a comprehension
        # is one more function call).
        rm_index = self._rm_index
        all_rms, commit_bit, abort_bit = self._all, self._commit_bit, self._abort_bit
        none: tuple[tuple[Params, State], ...] = ()
        sloppy = self.bug == "commit_without_all_prepared"

        # -- transaction manager --------------------------------------------------------------

        def tm_commit(s: State) -> Sequence[tuple[Params, State]]:
            if s[1] != TM_INIT or not (s[2] if sloppy else s[2] == all_rms):
                return none
            rms, _tm, prepared, msgs = s
            return [((), (rms, TM_COMMITTED, prepared, msgs | commit_bit))]

        def tm_abort(s: State) -> Sequence[tuple[Params, State]]:
            if s[1] != TM_INIT:
                return none
            rms, _tm, prepared, msgs = s
            return [((), (rms, TM_ABORTED, prepared, msgs | abort_bit))]

        def tm_rcv_prepared(s: State) -> Sequence[tuple[Params, State]]:
            if s[1] != TM_INIT or not s[3] & all_rms:
                return none
            rms, tm, prepared, msgs = s
            out = []
            for _i, p, bit in rm_index:
                if msgs & bit:
                    out.append((p, (rms, tm, prepared | bit, msgs)))
            return out

        # -- resource managers ----------------------------------------------------------------

        def rm_prepare(s: State) -> Sequence[tuple[Params, State]]:
            rms = s[0]
            if WORKING not in rms:
                return none
            _rms, tm, prepared, msgs = s
            out = []
            for i, p, bit in rm_index:
                if rms[i] == WORKING:
                    out.append((p, (rms[:i] + _PREPARED + rms[i + 1 :], tm, prepared, msgs | bit)))
            return out

        def rm_choose_to_abort(s: State) -> Sequence[tuple[Params, State]]:
            rms = s[0]
            if WORKING not in rms:
                return none
            _rms, tm, prepared, msgs = s
            out = []
            for i, p, _bit in rm_index:
                if rms[i] == WORKING:
                    out.append((p, (rms[:i] + _ABORTED + rms[i + 1 :], tm, prepared, msgs)))
            return out

        def rm_rcv_commit(s: State) -> Sequence[tuple[Params, State]]:
            if not s[3] & commit_bit:
                return none
            rms, tm, prepared, msgs = s
            out = []
            for i, p, _bit in rm_index:
                out.append((p, (rms[:i] + _COMMITTED + rms[i + 1 :], tm, prepared, msgs)))
            return out

        def rm_rcv_abort(s: State) -> Sequence[tuple[Params, State]]:
            if not s[3] & abort_bit:
                return none
            rms, tm, prepared, msgs = s
            out = []
            for i, p, _bit in rm_index:
                out.append((p, (rms[:i] + _ABORTED + rms[i + 1 :], tm, prepared, msgs)))
            return out

        return [
            Action("TMCommit", tm_commit),
            Action("TMAbort", tm_abort),
            Action("TMRcvPrepared", tm_rcv_prepared, ("rm",)),
            Action("RMPrepare", rm_prepare, ("rm",)),
            Action("RMChooseToAbort", rm_choose_to_abort, ("rm",)),
            Action("RMRcvCommitMsg", rm_rcv_commit, ("rm",)),
            Action("RMRcvAbortMsg", rm_rcv_abort, ("rm",)),
        ]

    # -- properties ---------------------------------------------------------------------------

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        n = self.rm
        top = self._abort_bit << 1

        rm_values = frozenset((WORKING, PREPARED, COMMITTED, ABORTED))
        all_rms = self._all

        def type_ok(s: State) -> bool:
            rms, tm, prepared, msgs = s
            return (
                len(rms) == n
                and rm_values.issuperset(rms)
                and 0 <= tm <= 2
                and 0 <= prepared <= all_rms
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

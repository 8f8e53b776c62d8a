"""WormTX: non-blocking atomic commit over write-once registers, refining TCommit.

One transaction is one WormSpace segment, allocated by its starter before any resource manager
(RM) is contacted (``alloc`` makes the transaction id unique). The model starts there: the
segment is allocated, and everything after is explored over the atomic WOS interface
(``model/apps/space.py``: one step per operation, every answer the interface allows, and the
silent ``Settle`` step by which a preempted or timed-out write may still take effect later).
Two variants (``variant``):

**E3** (the paper's choice: no coordinator). Offset ``i`` of the segment is RM ``i``'s *vote
WOR*. An RM captures its vote WOR (or holds a capture handed over by the starter's
``capture_range``: ``precaptured``), then votes by writing YES (it is *prepared*: local locks and
the WAL record are abstracted into that state) or NO (it aborts at once). Every RM listens to
the segment (it subscribed before any vote could be written): once a vote WOR is written,
``Notify`` tells a listening RM its value, whoever wrote it, and the RM decides in that step
if it can: ABORT on a NO, COMMIT on the last YES. An RM that times out on a peer
(nondeterministically, at any time: ``Timeout``) reads the peer's vote WOR and, finding it still
EMPTY, captures it, then writes NO (``ForceNo``). First write wins: a chosen YES is never
overturned, since the forced write then does not take effect, and a stalled peer's later YES
is preempted. No RM acts on a write's answer: every vote, its own included, reaches it by
notification (the implementation's shortcut of recording an ``OK`` vote at once changes nothing
the others see).

**A8** (the baseline: WORs as a black box behind a transaction manager). RMs prepare by
sending ``Prepared`` to the transaction managers (TMs) over a message-set network (never lost
once sent, as in ``model/examples/twophase.py``), or abort on their own while working. TM 0
holds the capture of the segment's single *decision WOR* (the starter captured it); it writes
COMMIT once every RM has prepared, or ABORT at any time. A backup TM may take over by capturing
the decision WOR, then decides the same way. RMs learn the outcome by reading the decision WOR.

Both refine ``tcommit`` (each RM's state is mapped unchanged) on every edge; the invariants are
consistency (no RM commits while another aborts) and commit only if all prepared, plus the
facts the Z3 proof (``wormtx_z3.py``) rests on. ``properties()`` and ``fairness()`` state
non-blocking termination: every prepared RM eventually decides, though any RM may stall before
voting forever (no fairness is assumed for voting).

State (plain ints and tuples)::

    E3: (st, pc, heard, space)
      st      per RM, a TCommit state (spec/tcommit.py): the refinement mapping reads only this
      pc      per RM: START (must capture its vote WOR), HOLD (holds it), LISTEN (voted YES,
              listening), DONE (decided), or FORCE + j (holds peer j's vote WOR, about to write
              NO; still listening)
      heard   per RM, bitmask of the vote WORs it was notified hold YES (a NO ends it at once)
      space   one segment of ``rm`` vote WORs (model/apps/space.py)
    A8: (st, prepared, tm, space)
      prepared  bitmask: Prepared(i) has been sent
      tm        per TM: T_INIT (backup, not yet in), T_HOLD (holds the decision WOR's capture),
                T_DONE (wrote its decision)
      space     one segment of one register, the decision WOR

``bug`` seeds one mistake (``BUGS``), each caught by the checker and by a proof obligation.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wormspace.checker.liveness import Fairness, Property, leads_to, weak
from wormspace.checker.model import Action, Model, Params, Refinement
from wormspace.model.apps import space as ws
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

E3, A8 = "E3", "A8"
VARIANTS = (E3, A8)
YES, NO = 1, 2  # values of a vote WOR (0: EMPTY)
COMMIT, ABORT = 1, 2  # values of the decision WOR
VOTE_NAMES = ("EMPTY", "YES", "NO")
DECISION_NAMES = ("EMPTY", "COMMIT", "ABORT")
START, HOLD, LISTEN, DONE, FORCE = range(5)
PC_NAMES = ("start", "hold", "listen", "done")
T_INIT, T_HOLD, T_DONE = range(3)
TM_NAMES = ("init", "hold", "done")

#: Seeded bugs: name -> (variant, what goes wrong).
BUGS = {
    "timeout_overwrites_yes": (E3, "a timed-out RM writes NO blindly (an unsafe write racing the "
                                   "owner's): it may overwrite a chosen YES"),
    "partial_commit": (E3, "an RM commits when every vote it has learned so far is YES, "
                           "without waiting for all of them"),
    "empty_read_aborts": (A8, "a prepared RM that reads the decision WOR EMPTY takes it as "
                              "ABORT instead of waiting (or forcing ABORT into the WOR)"),
}

Space = ws.Space
State = tuple[Any, ...]
Steps = Iterable[tuple[Params, State]]


def _set(t: tuple[Any, ...], i: int, x: Any) -> tuple[Any, ...]:
    return t[:i] + (x,) + t[i + 1:]


def _effects(outcomes: ws.Outcomes) -> list[Space]:
    """The distinct spaces an operation may leave; its answers are not used.

    No process here acts on an answer: RMs learn every vote (their own too) by notification and
    the decision by reading, and a TM is done once it has written. So the only thing the capture
    of a *written* register still decides, whether a later write of the same value answers OK
    or PREEMPTED, is never observed, and it is dropped (the owner is reset): a quotient of the
    state space by an unobservable field, as space.py drops the proposals of a written register.
    """
    out: list[Space] = []
    for _code, sp in outcomes:
        meta, trimmed, regs = sp[0]
        if any(v and own for v, own, _prop in regs):
            regs = tuple((v, 0, prop) if v else (v, own, prop) for v, own, prop in regs)
            sp = ((meta, trimmed, regs),) + sp[1:]
        if sp not in out:
            out.append(sp)
    return out


def _overwrite(sp: Space, off: int, v: int) -> Space:
    """The register at ``off`` of segment 0 holds ``v``, whatever it held (only the seeded bug
    does this: it is what two unsafe writers can do to a WOR)."""
    meta, trimmed, regs = sp[0]
    reg = (v, regs[off][1], 0)
    return ((meta, trimmed, regs[:off] + (reg,) + regs[off + 1:]),) + sp[1:]


@dataclass
class WormTX(Model[State]):
    """WormTX with ``rm`` resource managers (see the module docstring)."""

    rm: int = 3
    variant: str = E3
    precaptured: bool = False
    tms: int = 2
    flaky: bool = False
    bug: str = ""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        if not 1 <= self.rm <= 8:
            raise ValueError(f"rm must be between 1 and 8, not {self.rm}")
        if self.bug and self.bug not in BUGS:
            raise ValueError(f"unknown bug {self.bug!r}; known: {', '.join(sorted(BUGS))}")
        if self.bug and BUGS[self.bug][0] != self.variant:
            raise ValueError(f"bug {self.bug!r} is a bug of variant {BUGS[self.bug][0]}")
        if self.variant == A8 and self.precaptured:
            raise ValueError("precaptured applies to variant E3 (A8's TM 0 always holds the capture)")
        if not 1 <= self.tms <= 4:
            raise ValueError(f"tms must be between 1 and 4, not {self.tms}")
        if self.variant == E3 and self.tms != 2:
            raise ValueError("tms applies to variant A8 (E3 has no transaction manager)")
        self.name = "apps.wormtx"
        self.params = {"rm": self.rm, "variant": self.variant}
        if self.variant == E3:
            self.params["precaptured"] = self.precaptured
        else:
            self.params["tms"] = self.tms
        self.params["flaky"] = self.flaky
        if self.bug:
            self.params["bug"] = self.bug
        self._names = tuple(rm_name(i) for i in range(self.rm))
        self._all = (1 << self.rm) - 1

    # -- model interface ---------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        n = self.rm
        size = n if self.variant == E3 else 1
        sp = ws.alloc(ws.empty(1, size), 0, 1)[0][1]  # the starter's alloc: the tx id
        if self.variant == A8:
            sp = ws.capture(sp, 0, 0, 0)[0][1]  # TM 0 holds the decision WOR's capture
            return [((WORKING,) * n, 0, (T_HOLD,) + (T_INIT,) * (self.tms - 1), sp)]
        if self.precaptured:  # the starter's capture_range, each capture id handed to its RM
            for i in range(n):
                sp = ws.capture(sp, 0, i, i)[0][1]
        pc = HOLD if self.precaptured else START
        return [((WORKING,) * n, (pc,) * n, (0,) * n, sp)]

    def actions(self) -> Sequence[Action[State]]:
        if self.variant == A8:
            return [
                Action("Prepare", self._prepare, ("rm",)),
                Action("ChooseToAbort", self._choose_to_abort, ("rm",)),
                Action("TMCommit", lambda s: list(self._tm_decide(s, COMMIT)), ("tm",)),
                Action("TMAbort", lambda s: list(self._tm_decide(s, ABORT)), ("tm",)),
                Action("Takeover", self._takeover, ("tm",)),
                Action("ReadDecision", self._read_decision, ("rm",)),
                Action("Settle", self._settle, ("wor", "value")),
                Action("Finished", self._finished),
            ]
        acts = [] if self.precaptured else [Action("CaptureVote", self._capture_vote, ("rm",))]
        return acts + [
            Action("Vote", self._vote, ("rm", "vote")),
            Action("Notify", self._notify, ("rm", "peer", "vote")),
            Action("Timeout", self._timeout, ("rm", "peer")),
            Action("ForceNo", self._force_no, ("rm", "peer")),
            Action("Settle", self._settle, ("wor", "value")),
            Action("Finished", self._finished),
        ]

    # -- E3 ----------------------------------------------------------------------------------

    def _capture_vote(self, s: State) -> Steps:
        st, pc, heard, sp = s
        for i in range(self.rm):
            if pc[i] == START:
                for sp2 in _effects(ws.capture(sp, 0, i, i, flaky=self.flaky)):
                    yield (self._names[i],), (st, _set(pc, i, HOLD), heard, sp2)

    def _vote(self, s: State) -> Steps:
        """Write YES (prepared) or NO (aborted at once) into the RM's own vote WOR. Whatever the
        answer, a YES voter learns the chosen vote by notification, as it learns its peers'."""
        st, pc, heard, sp = s
        for i in range(self.rm):
            if pc[i] != HOLD:
                continue
            for v in (YES, NO):
                st2 = _set(st, i, PREPARED if v == YES else ABORTED)
                pc2 = _set(pc, i, LISTEN if v == YES else DONE)
                for sp2 in _effects(ws.write(sp, 0, i, i, v, flaky=self.flaky)):
                    yield (self._names[i], VOTE_NAMES[v]), (st2, pc2, heard, sp2)

    def _notify(self, s: State) -> Steps:
        """``listen``: a listening RM is told the value of a vote WOR that has been written, and
        decides at once if it can: ABORT on a NO, COMMIT on the last YES."""
        st, pc, heard, sp = s
        for i in range(self.rm):
            if pc[i] != LISTEN and pc[i] < FORCE:
                continue
            for j in range(self.rm):
                v = ws.value(sp, 0, j)
                if not v or heard[i] >> j & 1:
                    continue
                h = heard[i] | 1 << j
                if v == NO:
                    d = ABORTED
                elif h == self._all or (self.bug == "partial_commit" and h >> i & 1):
                    d = COMMITTED
                else:
                    d = PREPARED
                # A decided RM stops listening: what it heard no longer matters, so it is dropped.
                t = (st, pc, _set(heard, i, h), sp) if d == PREPARED else \
                    (_set(st, i, d), _set(pc, i, DONE), _set(heard, i, 0), sp)
                yield (self._names[i], self._names[j], VOTE_NAMES[v]), t

    def _timeout(self, s: State) -> Steps:
        """A listening RM gives up waiting for peer ``j``: it finds ``j``'s vote WOR still
        EMPTY (a written one it would simply read) and captures it."""
        st, pc, heard, sp = s
        for i in range(self.rm):
            if pc[i] != LISTEN:
                continue
            for j in range(self.rm):
                if j != i and not ws.value(sp, 0, j):
                    for sp2 in _effects(ws.capture(sp, 0, j, i, flaky=self.flaky)):
                        yield (self._names[i], self._names[j]), (st, _set(pc, i, FORCE + j), heard, sp2)

    def _force_no(self, s: State) -> Steps:
        """Write NO with the capture taken on timing out; the RM learns the chosen vote by
        notification, whichever write won."""
        st, pc, heard, sp = s
        for i in range(self.rm):
            if pc[i] < FORCE:
                continue
            j = pc[i] - FORCE
            if self.bug == "timeout_overwrites_yes":
                outcomes = [(ws.OK, _overwrite(sp, j, NO))]
            else:
                outcomes = ws.write(sp, 0, j, i, NO, flaky=self.flaky)
            for sp2 in _effects(outcomes):
                yield (self._names[i], self._names[j]), (st, _set(pc, i, LISTEN), heard, sp2)

    # -- A8 ----------------------------------------------------------------------------------

    def _prepare(self, s: State) -> Steps:
        st, prepared, tm, sp = s
        for i in range(self.rm):
            if st[i] == WORKING:
                yield (self._names[i],), (_set(st, i, PREPARED), prepared | 1 << i, tm, sp)

    def _choose_to_abort(self, s: State) -> Steps:
        st, prepared, tm, sp = s
        for i in range(self.rm):
            if st[i] == WORKING:
                yield (self._names[i],), (_set(st, i, ABORTED), prepared, tm, sp)

    def _tm_decide(self, s: State, d: int) -> Steps:
        """A TM holding the decision WOR's capture writes COMMIT (all prepared) or ABORT."""
        st, prepared, tm, sp = s
        if d == COMMIT and prepared != self._all:
            return
        for t in range(self.tms):
            if tm[t] == T_HOLD:
                for sp2 in _effects(ws.write(sp, 0, 0, t, d, flaky=self.flaky)):
                    yield (f"tm{t}",), (st, prepared, _set(tm, t, T_DONE), sp2)

    def _takeover(self, s: State) -> Steps:
        st, prepared, tm, sp = s
        for t in range(self.tms):
            if tm[t] == T_INIT:
                for sp2 in _effects(ws.capture(sp, 0, 0, t, flaky=self.flaky)):
                    yield (f"tm{t}",), (st, prepared, _set(tm, t, T_HOLD), sp2)

    def _read_decision(self, s: State) -> Steps:
        """An undecided RM reads the decision WOR; a read that teaches nothing is a stutter and
        is not listed."""
        st, prepared, tm, sp = s
        for i in range(self.rm):
            if st[i] not in (WORKING, PREPARED):
                continue
            for code, _sp in ws.read(sp, 0, 0, flaky=self.flaky):
                if code == ws.VALUE + ABORT or (code == ws.EMPTY and st[i] == PREPARED
                                                and self.bug == "empty_read_aborts"):
                    d = ABORTED
                elif code == ws.VALUE + COMMIT and st[i] == PREPARED:
                    d = COMMITTED
                else:
                    continue
                yield (self._names[i],), (_set(st, i, d), prepared, tm, sp)

    # -- both --------------------------------------------------------------------------------

    def _settle(self, s: State) -> Steps:
        names = self._names if self.variant == E3 else ("decision",)
        values = VOTE_NAMES if self.variant == E3 else DECISION_NAMES
        for (_seg, off, v), sp2 in ws.settle(s[3]):
            yield (names[off], values[v]), s[:3] + (_effects([(ws.OK, sp2)])[0],)

    def _finished(self, s: State) -> Steps:
        """Every RM has decided: the transaction is over (a stutter, so that only a state where
        some RM is stuck counts as a deadlock)."""
        return [((), s)] if all(x in (COMMITTED, ABORTED) for x in s[0]) else []

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        n = self.rm

        def commit_needs_all_prepared(s: State) -> bool:
            return COMMITTED not in s[0] or all(x in (PREPARED, COMMITTED) for x in s[0])

        inv: dict[str, Callable[[State], bool]] = {
            "Consistent": lambda s: consistent(s[0]),
            "CommitNeedsAllPrepared": commit_needs_all_prepared,
        }
        if self.variant == E3:
            def heard_is_written(s: State) -> bool:
                return all(ws.value(s[3], 0, j) == YES
                           for h in s[2] for j in range(n) if h >> j & 1)

            def yes_only_from_voter(s: State) -> bool:
                return all(s[0][j] != WORKING for j, (v, _o, prop) in enumerate(s[3][0][2])
                           if v == YES or prop >> YES & 1)

            inv["HeardIsWritten"] = heard_is_written
            inv["YesOnlyFromVoter"] = yes_only_from_voter
        else:
            def decision_is_written(s: State) -> bool:
                v = ws.value(s[3], 0, 0)
                return COMMITTED not in s[0] or v == COMMIT

            def commit_only_if_all_prepared(s: State) -> bool:
                v, _o, prop = s[3][0][2][0]
                return not (v == COMMIT or prop >> COMMIT & 1) or s[1] == self._all

            inv["CommittedReadCommit"] = decision_is_written
            inv["CommitWrittenOnlyIfAllPrepared"] = commit_only_if_all_prepared
        return inv

    def refinement(self) -> Refinement[State, tuple[int, ...]]:
        return Refinement(TCommit(rm=self.rm), operator.itemgetter(0), "rmState |-> st")

    # -- liveness ----------------------------------------------------------------------------

    def properties(self) -> Sequence[Property]:
        """Non-blocking termination, per RM: once prepared, it eventually decides."""
        def prepared(i: int) -> Callable[[State], bool]:
            return lambda s: s[0][i] == PREPARED

        def decided(i: int) -> Callable[[State], bool]:
            return lambda s: s[0][i] == COMMITTED or s[0][i] == ABORTED

        return [leads_to(f"PreparedDecides_{name}", prepared(i), decided(i),
                         text=f'rmState[{name}] = "prepared" ~> '
                              f'rmState[{name}] \\in {{"committed", "aborted"}}')
                for i, name in enumerate(self._names)]

    def fairness(self) -> Sequence[Fairness]:
        """Weak fairness, per parameter value, of every step after voting; none for voting
        itself (an RM may stall before voting forever) nor for a backup TM's takeover. No step
        needs strong fairness (docs/layers/wormtx.md says why).

        ``Settle`` stands for the usual assumption of Paxos liveness that a write is eventually
        not preempted: without it two E3 RMs forcing the same stalled peer may preempt each other
        forever, and with ``flaky`` an A8 TM whose write timed out before taking effect (it does
        not retry) leaves the decision WOR EMPTY (the checker finds both lassos)."""
        if self.variant == A8:
            return [weak("TMCommit"), weak("TMAbort"), weak("ReadDecision"), weak("Settle")]
        return [weak("Notify"), weak("Timeout"), weak("ForceNo"), weak("Settle")]

    # -- display -----------------------------------------------------------------------------

    def variables(self, s: State) -> Mapping[str, object]:
        names = self._names
        out: dict[str, object] = {"rmState": {names[i]: RM_STATE_NAMES[x] for i, x in enumerate(s[0])}}
        regs = s[3][0][2]
        if self.variant == E3:
            out["pc"] = {names[i]: PC_NAMES[p] if p < FORCE else f"force {names[p - FORCE]}"
                         for i, p in enumerate(s[1])}
            out["heardYes"] = {names[i]: frozenset(names[j] for j in range(self.rm) if h >> j & 1)
                               for i, h in enumerate(s[2])}
            owner_names = ("none",) + names
            out["voteWOR"] = {names[j]: self._show_reg(reg, VOTE_NAMES, owner_names)
                              for j, reg in enumerate(regs)}
        else:
            out["prepared"] = frozenset(names[i] for i in range(self.rm) if s[1] >> i & 1)
            out["tmState"] = {f"tm{t}": TM_NAMES[x] for t, x in enumerate(s[2])}
            owner_names = ("none",) + tuple(f"tm{t}" for t in range(self.tms))
            out["decisionWOR"] = self._show_reg(regs[0], DECISION_NAMES, owner_names)
        return out

    @staticmethod
    def _show_reg(reg: tuple[int, int, int], values: tuple[str, ...], owners: tuple[str, ...]
                  ) -> dict[str, object]:
        v, own, prop = reg
        return {"value": values[v], "captured_by": owners[own],
                "proposed": frozenset(values[x] for x in range(1, len(values)) if prop >> x & 1)}

"""WormPaxos: state-machine replication over the atomic WormSpace, refining ``spec/smr.py``.

The log is the address space: address ``a`` is offset ``a % size`` of segment ``a // size``
(``segments * size`` addresses in all). Every process is a replica; the first ``leaders`` may
also lead. All WormSpace calls go through ``model/apps/space.py`` (one step per operation,
range operations one address per step).

* **Election**: ``Elect`` finds the lowest unallocated segment (for the rotating policy: the
  lowest unallocated segment of the process's turn, ``s % procs == p``); ``Alloc`` allocates
  it with the process's id as metadata. Only one contender wins; a loser goes back to idle.
* **Takeover** (sticky policy): before proposing, a new leader walks its own replica through
  every address below its segment: a written address is applied (``Learn``); a hole is
  captured (``Capture``: the read that finds it and the capture are one step) and filled with
  NO-OP (``Fill``); ``ALREADY_WRITTEN`` means a preempted proposal landed meanwhile, which the
  replica then learns. A capture preempts the predecessor, whose later writes there fail.
* **Sticky leader**: the leader captures its whole segment, one address per step
  (``CaptureOwn``), then ``Propose(c)`` writes the next free address: one write per command.
  ``OK`` means the command is chosen; the leader acknowledges it (``Respond``) at once, since
  every address below it is chosen (the takeover and its own earlier writes). ``PREEMPTED``
  or ``ALREADY_WRITTEN`` means it was deposed: it steps down (the proposal may still land,
  ``Settle``). A full segment sends the leader back to idle; it may elect again.
* **Rotating policy** (Mencius-like): segment ``s`` belongs to process ``s % procs``; each
  process allocates its own turns and fills them with commands (``Propose``) or NO-OPs
  (``Skip``) concurrently with the others, with no takeover first. So a command is
  acknowledged only once the leader's replica has applied it (every address below is chosen:
  Mencius' commit rule). An idle process may revoke a hole it meets while learning: it
  allocates the segment if its owner has not (``Elect`` + ``Alloc`` of another's turn), then
  captures the hole and fills it with NO-OP (``Capture`` + ``Fill``).
* **Learning**: ``Learn(r)`` reads replica ``r``'s next address and applies the value if it
  is written (commands and NO-OPs alike). ``Fail(p)`` stops a process for good, at any point
  (at most ``crashes`` of them).

Clients are folded into ``Propose``: a command is invoked when a leader writes it; each
command is proposed once (no client retries; a command whose write failed is pending forever
unless its proposal lands). A ghost per command records which commands had been acknowledged
when it was invoked, for the real-time invariant.

State (plain ints and tuples)::

    (space, procs, cmds)
    space   model/apps/space.py's: per segment (meta, trimmed, regs (val, owner, prop))
    proc    (phase, seg, cur, applied): seg is the segment being elected, taken over or led;
            cur the next address to capture (OWNING) or to write (LEADING); applied the
            values the replica applied, in log order (its length is the next address)
    cmd     (status, prec): status IDLE, PROPOSED (written or pending), OKED (its write
            answered OK), DONE (acknowledged); prec the bitmask of commands DONE when it was
            invoked

``bug`` seeds one mistake (see ``BUGS``) for the mutation tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from wormspace.checker.liveness import Fairness, Property, eventually, leads_to, weak
from wormspace.checker.model import Action, Model, ParameterError, Refinement
from wormspace.model.apps import space
from wormspace.spec import smr

IDLE, ELECTING, TAKEOVER, FILLING, OWNING, LEADING, DOWN = range(7)
PHASE_NAMES = ("idle", "electing", "takeover", "filling", "owning", "leading", "down")
C_IDLE, PROPOSED, OKED, DONE = range(4)
CMD_NAMES = ("idle", "proposed", "oked", "done")
POLICIES = ("sticky", "rotating")

#: The seeded bugs, each one switch in the model (and in ``wormpaxos_z3``).
BUGS = {
    "no_hole_filling": "a new leader reads a captured hole as NO-OP and applies it without "
                       "writing the NO-OP",
    "no_capture": "a new leader skips the takeover: it neither captures nor fills its "
                  "predecessors' unfinished addresses before proposing",
    "ack_before_apply": "a rotating leader acknowledges a command when its write returns OK, "
                        "before the lower turns are chosen (Mencius' commit rule broken)",
}
#: The policy each bug belongs to (the other policy has no such step to get wrong).
BUG_POLICY = {"no_hole_filling": "sticky", "no_capture": "sticky", "ack_before_apply": "rotating"}

Proc = tuple[int, int, int, tuple[int, ...]]
Cmd = tuple[int, int]
State = tuple[space.Space, tuple[Proc, ...], tuple[Cmd, ...]]


@dataclass
class WormPaxos(Model[State]):
    """WormPaxos with ``procs`` replicas (the first ``leaders`` may lead), ``commands``
    commands, and ``segments`` segments of ``size`` addresses (see the module docstring)."""

    procs: int = 2
    leaders: int = 2
    commands: int = 2
    segments: int = 2
    size: int = 2
    crashes: int = 1
    policy: str = "sticky"
    bug: str = ""
    noop: int = field(init=False)
    length: int = field(init=False)
    rotating: bool = field(init=False)

    def __post_init__(self) -> None:
        if min(self.procs, self.leaders, self.commands, self.segments, self.size) < 1:
            raise ParameterError("apps.wormpaxos: procs, leaders, commands, segments and size "
                                 "must be at least 1")
        if self.leaders > self.procs or not 0 <= self.crashes <= self.procs:
            raise ParameterError("apps.wormpaxos: need leaders <= procs and 0 <= crashes <= procs")
        if self.commands + 1 >= space.META - space.VALUE:
            raise ParameterError(f"apps.wormpaxos: at most {space.META - space.VALUE - 2} commands")
        if self.policy not in POLICIES:
            raise ParameterError(f"apps.wormpaxos: policy must be one of {', '.join(POLICIES)}, "
                                 f"not {self.policy!r}")
        if self.bug and self.bug not in BUGS:
            raise ParameterError(f"apps.wormpaxos: unknown bug {self.bug!r}; one of {sorted(BUGS)}")
        if self.bug and BUG_POLICY[self.bug] != self.policy:
            raise ParameterError(f"apps.wormpaxos: bug {self.bug} is a mistake of the "
                                 f"{BUG_POLICY[self.bug]} policy (set policy={BUG_POLICY[self.bug]})")
        if self.policy == "rotating" and self.leaders != self.procs:
            raise ParameterError("apps.wormpaxos: the rotating policy gives every process turns "
                                 "(leaders must equal procs)")
        self.name = "apps.wormpaxos"
        self.noop = self.commands + 1
        self.length = self.segments * self.size
        self.params = {"procs": self.procs, "leaders": self.leaders, "commands": self.commands,
                       "segments": self.segments, "size": self.size, "crashes": self.crashes,
                       "policy": self.policy, "bug": self.bug}
        self.rotating = self.policy == "rotating"

    # -- model interface -------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        return [(space.empty(self.segments, self.size), ((IDLE, 0, 0, ()),) * self.procs,
                 ((C_IDLE, 0),) * self.commands)]

    def actions(self) -> Sequence[Action[State]]:
        acts = [
            Action("Elect", self._elect, ("p", "s")),
            Action("Alloc", self._alloc, ("p", "s", "won")),
            Action("Capture", self._capture, ("p", "a")),
            Action("Fill", self._fill, ("p", "a", "ret")),
            Action("CaptureOwn", self._capture_own, ("p", "a")),
            Action("Propose", self._propose, ("p", "c", "a", "ret")),
            Action("Respond", self._respond, ("c",)),
            Action("Learn", self._learn, ("r", "a", "v")),
            Action("Settle", self._settle, ("a", "v")),
            Action("Fail", self._fail, ("p",)),
            Action("Terminated", self._terminated, ()),
        ]
        if self.rotating:
            acts.insert(6, Action("Skip", self._skip, ("p", "a", "ret")))
        return acts

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "AppliedIsChosen": self.applied_is_chosen,
            "ReplicasAgree": self.replicas_agree,
            "AppliedWasProposed": lambda s: all(s[2][v - 1][0] != C_IDLE for p in s[1]
                                                for v in p[3] if v != self.noop),
            "ChosenOnce": lambda s: all(self.log(s).count(c) <= 1
                                        for c in range(1, self.noop)),
            "AckedPrefixChosen": self.acked_prefix_chosen,
            "RealTimeOrder": self.real_time_order,
            "LeaderOwnsSegment": lambda s: all(
                s[0][seg][0] == p + 1 for p, (ph, seg, _c, _a) in enumerate(s[1])
                if ph in (TAKEOVER, OWNING, LEADING)),
        }

    def refinement(self) -> Refinement[State, smr.State]:
        return Refinement(smr.SMR(self.procs, self.commands, self.length, linearizable=True),
                          self.to_spec, "log = the values written at the addresses; a command "
                          "is pending from its proposal, done when acknowledged; each replica's "
                          "applied values map one to one")

    def properties(self) -> Sequence[Property]:
        """``AllCommandsApplied``: every command is eventually acknowledged and applied by
        every replica that has not failed (progress under a stable leader; see ``fairness``
        and docs/layers/wormpaxos.md for the configurations where it holds); and
        ``ChosenIsApplied``: a chosen command reaches every live replica."""
        def all_applied(s: State) -> bool:
            return all(st == DONE for st, _p in s[2]) and all(
                ph == DOWN or all(c in a for c in range(1, self.noop))
                for ph, _s, _c, a in s[1])

        return [
            eventually("AllCommandsApplied", all_applied,
                       text="<>(\\A c: acked(c) /\\ \\A r \\in Live: c \\in applied[r])"),
            leads_to("ChosenIsApplied", lambda s: 1 in self.log(s),
                     lambda s: all(ph == DOWN or 1 in a for ph, _s, _c, a in s[1]),
                     text="(c1 \\in log) ~> (\\A r \\in Live: c1 \\in applied[r])"),
        ]

    def fairness(self) -> Sequence[Fairness]:
        """Weak fairness, per process, of every step of a leader and of learning. ``Fail``
        and ``Settle`` are not fair (a process need not fail; a proposal need not land)."""
        return [weak(a) for a in ("Elect", "Alloc", "Capture", "Fill", "CaptureOwn",
                                  "Propose", "Skip", "Respond", "Learn")
                if a != "Skip" or self.rotating]

    def variables(self, s: State) -> Mapping[str, Any]:
        sp, procs, cmds = s
        regs = {}
        for a in range(self.length):
            seg, off = divmod(a, self.size)
            val, own, prop = sp[seg][2][off]
            regs[f"a{a}"] = (self.show(val) + (f" captured-by=p{own - 1}" if own else "")
                             + "".join(f" proposed={self.show(v)}" for v in range(1, self.noop + 1)
                                       if prop >> v & 1))
        return {
            "segments": {f"s{seg}": f"leader p{m - 1}" if m else "unallocated"
                         for seg, (m, _t, _r) in enumerate(sp)},
            "log": regs,
            "procs": {f"p{p}": f"{PHASE_NAMES[ph]}"
                      + (f" seg={seg}" if ph not in (IDLE, DOWN) else "")
                      + (f" cur={cur}" if ph in (OWNING, LEADING) else "")
                      + f" applied={[self.show(v) for v in a]}"
                      for p, (ph, seg, cur, a) in enumerate(procs)},
            "commands": {f"c{c + 1}": CMD_NAMES[st] + (f" after={self._names(prec)}" if prec else "")
                         for c, (st, prec) in enumerate(cmds)},
        }

    def show(self, v: int) -> str:
        """A register value, readably."""
        return "-" if v == 0 else "noop" if v == self.noop else f"c{v}"

    def _names(self, mask: int) -> list[str]:
        return [f"c{c + 1}" for c in range(self.commands) if mask >> c & 1]

    # -- derived ---------------------------------------------------------------------------

    def at(self, sp: space.Space, a: int) -> int:
        """The value written at address ``a`` (0 if empty)."""
        return space.value(sp, a // self.size, a % self.size)

    def log(self, s: State) -> list[int]:
        """The value at every address (0 for a hole)."""
        return [self.at(s[0], a) for a in range(self.length)]

    def address_of(self, s: State, c: int) -> int:
        """Where command ``c`` is written, or -1."""
        log = self.log(s)
        return log.index(c) if c in log else -1

    def applied_is_chosen(self, s: State) -> bool:
        """Every applied entry is the value written at its address."""
        return all(self.at(s[0], i) == v for p in s[1] for i, v in enumerate(p[3]))

    def replicas_agree(self, s: State) -> bool:
        """Replicas' applied sequences are prefixes of one another (the key safety property)."""
        seqs = sorted((p[3] for p in s[1]), key=len)
        return all(a == b[:len(a)] for a, b in pairwise(seqs))

    def acked_prefix_chosen(self, s: State) -> bool:
        """An acknowledged command, and (sticky) one whose write answered OK, has every
        address below it written."""
        log = self.log(s)
        for c, (st, _prec) in enumerate(s[2]):
            if st == DONE or (st == OKED and not self.rotating):
                if c + 1 not in log or not all(log[:log.index(c + 1)]):
                    return False
        return True

    def real_time_order(self, s: State) -> bool:
        """A command acknowledged before another was invoked lies below it, wherever the
        later one is written or proposed."""
        sp = s[0]
        for c2, (_st, prec) in enumerate(s[2]):
            if not prec:
                continue
            lows = [self.address_of(s, c1 + 1) for c1 in range(self.commands) if prec >> c1 & 1]
            for a in range(self.length):
                seg, off = divmod(a, self.size)
                val, _own, prop = sp[seg][2][off]
                if (val == c2 + 1 or prop >> (c2 + 1) & 1) and any(a <= lo for lo in lows):
                    return False
        return True

    def to_spec(self, s: State) -> smr.State:
        """The refinement mapping onto ``smr.SMR``."""
        status = tuple(smr.IDLE if st == C_IDLE else smr.DONE if st == DONE else smr.PENDING
                       for st, _p in s[2])
        return (tuple(self.log(s)), status, tuple(p[3] for p in s[1]))

    # -- helpers ---------------------------------------------------------------------------

    def _set(self, s: State, p: int, x: Proc, sp: space.Space | None = None,
             cmds: tuple[Cmd, ...] | None = None) -> State:
        procs = s[1][:p] + (x,) + s[1][p + 1:]
        return (s[0] if sp is None else sp, procs, s[2] if cmds is None else cmds)

    def _may_lead(self, p: int) -> bool:
        return p < self.leaders

    def _seg_end(self, seg: int) -> int:
        return (seg + 1) * self.size

    # -- election --------------------------------------------------------------------------

    def _elect(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        sp = s[0]
        for p, (ph, _seg, _cur, a) in enumerate(s[1]):
            if ph != IDLE or not self._may_lead(p):
                continue
            free = [seg for seg in range(self.segments) if sp[seg][0] == 0
                    and (not self.rotating or seg % self.procs == p)]
            if free:
                yield (p, free[0]), self._set(s, p, (ELECTING, free[0], 0, a))
            hole = len(a) // self.size
            if self.rotating and len(a) < self.length and sp[hole][0] == 0 \
                    and hole % self.procs != p:
                # Revoke another process's turn that its owner has not allocated.
                yield (p, hole), self._set(s, p, (ELECTING, hole, 0, a))

    def _alloc(self, s: State) -> Iterator[tuple[tuple[int, int, bool], State]]:
        for p, (ph, seg, _cur, a) in enumerate(s[1]):
            if ph != ELECTING:
                continue
            for code, sp in space.alloc(s[0], seg, p + 1):
                if code != space.META + p + 1 or (self.rotating and seg % self.procs != p):
                    # Lost; or a revocation, won or lost: the holes are then filled as usual.
                    yield (p, seg, code == space.META + p + 1), self._set(s, p, (IDLE, 0, 0, a), sp)
                elif self.rotating or self.bug == "no_capture":
                    yield (p, seg, True), self._set(s, p, (OWNING, seg, seg * self.size, a), sp)
                else:
                    yield (p, seg, True), self._set(s, p, (TAKEOVER, seg, 0, a), sp)

    # -- takeover and hole filling ---------------------------------------------------------

    def _capture(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        """A hole at the replica's next address: capture it (the read finding it is merged
        in: a write landing between the two is indistinguishable from one landing before)."""
        sp = s[0]
        for p, (ph, seg, _cur, a) in enumerate(s[1]):
            nxt = len(a)
            if ph == TAKEOVER:
                ok = nxt < seg * self.size
            else:  # rotating: an idle process revokes a hole it meets while learning
                ok = self.rotating and ph == IDLE and nxt < self.length
            if not ok or self.at(sp, nxt) or sp[nxt // self.size][0] == 0:
                continue  # no hole, or its segment is not allocated (NOT_ALLOCATED)
            for _code, sp2 in space.capture(sp, nxt // self.size, nxt % self.size, p):
                yield (p, nxt), self._set(s, p, (FILLING, seg if ph == TAKEOVER else 0, 0, a), sp2)

    def _fill(self, s: State) -> Iterator[tuple[tuple[int, int, str], State]]:
        sp = s[0]
        for p, (ph, seg, _cur, a) in enumerate(s[1]):
            if ph != FILLING:
                continue
            nxt = len(a)
            back = IDLE if self.rotating else TAKEOVER
            if self.bug == "no_hole_filling" and not self.at(sp, nxt):
                yield (p, nxt, "read-as-noop"), self._set(s, p, (back, seg, 0, a + (self.noop,)))
                continue
            for code, sp2 in space.write(sp, nxt // self.size, nxt % self.size, p, self.noop):
                x = (IDLE, 0, 0, a) if code == space.PREEMPTED else (back, seg, 0, a)
                yield (p, nxt, space.code_name(code)), self._set(s, p, x, sp2)

    # -- leading ---------------------------------------------------------------------------

    def _capture_own(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        for p, (ph, seg, cur, a) in enumerate(s[1]):
            if ph == TAKEOVER and len(a) >= seg * self.size:
                cur = seg * self.size  # the takeover is over: capture our own segment
            elif ph != OWNING:
                continue
            for _code, sp in space.capture(s[0], seg, cur % self.size, p):
                done = cur + 1 == self._seg_end(seg)
                x = (LEADING, seg, seg * self.size, a) if done else (OWNING, seg, cur + 1, a)
                yield (p, cur), self._set(s, p, x, sp)

    def _write_next(self, s: State, p: int, v: int) -> Iterator[tuple[int, State]]:
        """Leader ``p`` writes ``v`` at its next free address: the code and the state after
        (the leader advanced, or stepped down)."""
        _ph, seg, cur, a = s[1][p]
        for code, sp in space.write(s[0], seg, cur % self.size, p, v):
            if code == space.OK:
                nxt = cur + 1
                x = (LEADING, seg, nxt, a) if nxt < self._seg_end(seg) else (IDLE, 0, 0, a)
            else:
                x = (IDLE, 0, 0, a)
            yield code, self._set(s, p, x, sp)

    def _propose(self, s: State) -> Iterator[tuple[tuple[int, int, int, str], State]]:
        done = sum(1 << c for c, (st, _p) in enumerate(s[2]) if st == DONE)
        for p, (ph, _seg, cur, _a) in enumerate(s[1]):
            if ph != LEADING:
                continue
            for c, (st, _prec) in enumerate(s[2]):
                if st != C_IDLE:
                    continue
                for code, t in self._write_next(s, p, c + 1):
                    cmd = (OKED if code == space.OK else PROPOSED, done)
                    yield ((p, c + 1, cur, space.code_name(code)),
                           (t[0], t[1], t[2][:c] + (cmd,) + t[2][c + 1:]))

    def _skip(self, s: State) -> Iterator[tuple[tuple[int, int, str], State]]:
        for p, (ph, _seg, cur, _a) in enumerate(s[1]):
            if ph == LEADING:
                for code, t in self._write_next(s, p, self.noop):
                    yield (p, cur, space.code_name(code)), t

    def _respond(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c, (st, prec) in enumerate(s[2]):
            if st != OKED:
                continue
            addr = self.address_of(s, c + 1)
            leader = s[0][addr // self.size][0] - 1
            lph, _seg, _cur, la = s[1][leader]
            if lph == DOWN:
                continue  # the acknowledgement dies with its leader
            if self.rotating and self.bug != "ack_before_apply" and len(la) <= addr:
                continue  # Mencius: acknowledge once every address below is chosen
            yield (c + 1,), (s[0], s[1], s[2][:c] + ((DONE, prec),) + s[2][c + 1:])

    # -- learning, settling, failures ------------------------------------------------------

    def _learn(self, s: State) -> Iterator[tuple[tuple[int, int, str], State]]:
        sp = s[0]
        for r, (ph, seg, cur, a) in enumerate(s[1]):
            nxt = len(a)
            if ph in (FILLING, DOWN) or nxt >= self.length:
                continue
            v = self.at(sp, nxt)
            if v:
                yield (r, nxt, self.show(v)), self._set(s, r, (ph, seg, cur, a + (v,)))

    def _settle(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        for (seg, off, v), sp in space.settle(s[0]):
            yield (seg * self.size + off, self.show(v)), (sp, s[1], s[2])

    def _fail(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        if sum(ph == DOWN for ph, *_r in s[1]) >= self.crashes:
            return
        for p, (ph, _seg, _cur, a) in enumerate(s[1]):
            if ph != DOWN:
                yield (p,), self._set(s, p, (DOWN, 0, 0, a))

    def _terminated(self, s: State) -> list[tuple[tuple[()], State]]:
        """The stutter of a run that used up its bounds (every segment allocated, or every
        command proposed), so that the end of the bounded log is not reported as a deadlock."""
        if all(seg[0] for seg in s[0]) or all(st != C_IDLE for st, _p in s[2]):
            return [((), s)]
        return []

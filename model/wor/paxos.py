"""Paxos-WOR: a write-once register on 2f+1 acceptors, refining the atomic WOR (``spec/wor.py``).

The model is written in the style of Lamport's TLA+ Paxos: the network is the *set of sent
messages*, never emptied, and a process acts on any messages in it. So loss (a message is
never acted on), duplication (acted on twice), delay and reordering are all behaviours, and a
client "receiving a quorum of replies" is the existence of those replies in the set.

* **Acceptors** keep durable state ``(promised, accepted ballot, accepted value)``. A crash and
  restart (``Restart``) keeps it; a down acceptor is indistinguishable from a slow one in a
  message-set network, so down time needs no state of its own.
* **Clients** run ``capture`` (phase 1), ``write`` (phase 2, carrying the highest accepted value
  the promises reveal, else the client's own), the unsafe write (phase 2 at ballot 0 without
  capture; the application guarantees a single unsafe write per register, so the model allows
  one only while no ballot-0 proposal exists), and ``read``: a phase 1 at a fresh ballot that
  returns when a quorum agrees (all empty, or all the same vote) and otherwise *completes the
  half-written value* (phase 2 of the highest vote) before returning it. A client may give up
  at any point (``Timeout``). Client ``c``'s ballot in round ``r`` is ``r*clients + c + 1``.
* **Ghost variables** (never read by the protocol, only by the refinement mapping): the latest
  completed capture (ballot and client), the set of values writes were invoked with, and per
  reader whether the register was empty when the read was invoked.

``bug`` switches on one seeded bug (see ``BUGS``) for the mutation tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations, permutations
from typing import Any

from wormspace.checker.liveness import Fairness, Property, leads_to, weak
from wormspace.checker.model import Action, Model, ParameterError, Refinement
from wormspace.spec import wor as spec

# Client phases. HOLD: idle, holding the capture id (ballot) of its last capture.
IDLE, HOLD, CAPTURING, WRITING, UWRITING, READING, REPAIRING = range(7)
PHASE_NAMES = ("idle", "hold", "capturing", "writing", "unsafe_writing", "reading", "repairing")

#: The seeded bugs, each one switch in the model (and in ``paxos_z3``).
BUGS = {
    "accept_below_promise": "an acceptor accepts a proposal below its promise",
    "ignore_promised_values": "a writer ignores the accepted values its promises reveal",
    "read_without_repair": "a read returns the highest accepted value without completing it",
    "half_quorum": "quorums of n//2 acceptors instead of a majority",
    "shared_ballots": "all clients use the same ballot sequence",
    "forget_promise": "an acceptor forgets its promise on restart (keeps only its vote)",
}

# State layout: (acceptors, m1a, m1b, m2a, m2b, clients, ghost)
#   acceptors  per acceptor (promised, accb, accv); accv 0 = nothing accepted
#   m1a        bitmask of ballots prepared
#   m1b        frozenset (n, b, accb, accv): n promised b, reporting its vote
#   m2a        frozenset (b, v): proposals
#   m2b        frozenset (n, b, v): votes
#   clients    per client (phase, rounds used, arg, ret, ghost bit): the ghost bit is, while
#              reading, "the register was empty when the read began"; while writing, "the
#              capture was still the latest when the write began"; while capturing, "a
#              later capture completed while this one was pending"; else 0
#   ghost      (latest capture ballot, its client + 1, proposed-values bitmask)
Acc = tuple[int, int, int]
Cli = tuple[int, int, int, int, int]
State = tuple[tuple[Acc, ...], int, frozenset[Any], frozenset[Any], frozenset[Any],
              tuple[Cli, ...], tuple[int, int, int]]


@dataclass
class PaxosWOR(Model[State]):
    """Paxos-WOR with ``acceptors`` acceptors, ``clients`` clients, ``values`` values and
    ``rounds`` ballots per client (each capture or read uses one)."""

    acceptors: int = 3
    clients: int = 2
    values: int = 2
    rounds: int = 1
    unsafe: bool = True
    bug: str = ""
    #: When a pending client may give up (``Timeout``): ``"any"`` time, or only once it is
    #: ``"preempted"`` (a higher ballot was prepared: a real client learns it from a rejection).
    give_up: str = "any"
    #: Liveness only: how many acceptors (0..live-1) are live, i.e. fair; -1 = a majority.
    live: int = -1
    quorums: tuple[frozenset[int], ...] = field(init=False)

    def __post_init__(self) -> None:
        if min(self.acceptors, self.clients, self.values, self.rounds) < 1:
            raise ParameterError("wor.paxos: acceptors, clients, values, rounds must be >= 1")
        if self.bug and self.bug not in BUGS:
            raise ParameterError(f"wor.paxos: unknown bug {self.bug!r}; one of {sorted(BUGS)}")
        if self.give_up not in ("any", "preempted"):
            raise ParameterError(f"wor.paxos: give_up must be 'any' or 'preempted', got {self.give_up!r}")
        if self.live > self.acceptors:
            raise ParameterError(f"wor.paxos: live={self.live} exceeds acceptors={self.acceptors}")
        self.name = "wor.paxos"
        self.params = {"acceptors": self.acceptors, "clients": self.clients,
                       "values": self.values, "rounds": self.rounds, "unsafe": self.unsafe,
                       "bug": self.bug, "give_up": self.give_up, "live": self.live}
        size = self.acceptors // 2 + (0 if self.bug == "half_quorum" else 1)
        self.quorums = tuple(frozenset(q) for q in combinations(range(self.acceptors), size))
        self._perm_table: list[tuple[tuple[int, ...], tuple[int, ...]]] | None = None

    # -- ballots ---------------------------------------------------------------------------

    def ballot(self, c: int, rnd: int) -> int:
        """Client ``c``'s ballot in round ``rnd`` (0-based)."""
        if self.bug == "shared_ballots":
            return rnd + 1
        return rnd * self.clients + c + 1

    def current_ballot(self, c: int, rounds_used: int) -> int:
        """The ballot of the client's latest capture or read (0 before any)."""
        return self.ballot(c, rounds_used - 1) if rounds_used else 0

    # -- model interface -------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        return [(((0, 0, 0),) * self.acceptors, 0, frozenset(), frozenset(), frozenset(),
                 ((IDLE, 0, 0, spec.NONE, 0),) * self.clients, (0, 0, 0))]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("Capture", self._capture, ("c",)),
            Action("CaptureDone", self._capture_done, ("c",)),
            Action("Write", self._write, ("c", "v")),
            Action("UnsafeWrite", self._unsafe_write, ("c", "v")),
            Action("WriteDone", self._write_done, ("c", "ret")),
            Action("Read", self._read, ("c",)),
            Action("ReadDecide", self._read_decide, ("c", "outcome")),
            Action("ReadRepaired", self._read_repaired, ("c", "v")),
            Action("Timeout", self._timeout, ("c",)),
            Action("Promise", self._promise, ("a", "b")),
            Action("Accept", self._accept, ("a", "b", "v")),
            Action("Restart", self._restart, ("a",)),
        ]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "Lemma1": self.lemma1,
            "Theorem1": lambda s: len({v for _b, v in self.chosen(s)}) <= 1,
            "ReadReturnsChosen": self._read_returns_chosen,
            "OkMeansChosen": self._ok_means_chosen,
        }

    def refinement(self) -> Refinement[State, spec.State]:
        return Refinement(spec.WOR(self.clients, self.values), self.to_spec,
                          "register = the chosen value; a write takes effect when its value "
                          "is chosen at its ballot; a capture at its completion")

    # -- liveness (checker/liveness.py; docs/liveness.md) ------------------------------------

    def properties(self) -> Sequence[Property]:
        """Availability, one property per client: once the client is capturing at the highest
        ballot prepared, its capture-and-write completes (``OK`` or ``ALREADY_WRITTEN``) unless
        a competing capture or read prepares a higher ballot (WORMSPACE.md section 1: "with a
        live majority, fair delivery and no competing captures after some point")."""

        def top(c: int, s: State) -> bool:  # no ballot above c's current one was prepared
            return s[1] >> (self.current_ballot(c, s[5][c][1]) + 1) == 0

        def capturing_at_top(c: int) -> Callable[[State], bool]:
            return lambda s: s[5][c][0] == CAPTURING and top(c, s)

        def completed_or_rivalled(c: int) -> Callable[[State], bool]:
            return lambda s: s[5][c][3] in (spec.OK, spec.ALREADY_WRITTEN) or not top(c, s)

        return [leads_to(f"CaptureWriteCompletes_c{c}", capturing_at_top(c),
                         completed_or_rivalled(c),
                         text=f"c{c} capturing at the top ballot ~> c{c} returns OK or "
                         "ALREADY_WRITTEN, or a higher ballot is prepared")
                for c in range(self.clients)]

    def fairness(self) -> Sequence[Fairness]:
        """Fair delivery at a live set of acceptors (a majority unless ``live`` says otherwise)
        and clients that keep going: weak fairness per parameter value."""
        live = self.acceptors // 2 + 1 if self.live < 0 else self.live
        def at_live(p: tuple[Any, ...]) -> bool:
            return bool(p[0] < live)

        return [weak("Promise", where=at_live, where_text=f"a < {live}"),
                weak("Accept", where=at_live, where_text=f"a < {live}"), weak("CaptureDone"),
                weak("Write"), weak("WriteDone"), weak("ReadDecide"), weak("ReadRepaired"),
                weak("Timeout")]

    # -- derived predicates ----------------------------------------------------------------

    def chosen(self, s: State) -> set[tuple[int, int]]:
        """``(b, v)`` such that a quorum voted for ``v`` at ballot ``b``."""
        voters: dict[tuple[int, int], set[int]] = {}
        for n, b, v in s[4]:
            voters.setdefault((b, v), set()).add(n)
        return {bv for bv, ns in voters.items() if any(q <= ns for q in self.quorums)}

    def lemma1(self, s: State) -> bool:
        """Lemma 1: a value chosen at ballot b is carried by every proposal above b."""
        return all(v2 == v for b, v in self.chosen(s) for b2, v2 in s[3] if b2 > b)

    def _read_returns_chosen(self, s: State) -> bool:
        vals = {v for _b, v in self.chosen(s)}
        return all(ret < spec.VALUE or ret - spec.VALUE in vals for (_p, _r, _a, ret, _e) in s[5])

    def _ok_means_chosen(self, s: State) -> bool:
        vals = {v for _b, v in self.chosen(s)}
        return all(ret != spec.OK or arg in vals for (_p, _r, arg, ret, _e) in s[5])

    # -- client actions --------------------------------------------------------------------

    def _capture(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c, (ph, rnd, _arg, _ret, _e) in enumerate(s[5]):
            if ph in (IDLE, HOLD) and rnd < self.rounds:
                b = self.ballot(c, rnd)
                yield (c,), _cli(_with(s, m1a=s[1] | 1 << b), c, (CAPTURING, rnd + 1, 0, 0, 0))

    def _promises(self, s: State, b: int) -> dict[int, set[tuple[int, int]]]:
        """Acceptor -> the votes it reported when promising ``b`` (one, unless a seeded bug
        lets it promise ``b`` twice)."""
        out: dict[int, set[tuple[int, int]]] = {}
        for n, b1, mb, mv in s[2]:
            if b1 == b:
                out.setdefault(n, set()).add((mb, mv))
        return out

    def _reports(self, proms: dict[int, set[tuple[int, int]]], q: frozenset[int]) -> set[
            tuple[int, int]]:
        return {r for n in q for r in proms[n]}

    @staticmethod
    def _top_values(reported: set[tuple[int, int]]) -> set[int]:
        """The values of the highest-ballot votes (one value unless a bug allows more)."""
        votes = {r for r in reported if r[1] != 0}
        top = max(mb for mb, _mv in votes)
        return {mv for mb, mv in votes if mb == top}

    def _has_quorum(self, ns: Iterable[int]) -> Iterator[frozenset[int]]:
        got = set(ns)
        return (q for q in self.quorums if q <= got)

    def _capture_done(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c, (ph, rnd, arg, _ret, _e) in enumerate(s[5]):
            b = self.current_ballot(c, rnd)
            if ph == CAPTURING and any(self._has_quorum(self._promises(s, b))):
                top, _owner, prop = s[6]
                t = _cli(s, c, (HOLD, rnd, arg, spec.CAPTURED, 0))
                if b > top:  # the latest capture: mark the captures it overlaps (ghost)
                    t = _with(t, ghost=(b, c + 1, prop))
                    t = t[:5] + (tuple((p, r, a, rt, 1) if p == CAPTURING else (p, r, a, rt, e2)
                                       for p, r, a, rt, e2 in t[5]), t[6])
                yield (c,), t

    def _carried(self, s: State, b: int, own: int) -> set[int]:
        """The values phase 2 at ``b`` may carry: per promise quorum, the highest vote it
        reveals, or ``own`` when it reveals none."""
        proms = self._promises(s, b)
        out = set()
        for q in self._has_quorum(proms):
            reported = self._reports(proms, q)
            if any(mv for _mb, mv in reported) and self.bug != "ignore_promised_values":
                out |= self._top_values(reported)
            else:
                out.add(own)
        return out

    def _write(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c, (ph, rnd, _arg, _ret, _e) in enumerate(s[5]):
            if ph != HOLD:
                continue
            b = self.current_ballot(c, rnd)
            live = int(s[6][1] == c + 1)  # ghost: was this capture still the latest?
            for v in range(1, self.values + 1):
                for w in sorted(self._carried(s, b, v)):
                    t = _with(s, m2a=s[3] | {(b, w)}, ghost=(s[6][0], s[6][1], s[6][2] | 1 << v))
                    yield (c, v), _cli(t, c, (WRITING, rnd, v, 0, live))

    def _unsafe_write(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        if not self.unsafe or any(b == 0 for b, _v in s[3]):
            return  # the application's guarantee: one unsafe write per register
        for c, (ph, rnd, _arg, _ret, _e) in enumerate(s[5]):
            if ph in (IDLE, HOLD):
                for v in range(1, self.values + 1):
                    t = _with(s, m2a=s[3] | {(0, v)}, ghost=(s[6][0], s[6][1], s[6][2] | 1 << v))
                    yield (c, v), _cli(t, c, (UWRITING, rnd, v, 0, 0))

    def _voted_by_quorum(self, s: State, b: int) -> set[int]:
        voters: dict[int, set[int]] = {}
        for n, b1, v in s[4]:
            if b1 == b:
                voters.setdefault(v, set()).add(n)
        return {v for v, ns in voters.items() if any(self._has_quorum(ns))}

    def _write_done(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        for c, (ph, rnd, arg, _ret, _e) in enumerate(s[5]):
            if ph not in (WRITING, UWRITING):
                continue
            b = self.current_ballot(c, rnd) if ph == WRITING else 0
            for w in sorted(self._voted_by_quorum(s, b)):
                ret = spec.OK if w == arg else spec.ALREADY_WRITTEN
                yield (c, spec.ret_name(ret)), _cli(s, c, (IDLE, rnd, arg, ret, 0))

    def _read(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        empty = int(not self.chosen(s))  # ghost: for the refinement mapping only
        for c, (ph, rnd, _arg, _ret, _e) in enumerate(s[5]):
            if ph in (IDLE, HOLD) and rnd < self.rounds:
                b = self.ballot(c, rnd)
                yield (c,), _cli(_with(s, m1a=s[1] | 1 << b), c, (READING, rnd + 1, 0, 0, empty))

    def _read_decide(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        for c, (ph, rnd, _arg, _ret, e) in enumerate(s[5]):
            if ph != READING:
                continue
            b = self.current_ballot(c, rnd)
            proms = self._promises(s, b)
            outs: dict[State, str] = {}
            for q in self._has_quorum(proms):
                reported = self._reports(proms, q)
                if reported == {(0, 0)}:
                    outs.setdefault(_cli(s, c, (IDLE, rnd, 0, spec.EMPTY, 0)), "EMPTY")
                    continue
                for w in sorted(self._top_values(reported)):
                    if len(reported) == 1 or self.bug == "read_without_repair":
                        t = _cli(s, c, (IDLE, rnd, 0, spec.VALUE + w, 0))
                        outs.setdefault(t, f"v{w}")
                    else:  # a half-written quorum: complete the highest vote first
                        t = _cli(_with(s, m2a=s[3] | {(b, w)}), c, (REPAIRING, rnd, 0, 0, e))
                        outs.setdefault(t, f"repair v{w}")
            for t, label in outs.items():
                yield (c, label), t

    def _read_repaired(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        for c, (ph, rnd, _arg, _ret, _e) in enumerate(s[5]):
            if ph == REPAIRING:
                for w in sorted(self._voted_by_quorum(s, self.current_ballot(c, rnd))):
                    yield (c, w), _cli(s, c, (IDLE, rnd, 0, spec.VALUE + w, 0))

    def _timeout(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c, (ph, rnd, arg, _ret, _e) in enumerate(s[5]):
            if self.give_up == "preempted" and s[1] >> (self.current_ballot(c, rnd) + 1) == 0:
                continue  # no higher ballot was prepared: a patient client keeps waiting
            if ph in (CAPTURING, WRITING, UWRITING):
                yield (c,), _cli(s, c, (IDLE, rnd, arg, spec.PREEMPTED, 0))
            elif ph in (READING, REPAIRING):
                yield (c,), _cli(s, c, (IDLE, rnd, arg, spec.TIMEOUT, 0))

    # -- acceptor actions ------------------------------------------------------------------

    def _promise(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        for n, (prom, accb, accv) in enumerate(s[0]):
            for b in _bits(s[1]):
                if b > prom:
                    t = _with(s, m1b=s[2] | {(n, b, accb, accv)})
                    yield (n, b), _acc(t, n, (b, accb, accv))

    def _accept(self, s: State) -> Iterator[tuple[tuple[int, int, int], State]]:
        for n, (prom, _accb, _accv) in enumerate(s[0]):
            for b, v in s[3]:
                if b >= prom or self.bug == "accept_below_promise":
                    t = _with(s, m2b=s[4] | {(n, b, v)})
                    yield (n, b, v), _acc(t, n, (max(b, prom), b, v))

    def _restart(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for n, (_prom, accb, accv) in enumerate(s[0]):
            if self.bug == "forget_promise":
                yield (n,), _acc(s, n, (accb, accb, accv))
            else:  # durable state survives the crash; nothing volatile to lose
                yield (n,), s

    # -- refinement mapping ----------------------------------------------------------------

    def to_spec(self, s: State) -> spec.State:
        """The refinement mapping onto ``spec.WOR``."""
        ch = self.chosen(s)
        reg = min(v for _b, v in ch) if ch else 0
        _top, owner, prop = s[6]
        cl = []
        for c, (ph, rnd, arg, ret, e) in enumerate(s[5]):
            if ph in (IDLE, HOLD):
                cl.append((spec.IDLE, arg, 0, int(ph == HOLD), ret))
            elif ph == CAPTURING:
                cl.append((spec.CAPTURE, 0, e, 0, spec.NONE))
            elif ph == WRITING:
                done = (self.current_ballot(c, rnd), arg) in ch
                cl.append((spec.WRITE, arg, spec.OK if done else 0, e, spec.NONE))
            elif ph == UWRITING:
                cl.append((spec.UWRITE, arg, 0, 0, spec.NONE))
            else:
                res = spec.EMPTY if e else spec.read_result(reg)
                cl.append((spec.READ, 0, res, 0, spec.NONE))
        return (reg, owner, prop, tuple(cl))

    # -- symmetry and display --------------------------------------------------------------

    def _perms(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Every (acceptor, value) permutation pair, built on first use (symmetry only)."""
        if self._perm_table is None:
            self._perm_table = [(pa, pv) for pa in permutations(range(self.acceptors))
                                for pv in permutations(range(1, self.values + 1))]
        return self._perm_table

    def canonical(self, s: State) -> State:
        """Exact representative under permutations of acceptors and of values."""
        best_key: Any = None
        best: State = s
        for pa, pv in self._perms():
            t = self._permute(s, pa, pv)
            key = (t[0], sorted(t[2]), sorted(t[3]), sorted(t[4]), t[5], t[6])
            if best_key is None or key < best_key:
                best_key, best = key, t
        return best

    def _permute(self, s: State, pa: tuple[int, ...], pv: tuple[int, ...]) -> State:
        def v_(v: int) -> int:
            return pv[v - 1] if v else 0

        accs: list[Acc] = [(0, 0, 0)] * self.acceptors
        for n, (p, b, v) in enumerate(s[0]):
            accs[pa[n]] = (p, b, v_(v))
        cl = tuple((ph, r, v_(a), spec.VALUE + v_(ret - spec.VALUE) if ret >= spec.VALUE
                    else ret, e) for ph, r, a, ret, e in s[5])
        top, owner, prop = s[6]
        prop2 = sum(1 << v_(v) for v in range(1, self.values + 1) if prop >> v & 1)
        return (tuple(accs), s[1], frozenset((pa[n], b, mb, v_(mv)) for n, b, mb, mv in s[2]),
                frozenset((b, v_(v)) for b, v in s[3]),
                frozenset((pa[n], b, v_(v)) for n, b, v in s[4]), cl, (top, owner, prop2))

    def variables(self, s: State) -> Mapping[str, Any]:
        return {
            "acceptors": {f"a{n}": {"promised": p, "accepted": f"({b}, v{v})" if v else "-"}
                          for n, (p, b, v) in enumerate(s[0])},
            "msgs": sorted([f"1a({b})" for b in _bits(s[1])]
                           + [f"1b(a{n}, {b}, " + (f"({mb}, v{mv}))" if mv else "-)")
                              for n, b, mb, mv in s[2]]
                           + [f"2a({b}, v{v})" for b, v in s[3]]
                           + [f"2b(a{n}, {b}, v{v})" for n, b, v in s[4]]),
            "clients": {f"c{c}": f"{PHASE_NAMES[ph]} ballot={self.current_ballot(c, r)}"
                        + (f" arg=v{a}" if a else "") + f" ret={spec.ret_name(ret)}"
                        for c, (ph, r, a, ret, _e) in enumerate(s[5])},
            "chosen": sorted(f"({b}, v{v})" for b, v in self.chosen(s)),
        }


def _bits(mask: int) -> Iterator[int]:
    b = 0
    while mask:
        if mask & 1:
            yield b
        mask >>= 1
        b += 1


def _with(s: State, *, m1a: int | None = None, m1b: frozenset[Any] | None = None,
          m2a: frozenset[Any] | None = None, m2b: frozenset[Any] | None = None,
          ghost: tuple[int, int, int] | None = None) -> State:
    return (s[0], s[1] if m1a is None else m1a, s[2] if m1b is None else m1b,
            s[3] if m2a is None else m2a, s[4] if m2b is None else m2b, s[5],
            s[6] if ghost is None else ghost)


def _cli(s: State, c: int, x: Cli) -> State:
    return s[:5] + (s[5][:c] + (x,) + s[5][c + 1:], s[6])


def _acc(s: State, n: int, x: Acc) -> State:
    return (s[0][:n] + (x,) + s[0][n + 1:],) + s[1:]

"""The symbolic encoding of Paxos-WOR (``paxos.py``) and its inductive invariant, in EPR.

One encoding, written against ``wormspace.checker.prove.Vocab``, serves two purposes:

* with uninterpreted sorts (unbounded acceptors, quorums, ballots, values, clients) it is the
  proof (:func:`proof_suite`), in the style of "Paxos Made EPR" (Padon et al., OOPSLA 2017):
  a total order on ballots and quorum intersection are axioms; the state is relations, plus
  functions from clients only; every action defines the relations it changes explicitly
  (``R'(x) <-> R(x) | x = new``) and leaves the others alone. The quantifier alternations are
  stratified (client > quorum > ballot, value > node), so every obligation is decidable;
* with finite sorts it is compared, state by state, with the explicit model
  (:func:`conformance`): both have the same initial states and the same successors.

The acceptor's ``promised`` ballot is kept as two relations, ``joined(n, b)`` (b <= promised)
and ``left_rnd(n, b)`` (b < promised), so that "promise b only if b > promised" and "accept b
only if b >= promised" need no function from acceptors to ballots (which, against the
``choosable`` invariant's ballot -> acceptor alternation, would leave EPR).

A promise (1b message) ``m1b(n, b, mb, mv)`` reports the acceptor's last accepted vote
``(mb, mv)`` (``(zero, none)`` if none). Two derived relations, maintained by the same action
and checked by conformance like everything else, keep the proposer's rule in EPR: ``one_b(n,
b)`` (n sent some promise for b) and ``reported_at(n, b, x)`` (n's promise for b reported a
vote at a ballot >= x). "Every member of q promised b" is then ``forall n in q. one_b(n, b)``
instead of ``forall n in q. exists mb, mv. m1b(n, b, mb, mv)``, whose acceptor -> ballot
Skolem function would close a cycle with ``choosable``.

Each action mirrors one action of ``PaxosWOR`` and takes the same ``bug`` switch, so a seeded
bug both shows up in the explored state space and breaks an obligation here.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from typing import Any

from wormspace.checker.conformance import ConformanceReport, Universe, check_conformance
from wormspace.checker.prove import Formula, ProofSuite, Transition, View, Vocab, lazy_transitions, suite
from wormspace.model.wor import paxos as px
from wormspace.model.wor.client_encoding import ClientEncoding
from wormspace.spec import wor as spec

N, Q, B, V_, C = "node", "quorum", "ballot", "value", "client"
PHASES = ("IDLE", "HOLD", "CAPTURING", "WRITING", "UWRITING", "READING", "REPAIRING")
RETS = ("NONE", "CAPTURED", "PREEMPTED", "OK", "ALREADY_WRITTEN", "EMPTY", "TIMEOUT", "VALUE")
CLIENT = ("phase", "cur", "arg", "retc", "retv")


class PaxosEncoding(ClientEncoding):
    """Sorts, symbols, axioms, init, actions, invariant and safety of Paxos-WOR over ``V``."""

    def __init__(self, V: Vocab, bug: str = "", unsafe: bool = True) -> None:
        self.V, self.bug, self.unsafe = V, bug, unsafe
        for s in (N, Q, B, V_, C):
            V.sort(s)
        self.ph = dict(zip(PHASES, V.enum("phase", PHASES)))
        self.rc = dict(zip(RETS, V.enum("ret", RETS)))
        self.zero = V.const("zero", B)  # ballot 0: the unsafe write's, below every capture's
        self.none = V.const("none", V_)  # "no value"
        self.le = V.rigid("le", B, B)
        self.member = V.rigid("member", N, Q)
        self.owns = V.rigid("owns", C, B)  # client c uses ballot b (for capture or read)
        # Messages (never removed: a message-set network).
        self.m1a = V.relation("m1a", B)
        self.one_b = V.relation("one_b", N, B)
        self.m1b = V.relation("m1b", N, B, B, V_)
        self.reported_at = V.relation("reported_at", N, B, B)
        self.m2a = V.relation("m2a", B, V_)
        self.m2b = V.relation("m2b", N, B, V_)
        # Acceptors' durable state.
        self.joined = V.relation("joined", N, B)
        self.left_rnd = V.relation("left_rnd", N, B)
        self.accepted = V.relation("accepted", N, B, V_)
        # Clients: phase, ballot of the latest capture or read, argument, response.
        self.phase = V.function("phase", [C], "phase")
        self.cur = V.function("cur", [C], B)
        self.arg = V.function("arg", [C], V_)
        self.retc = V.function("retc", [C], "ret")
        self.retv = V.function("retv", [C], V_)
        self.state = [self.m1a, self.one_b, self.m1b, self.reported_at, self.m2a, self.m2b,
                      self.joined, self.left_rnd, self.accepted, self.phase, self.cur, self.arg,
                      self.retc, self.retv]
        self.sym = {s.name: s for s in self.state}

    # -- formula helpers -------------------------------------------------------------------

    def ins(self, name: str, *tup: Any) -> Callable[..., Any]:
        """Body of ``R'(x) <-> R(x) | x = tup``."""
        V, sym = self.V, self.sym[name]
        return lambda *x: V.Or(sym.pre(*x), V.And(*[V.eq(a, b) for a, b in zip(x, tup)]))

    def raise_promise(self, n: Any, b: Any) -> dict[str, Callable[..., Any]]:
        """promised(n) := max(promised(n), b)."""
        V = self.V
        return {"joined": lambda m, x: V.Or(self.joined.pre(m, x),
                                            V.And(V.eq(m, n), self.le(x, b))),
                "left_rnd": lambda m, x: V.Or(self.left_rnd.pre(m, x),
                                              V.And(V.eq(m, n), self.lt(x, b)))}

    def next_ballot(self, c: Any, b: Any) -> Formula:
        """``b`` is the first ballot of ``c`` above its current one (none left: no ``b``)."""
        V, cur = self.V, self.cur.pre(c)
        return V.And(self.owns(c, b), self.lt(cur, b), V.forall([B], lambda b2: V.Implies(
            V.And(self.owns(c, b2), self.lt(cur, b2)), self.le(b, b2))))

    def promise_quorum(self, q: Any, b: Any) -> Formula:
        V = self.V
        return V.forall([N], lambda n: V.Implies(self.member(n, q), self.one_b.pre(n, b)))

    def full(self, q: Any, b: Any, v: Any, m2b: Callable[..., Formula] | None = None) -> Formula:
        """Every member of ``q`` voted ``v`` at ``b``."""
        V, m2b = self.V, self.m2b.pre if m2b is None else m2b
        return V.forall([N], lambda n: V.Implies(self.member(n, q), m2b(n, b, v)))

    def chosen(self, b: Any, v: Any, at: View) -> Formula:
        return self.V.exists([Q], lambda q: self.full(q, b, v, at(self.m2b)))

    def no_vote_reported(self, q: Any, b: Any) -> Formula:
        V = self.V
        return V.forall([N, B], lambda n, x: V.Implies(self.member(n, q),
                                                       V.Not(self.reported_at.pre(n, b, x))))

    def top_report(self, q: Any, b: Any, n0: Any, mb0: Any, w: Any) -> Formula:
        """``n0`` in ``q`` reported the vote ``(mb0, w)`` for ``b``, and no member of ``q``
        reported a vote above ``mb0``."""
        V = self.V
        return V.And(self.member(n0, q), self.m1b.pre(n0, b, mb0, w), self.real(w),
                     V.forall([N, B], lambda n, x: V.Implies(
                         V.And(self.member(n, q), self.reported_at.pre(n, b, x)),
                         self.le(x, mb0))))

    def all_report(self, q: Any, b: Any, mb0: Any, w: Any) -> Formula:
        """Every member of ``q`` reported ``(mb0, w)`` for ``b``, and nothing else."""
        V = self.V
        return V.And(
            V.forall([N], lambda n: V.Implies(self.member(n, q), self.m1b.pre(n, b, mb0, w))),
            V.forall([N, B, V_], lambda n, mb, mv: V.Implies(
                V.And(self.member(n, q), self.m1b.pre(n, b, mb, mv)),
                V.And(V.eq(mb, mb0), V.eq(mv, w)))))

    # -- axioms, init ----------------------------------------------------------------------

    def axioms(self) -> list[Formula]:
        V, le = self.V, self.le
        ax = [
            V.forall([B], lambda x: le(x, x)),
            V.forall([B] * 3, lambda x, y, z: V.Implies(V.And(le(x, y), le(y, z)), le(x, z))),
            V.forall([B] * 2, lambda x, y: V.Implies(V.And(le(x, y), le(y, x)), V.eq(x, y))),
            V.forall([B] * 2, lambda x, y: V.Or(le(x, y), le(y, x))),
            V.forall([B], lambda x: le(self.zero, x)),
            V.forall([C], lambda c: V.Not(self.owns(c, self.zero))),
        ]
        if self.bug != "half_quorum":
            ax.append(V.forall([Q, Q], lambda q1, q2: V.exists(
                [N], lambda n: V.And(self.member(n, q1), self.member(n, q2)))))
        if self.bug != "shared_ballots":
            ax.append(V.forall([C, C, B], lambda c1, c2, b: V.Implies(
                V.And(self.owns(c1, b), self.owns(c2, b)), V.eq(c1, c2))))
        return ax

    def init(self) -> Formula:
        V, z, none = self.V, self.zero, self.none
        empty = [V.forall(s.dom, lambda *x, s=s: V.Not(s.pre(*x)))
                 for s in (self.m1a, self.one_b, self.m1b, self.reported_at, self.m2a, self.m2b,
                           self.left_rnd)]
        return V.And(
            *empty,
            V.forall([N, B], lambda n, b: V.eq(self.joined.pre(n, b), V.eq(b, z))),
            V.forall([N, B, V_], lambda n, b, v: V.eq(self.accepted.pre(n, b, v),
                                                      V.And(V.eq(b, z), V.eq(v, none)))),
            V.forall([C], lambda c: V.And(
                V.eq(self.phase.pre(c), self.ph["IDLE"]), V.eq(self.cur.pre(c), z),
                V.eq(self.arg.pre(c), none), V.eq(self.retc.pre(c), self.rc["NONE"]),
                V.eq(self.retv.pre(c), none))))

    # -- actions (one per action of PaxosWOR, same names) ------------------------------------

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        """Per action, a builder of its :class:`Transition`."""
        acts: dict[str, tuple[tuple[str, ...], Callable[[], Formula]]] = {
            "Capture": (("m1a", *CLIENT), lambda: self._start("CAPTURING")),
            "CaptureDone": (("phase", "retc", "retv"), self._capture_done),
            "Write": (("m2a", "phase", "arg", "retc", "retv"), self._write),
            "UnsafeWrite": (("m2a", "phase", "arg", "retc", "retv"), self._unsafe_write),
            "WriteDone": (("phase", "retc", "retv"), self._write_done),
            "Read": (("m1a", *CLIENT), lambda: self._start("READING")),
            "ReadDecide": (("m2a", "phase", "arg", "retc", "retv"), self._read_decide),
            "ReadRepaired": (("phase", "arg", "retc", "retv"), self._read_repaired),
            "Timeout": (("phase", "retc", "retv"), self._timeout),
            "Promise": (("joined", "left_rnd", "one_b", "m1b", "reported_at"), self._promise),
            "Accept": (("joined", "left_rnd", "accepted", "m2b"), self._accept),
            "Restart": (("joined", "left_rnd") if self.bug == "forget_promise" else (),
                        self._restart),
        }
        self._mod = {name: mod for name, (mod, _f) in acts.items()}
        return lazy_transitions(acts)

    def _start(self, phase: str) -> Formula:
        """Capture or Read: phase 1a at the client's next ballot."""
        V, mod = self.V, ("m1a", *CLIENT)
        return V.exists([C, B], lambda c, b: V.when(
            V.And(self.in_phase(c, "IDLE", "HOLD"), self.next_ballot(c, b)),
            lambda: self.step(mod, m1a=self.ins("m1a", b), **self.client(
                c, phase=phase, cur=b, arg=self.none, retc="NONE", retv=self.none))))

    def _capture_done(self) -> Formula:
        V = self.V
        done = ("phase", "retc", "retv")
        return V.exists([C, Q], lambda c, q: V.when(self.in_phase(c, "CAPTURING"), lambda: V.when(
            self.promise_quorum(q, self.cur.pre(c)), lambda: self.step(done, **self.client(
                c, phase="HOLD", retc="CAPTURED", retv=self.none)))))

    def _write(self) -> Formula:
        """Phase 2a at the captured ballot, carrying the highest vote the promises report, or
        the client's own value if they report none (the Paxos rule)."""
        V, mod = self.V, ("m2a", "phase", "arg", "retc", "retv")

        def carried(q: Any, b: Any, v: Any, w: Any) -> Formula:
            if self.bug == "ignore_promised_values":
                return V.eq(w, v)
            return V.Or(V.And(self.no_vote_reported(q, b), V.eq(w, v)),
                        V.exists([N, B], lambda n0, mb0: self.top_report(q, b, n0, mb0, w)))

        # Nested guards, cheapest first: the bounded vocabulary then skips the rest.
        return V.exists([C, V_, V_, Q], lambda c, v, w, q: V.when(
            V.And(self.in_phase(c, "HOLD"), self.real(v)), lambda: V.when(
                V.And(self.promise_quorum(q, self.cur.pre(c)), carried(q, self.cur.pre(c), v, w)),
                lambda: self.step(mod, m2a=self.ins("m2a", self.cur.pre(c), w), **self.client(
                    c, phase="WRITING", arg=v, retc="NONE", retv=self.none)))))

    def _unsafe_write(self) -> Formula:
        """Phase 2a at ballot zero without capture (one per register: the application's
        guarantee, so only while no ballot-zero proposal exists)."""
        V, mod = self.V, ("m2a", "phase", "arg", "retc", "retv")
        if not self.unsafe:
            return False
        return V.exists([C, V_], lambda c, v: V.when(
            V.And(self.in_phase(c, "IDLE", "HOLD"), self.real(v),
                  V.forall([V_], lambda w: V.Not(self.m2a.pre(self.zero, w)))),
            lambda: self.step(mod, m2a=self.ins("m2a", self.zero, v), **self.client(
                c, phase="UWRITING", arg=v, retc="NONE", retv=self.none))))

    def _write_done(self) -> Formula:
        V = self.V
        return V.exists([C, V_, Q], lambda c, w, q: V.when(
            V.Or(V.when(self.in_phase(c, "WRITING"), lambda: self.full(q, self.cur.pre(c), w)),
                 V.when(self.in_phase(c, "UWRITING"), lambda: self.full(q, self.zero, w))),
            lambda: self.step(("phase", "retc", "retv"), **self.client(
                c, phase="IDLE", retv=self.none, retc=V.If(
                    V.eq(w, self.arg.pre(c)), self.rc["OK"], self.rc["ALREADY_WRITTEN"])))))

    def _read_decide(self) -> Formula:
        """A promise quorum that reports nothing: EMPTY; one that agrees on a vote: its value;
        otherwise complete (phase 2a at the read's ballot) the highest reported vote."""
        V, mod, none = self.V, ("m2a", "phase", "arg", "retc", "retv"), self.none

        def outcome(c: Any, q: Any, b: Any, n0: Any, mb0: Any, w: Any) -> Formula:
            empty = V.when(self.all_report(q, b, self.zero, none), lambda: self.step(
                mod, **self.client(c, phase="IDLE", arg=none, retc="EMPTY", retv=none)))
            agreed = True if self.bug == "read_without_repair" else \
                self.all_report(q, b, mb0, w)
            top = self.top_report(q, b, n0, mb0, w)
            value = V.when(V.And(top, agreed), lambda: self.step(
                mod, **self.client(c, phase="IDLE", arg=none, retc="VALUE", retv=w)))
            if self.bug == "read_without_repair":
                return V.Or(empty, value)
            repair = V.when(V.And(top, V.Not(agreed)), lambda: self.step(
                mod, m2a=self.ins("m2a", b, w),
                **self.client(c, phase="REPAIRING", arg=none, retc="NONE", retv=none)))
            return V.Or(empty, value, repair)

        return V.exists([C, Q, N, B, V_], lambda c, q, n0, mb0, w: V.when(
            self.in_phase(c, "READING"), lambda: V.when(
                self.promise_quorum(q, self.cur.pre(c)),
                lambda: outcome(c, q, self.cur.pre(c), n0, mb0, w))))

    def _read_repaired(self) -> Formula:
        V, none = self.V, self.none
        return V.exists([C, V_, Q], lambda c, w, q: V.when(
            self.in_phase(c, "REPAIRING"), lambda: V.when(
                self.full(q, self.cur.pre(c), w), lambda: self.step(
                    ("phase", "arg", "retc", "retv"),
                    **self.client(c, phase="IDLE", arg=none, retc="VALUE", retv=w)))))

    def _timeout(self) -> Formula:
        V = self.V

        def to(c: Any, ret: str, *phases: str) -> Formula:
            return V.when(self.in_phase(c, *phases), lambda: self.step(
                ("phase", "retc", "retv"),
                **self.client(c, phase="IDLE", retc=ret, retv=self.none)))

        return V.exists([C], lambda c: V.Or(to(c, "PREEMPTED", "CAPTURING", "WRITING", "UWRITING"),
                                            to(c, "TIMEOUT", "READING", "REPAIRING")))

    def _promise(self) -> Formula:
        """Acceptor ``n`` promises ``b`` > promised(n), reporting its accepted vote."""
        V = self.V
        mod = ("joined", "left_rnd", "one_b", "m1b", "reported_at")

        def reported(n: Any, b: Any, mb: Any, mv: Any) -> Callable[..., Formula]:
            return lambda n1, b1, x: V.Or(self.reported_at.pre(n1, b1, x), V.And(
                V.eq(n1, n), V.eq(b1, b), self.real(mv), self.le(x, mb)))

        return V.exists([N, B, B, V_], lambda n, b, mb, mv: V.when(
            V.And(self.m1a.pre(b), V.Not(self.joined.pre(n, b)), self.accepted.pre(n, mb, mv)),
            lambda: self.step(mod, one_b=self.ins("one_b", n, b),
                              m1b=self.ins("m1b", n, b, mb, mv),
                              reported_at=reported(n, b, mb, mv), **self.raise_promise(n, b))))

    def _accept(self) -> Formula:
        """Acceptor ``n`` votes for a proposal ``(b, v)`` with ``b`` >= promised(n)."""
        V = self.V
        mod = ("joined", "left_rnd", "accepted", "m2b")
        guard = (lambda n, b: True) if self.bug == "accept_below_promise" else \
            (lambda n, b: V.Not(self.left_rnd.pre(n, b)))
        return V.exists([N, B, V_], lambda n, b, v: V.when(
            V.And(self.m2a.pre(b, v), guard(n, b)),
            lambda: self.step(mod, m2b=self.ins("m2b", n, b, v), accepted=lambda n1, b1, v1: V.If(
                V.eq(n1, n), V.And(V.eq(b1, b), V.eq(v1, v)), self.accepted.pre(n1, b1, v1)),
                **self.raise_promise(n, b))))

    def _restart(self) -> Formula:
        """Durable state survives a crash: nothing changes (with ``forget_promise``, the
        promise falls back to the accepted ballot)."""
        V = self.V
        if self.bug != "forget_promise":
            return V.exists([N], lambda n: V.eq(n, n))  # any acceptor; a stutter
        return V.exists([N, B, V_], lambda n, mb, mv: V.when(
            self.accepted.pre(n, mb, mv), lambda: self.step(
                ("joined", "left_rnd"),
                joined=lambda m, x: V.If(V.eq(m, n), self.le(x, mb), self.joined.pre(m, x)),
                left_rnd=lambda m, x: V.If(V.eq(m, n), self.lt(x, mb), self.left_rnd.pre(m, x)))))

    # -- the inductive invariant and the safety properties ---------------------------------

    def invariant(self, at: View) -> dict[str, Formula]:
        """The conjuncts, read through ``at`` (the pre-state, or an action's post-state)."""
        V, none, zero, le, lt = self.V, self.none, self.zero, self.le, self.lt
        joined, left, acc = at(self.joined), at(self.left_rnd), at(self.accepted)
        one_b, m1b, rep = at(self.one_b), at(self.m1b), at(self.reported_at)
        m2a, m2b = at(self.m2a), at(self.m2b)
        phase, cur, arg, retc, retv = (at(self.phase), at(self.cur), at(self.arg),
                                       at(self.retc), at(self.retv))
        imp, conj, neg, eq, fa = V.Implies, V.And, V.Not, V.eq, V.forall

        def ph(c: Any, *names: str) -> Formula:
            return V.Or(*[eq(phase(c), self.ph[n]) for n in names])

        def chosen(b: Any, v: Any) -> Formula:
            return self.chosen(b, v, at)

        return {
            # The promise is one ballot: below it every ballot is left.
            "left_is_joined": fa([N, B], lambda n, b: imp(left(n, b), joined(n, b))),
            "below_joined_is_left": fa([N, B, B], lambda n, b, b1: imp(
                conj(joined(n, b), lt(b1, b)), left(n, b1))),
            # The accepted vote is the acceptor's highest, at or below its promise.
            "accepted_joined": fa([N, B, V_], lambda n, b, v: imp(acc(n, b, v), joined(n, b))),
            "accepted_is_vote": fa([N, B, V_], lambda n, b, v: imp(
                conj(acc(n, b, v), self.real(v)), m2b(n, b, v))),
            "accepted_none": fa([N, B, B, V_], lambda n, b, b1, v1: imp(
                acc(n, b, none), conj(eq(b, zero), neg(m2b(n, b1, v1))))),
            "vote_joined": fa([N, B, V_], lambda n, b, v: imp(m2b(n, b, v), joined(n, b))),
            "accepted_is_max": fa([N, B, V_, B, V_], lambda n, b, v, b1, v1: imp(
                conj(acc(n, b, v), m2b(n, b1, v1)), le(b1, b))),
            # Votes and proposals.
            "vote_proposed": fa([N, B, V_], lambda n, b, v: imp(m2b(n, b, v), m2a(b, v))),
            "proposal_real": fa([B], lambda b: neg(m2a(b, none))),
            "proposal_unique": fa([B, V_, V_], lambda b, v1, v2: imp(
                conj(m2a(b, v1), m2a(b, v2)), eq(v1, v2))),
            # Promises: the promiser stays joined; it reported its real votes, and every vote
            # it cast below the promised ballot is covered by its report.
            "promise_joined": fa([N, B], lambda n, b: imp(one_b(n, b), joined(n, b))),
            "report_is_vote": fa([N, B, B, V_], lambda n, b, mb, mv: imp(
                conj(m1b(n, b, mb, mv), self.real(mv)), m2b(n, mb, mv))),
            "report_covers_votes": fa([N, B, B, V_], lambda n, b, b1, v1: imp(
                conj(one_b(n, b), m2b(n, b1, v1), lt(b1, b)), rep(n, b, b1))),
            # The heart of Paxos: below a proposal, no other value can still be chosen.
            "choosable": fa([B, B, V_, V_, Q], lambda b1, b2, v1, v2, q: imp(
                conj(lt(b1, b2), m2a(b2, v2), neg(eq(v1, v2))),
                V.exists([N], lambda n: conj(self.member(n, q), left(n, b1),
                                             neg(m2b(n, b1, v1)))))),
            # Clients: each proposes at most once per ballot of its own.
            "cur_owned": fa([C], lambda c: V.Or(eq(cur(c), zero), self.owns(c, cur(c)))),
            "active_ballot": fa([C], lambda c: imp(
                ph(c, "CAPTURING", "HOLD", "WRITING", "READING", "REPAIRING"),
                neg(eq(cur(c), zero)))),
            "fresh_ballot": fa([C, V_], lambda c, v: imp(
                ph(c, "CAPTURING", "HOLD", "READING"), neg(m2a(cur(c), v)))),
            "past_ballots": fa([C, B, V_], lambda c, b, v: imp(
                conj(self.owns(c, b), m2a(b, v)), le(b, cur(c)))),
            # The explicit model's OkMeansChosen and ReadReturnsChosen.
            "ok_is_chosen": fa([C], lambda c: imp(eq(retc(c), self.rc["OK"]), V.Or(
                chosen(cur(c), arg(c)), chosen(zero, arg(c))))),
            "read_is_chosen": fa([C], lambda c: imp(
                eq(retc(c), self.rc["VALUE"]), V.exists([B], lambda b: chosen(b, retv(c))))),
        }

    def safety(self) -> dict[str, Formula]:
        """Agreement (the explicit model's ``Theorem1`` invariant) and Lemma 1."""
        V, at = self.V, lambda s: s.pre
        return {
            "AtMostOneChosen": V.forall([B, V_, B, V_], lambda b1, v1, b2, v2: V.Implies(
                V.And(self.chosen(b1, v1, at), self.chosen(b2, v2, at)), V.eq(v1, v2))),
            "Lemma1": V.forall([B, V_, B, V_], lambda b1, v1, b2, v2: V.Implies(V.And(
                self.chosen(b1, v1, at), self.lt(b1, b2), self.m2a.pre(b2, v2)),
                V.eq(v1, v2))),
        }

    def steps(self, at: View) -> dict[str, Formula]:
        """Theorem 1: once written, the value never changes (a chosen value stays chosen, and
        no other value becomes chosen)."""
        V = self.V
        pre = lambda s: s.pre  # noqa: E731
        return {"Theorem1": V.forall([B, V_], lambda b, v: V.Implies(
            self.chosen(b, v, pre), V.And(self.chosen(b, v, at), V.forall(
                [B, V_], lambda b2, v2: V.Implies(self.chosen(b2, v2, at), V.eq(v2, v))))))}


def proof_suite(bug: str = "", unsafe: bool = False) -> ProofSuite:
    """The obligations of Paxos-WOR's inductive invariant, for unbounded acceptors, ballots,
    values and clients (``wormspace prove wor.paxos``)."""
    if bug and bug not in px.BUGS:
        raise ValueError(f"unknown bug {bug!r}; one of {sorted(px.BUGS)}")
    name = "wor.paxos" + (f"[{bug}]" if bug else "") + ("[unsafe]" if unsafe else "")
    return suite(name, lambda V: PaxosEncoding(V, bug, unsafe))


# -- conformance with the explicit model -------------------------------------------------------

def universe(m: px.PaxosWOR) -> Universe:
    """The bounded interpretation of the sorts and rigid symbols for the explicit model ``m``:
    acceptors, its quorums, ballots 0..max, values 0 (none)..V, clients."""
    ballots = range(max(m.ballot(c, m.rounds - 1) for c in range(m.clients)) + 1)
    return Universe(
        sizes={N: m.acceptors, Q: len(m.quorums), B: len(ballots), V_: m.values + 1,
               C: m.clients},
        consts={"zero": 0, "none": 0},
        rigid={"le": {(a, b) for a in ballots for b in ballots if a <= b},
               "member": {(n, i) for i, q in enumerate(m.quorums) for n in q},
               "owns": {(c, m.ballot(c, r)) for c in range(m.clients) for r in range(m.rounds)}})


def project(m: px.PaxosWOR, s: px.State) -> dict[str, Any]:
    """The explicit state in the encoding's symbols. Ghost variables are left out: the
    protocol never reads them (only the refinement mapping does)."""
    accs, m1a, m1b, m2a, m2b, cl, _ghost = s
    ballots = range(max(m.ballot(c, m.rounds - 1) for c in range(m.clients)) + 1)
    nodes = range(m.acceptors)
    return {
        "m1a": {(b,) for b in px._bits(m1a)},
        "one_b": {(n, b) for n, b, _mb, _mv in m1b},
        "m1b": set(m1b),
        "reported_at": {(n, b, x) for n, b, mb, mv in m1b if mv for x in range(mb + 1)},
        "m2a": set(m2a), "m2b": set(m2b),
        "joined": {(n, x) for n, x in product(nodes, ballots) if x <= accs[n][0]},
        "left_rnd": {(n, x) for n, x in product(nodes, ballots) if x < accs[n][0]},
        "accepted": {(n, a[1], a[2]) for n, a in enumerate(accs)},
        "phase": {(c,): x[0] for c, x in enumerate(cl)},
        "cur": {(c,): m.current_ballot(c, x[1]) for c, x in enumerate(cl)},
        "arg": {(c,): x[2] for c, x in enumerate(cl)},
        "retc": {(c,): min(x[3], RETS.index("VALUE")) for c, x in enumerate(cl)},
        "retv": {(c,): x[3] - spec.VALUE if x[3] >= spec.VALUE else 0 for c, x in enumerate(cl)},
    }


def conformance(acceptors: int = 3, clients: int = 1, values: int = 2, rounds: int = 1,
                unsafe: bool = False, bug: str = "", max_states: int | None = None
                ) -> ConformanceReport:
    """Check, on every reachable state of the bounded ``PaxosWOR`` (the first ``max_states``
    in BFS order if given), that the encoding has the same initial states and the same
    successors per action as the explicit model."""
    m = px.PaxosWOR(acceptors=acceptors, clients=clients, values=values, rounds=rounds,
                    unsafe=unsafe, bug=bug)
    return check_conformance(m, lambda V: PaxosEncoding(V, bug, unsafe), universe(m),
                             lambda s: project(m, s), max_states=max_states)

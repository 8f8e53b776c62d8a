"""The symbolic encoding of Paxos-WOR (``paxos.py``) and its inductive invariant.

Written once against ``wormspace.checker.prove.Vocab``: with the symbolic vocabulary the
sorts are uninterpreted (unbounded acceptors, ballots, values, clients, quorums) and the
invariant is proved in the EPR style of "Paxos Made EPR" (quorum intersection is an axiom;
every function goes from acceptors or clients to ballots and values, so the quantifier
alternations are stratified); with the bounded vocabulary of ``checker/conformance.py`` the
same formulas are compared, state by state, with the explicit model (:func:`conformance`).

Each action mirrors one action of ``PaxosWOR`` and takes the same ``bug`` switch, so a seeded
bug both shows up in the explored state space and breaks an obligation here.
"""

from __future__ import annotations

from typing import Any

from wormspace.checker.prove import ProofSuite, StateSymbol, SymbolicVocab, Vocab
from wormspace.model.wor import paxos as px
from wormspace.spec import wor as spec

PHASES = ("IDLE", "HOLD", "CAPTURING", "WRITING", "UWRITING", "READING", "REPAIRING")
RETS = ("NONE", "CAPTURED", "PREEMPTED", "OK", "ALREADY_WRITTEN", "EMPTY", "TIMEOUT", "VALUE")


class PaxosEncoding:
    """Builds sorts, symbols, axioms, init, actions and the invariant over a vocabulary."""

    def __init__(self, V: Vocab, bug: str = "", unsafe: bool = True) -> None:
        self.V, self.bug, self.unsafe = V, bug, unsafe
        for s in ("node", "ballot", "value", "client", "quorum"):
            V.sort(s)
        self.ph = dict(zip(PHASES, V.enum("phase", PHASES)))
        self.rc = dict(zip(RETS, V.enum("ret", RETS)))
        self.zero = V.const("zero", "ballot")
        self.none = V.const("none", "value")
        self.le = V.rigid("le", "ballot", "ballot")
        self.member = V.rigid("member", "node", "quorum")
        self.owns = V.rigid("owns", "client", "ballot")
        self.promised = V.function("promised", ["node"], "ballot")
        self.accb = V.function("accb", ["node"], "ballot")
        self.accv = V.function("accv", ["node"], "value")
        self.m1a = V.relation("m1a", "ballot")
        self.m1b = V.relation("m1b", "node", "ballot", "ballot", "value")
        self.m2a = V.relation("m2a", "ballot", "value")
        self.m2b = V.relation("m2b", "node", "ballot", "value")
        self.phase = V.function("phase", ["client"], "phase")
        self.cur = V.function("cur", ["client"], "ballot")
        self.arg = V.function("arg", ["client"], "value")
        self.retc = V.function("retc", ["client"], "ret")
        self.retv = V.function("retv", ["client"], "value")
        self.state: list[StateSymbol] = [
            self.promised, self.accb, self.accv, self.m1a, self.m1b, self.m2a, self.m2b,
            self.phase, self.cur, self.arg, self.retc, self.retv]

    # -- helpers ---------------------------------------------------------------------------

    def lt(self, a: Any, b: Any) -> Any:
        V = self.V
        return V.And(self.le(a, b), V.Not(V.eq(a, b)))

    def frame(self, **changed: Any) -> Any:
        """Every state symbol not in ``changed`` keeps its value; ``changed`` gives the
        update formula of the others."""
        V = self.V
        parts = []
        for sym in self.state:
            if sym.name in changed:
                parts.append(changed[sym.name])
            else:
                parts.append(V.forall(sym.dom, lambda *x, f=sym: V.eq(f.post(*x), f.pre(*x))))
        return V.And(*parts)

    def upd(self, sym: StateSymbol, at: Any, val: Any) -> Any:
        """``sym`` changes at the single point ``at`` (a one-argument function)."""
        V = self.V
        return V.forall(sym.dom, lambda x: V.eq(sym.post(x), V.If(V.eq(x, at), val, sym.pre(x))))

    def ins(self, sym: StateSymbol, *tup: Any) -> Any:
        """``sym`` gains the tuple ``tup``."""
        V = self.V
        return V.forall(sym.dom, lambda *x: V.eq(
            sym.post(*x), V.Or(sym.pre(*x), V.And(*[V.eq(a, b) for a, b in zip(x, tup)]))))

    def client(self, c: Any, phase: str, cur: Any, arg: Any, ret: Any, retv: Any,
               **more: Any) -> Any:
        """Update client ``c``'s local state (and any other symbols in ``more``); ``ret`` is a
        response name or a term of sort ``ret``."""
        ret = self.rc[ret] if isinstance(ret, str) else ret
        return self.frame(phase=self.upd(self.phase, c, self.ph[phase]),
                          cur=self.upd(self.cur, c, cur), arg=self.upd(self.arg, c, arg),
                          retc=self.upd(self.retc, c, ret),
                          retv=self.upd(self.retv, c, retv), **more)

    def in_phase(self, c: Any, *names: str) -> Any:
        return self.V.Or(*[self.V.eq(self.phase.pre(c), self.ph[n]) for n in names])

    def promise_quorum(self, q: Any, b: Any) -> Any:
        V = self.V
        return V.forall(["node"], lambda n: V.Implies(self.member(n, q), V.exists(
            ["ballot", "value"], lambda mb, mv: self.m1b.pre(n, b, mb, mv))))

    def reports(self, q: Any, b: Any, pred: Any) -> Any:
        """Every vote reported by a promise of ``q`` for ``b`` satisfies ``pred(mb, mv)``."""
        V = self.V
        return V.forall(["node", "ballot", "value"], lambda n, mb, mv: V.Implies(
            V.And(self.member(n, q), self.m1b.pre(n, b, mb, mv)), pred(mb, mv)))

    def top_vote(self, q: Any, b: Any, w: Any) -> Any:
        """``w`` is the value of a highest-ballot vote reported by ``q``'s promises for ``b``."""
        V = self.V
        return V.exists(["node", "ballot"], lambda n0, mb0: V.And(
            self.member(n0, q), self.m1b.pre(n0, b, mb0, w), V.Not(V.eq(w, self.none)),
            self.reports(q, b, lambda mb, mv: V.Implies(V.Not(V.eq(mv, self.none)),
                                                         self.le(mb, mb0)))))

    def voted_quorum(self, b: Any, w: Any, post: bool = False) -> Any:
        V = self.V
        m2b = self.m2b.post if post else self.m2b.pre
        return V.exists(["quorum"], lambda q: V.forall(
            ["node"], lambda n: V.Implies(self.member(n, q), m2b(n, b, w))))

    def next_ballot(self, c: Any, b: Any) -> Any:
        V = self.V
        cur = self.cur.pre(c)
        return V.And(self.owns(c, b), self.lt(cur, b), V.forall(["ballot"], lambda b2: V.Implies(
            V.And(self.owns(c, b2), self.lt(cur, b2)), self.le(b, b2))))

    # -- axioms, init ----------------------------------------------------------------------

    def axioms(self) -> list[Any]:
        V, le = self.V, self.le
        ax = [
            V.forall(["ballot"], lambda x: le(x, x)),
            V.forall(["ballot"] * 3, lambda x, y, z: V.Implies(V.And(le(x, y), le(y, z)),
                                                               le(x, z))),
            V.forall(["ballot"] * 2, lambda x, y: V.Implies(V.And(le(x, y), le(y, x)),
                                                            V.eq(x, y))),
            V.forall(["ballot"] * 2, lambda x, y: V.Or(le(x, y), le(y, x))),
            V.forall(["ballot"], lambda x: le(self.zero, x)),
            V.forall(["client"], lambda c: V.Not(self.owns(c, self.zero))),
        ]
        if self.bug != "half_quorum":
            ax.append(V.forall(["quorum"] * 2, lambda q1, q2: V.exists(
                ["node"], lambda n: V.And(self.member(n, q1), self.member(n, q2)))))
        if self.bug != "shared_ballots":
            ax.append(V.forall(["client", "client", "ballot"], lambda c1, c2, b: V.Implies(
                V.And(self.owns(c1, b), self.owns(c2, b)), V.eq(c1, c2))))
        return ax

    def init(self) -> Any:
        V, z, none = self.V, self.zero, self.none
        return V.And(
            V.forall(["node"], lambda n: V.And(V.eq(self.promised.pre(n), z),
                                               V.eq(self.accb.pre(n), z),
                                               V.eq(self.accv.pre(n), none))),
            V.forall(["ballot"], lambda b: V.Not(self.m1a.pre(b))),
            V.forall(["node", "ballot", "ballot", "value"],
                     lambda n, b, mb, mv: V.Not(self.m1b.pre(n, b, mb, mv))),
            V.forall(["ballot", "value"], lambda b, v: V.Not(self.m2a.pre(b, v))),
            V.forall(["node", "ballot", "value"], lambda n, b, v: V.Not(self.m2b.pre(n, b, v))),
            V.forall(["client"], lambda c: V.And(
                V.eq(self.phase.pre(c), self.ph["IDLE"]), V.eq(self.cur.pre(c), z),
                V.eq(self.arg.pre(c), none), V.eq(self.retc.pre(c), self.rc["NONE"]),
                V.eq(self.retv.pre(c), none))))

    # -- actions (one per action of PaxosWOR) ------------------------------------------------

    def actions(self) -> dict[str, Any]:
        """One formula per action, over the pre- and post-state."""
        return {name: build() for name, build in self.action_builders().items()}

    def action_builders(self) -> dict[str, Any]:
        """Per action, a function building its formula (conformance builds them per state)."""
        V, none, zero = self.V, self.none, self.zero
        cur = self.cur.pre
        real = lambda v: V.Not(V.eq(v, none))  # noqa: E731

        def start(c: Any, phase: str) -> Any:
            return V.exists(["ballot"], lambda b: V.when(
                V.And(self.in_phase(c, "IDLE", "HOLD"), self.next_ballot(c, b)),
                lambda: self.client(c, phase, b, none, "NONE", none, m1a=self.ins(self.m1a, b))))

        def capture_done(c: Any) -> Any:
            return V.when(V.And(self.in_phase(c, "CAPTURING"), V.exists(
                ["quorum"], lambda q: self.promise_quorum(q, cur(c)))),
                lambda: self.client(c, "HOLD", cur(c), self.arg.pre(c), "CAPTURED", none))

        def carried(q: Any, b: Any, v: Any, w: Any) -> Any:
            own = V.And(self.reports(q, b, lambda mb, mv: V.eq(mv, none)), V.eq(w, v))
            if self.bug == "ignore_promised_values":
                return V.eq(w, v)
            return V.Or(own, self.top_vote(q, b, w))

        def write(c: Any) -> Any:
            return V.exists(["value", "value"], lambda v, w: V.when(
                V.And(self.in_phase(c, "HOLD"), real(v), V.exists(["quorum"], lambda q: V.And(
                    self.promise_quorum(q, cur(c)), carried(q, cur(c), v, w)))),
                lambda: self.client(c, "WRITING", cur(c), v, "NONE", none,
                                    m2a=self.ins(self.m2a, cur(c), w))))

        def unsafe_write(c: Any) -> Any:
            if not self.unsafe:
                return False
            return V.exists(["value"], lambda v: V.when(
                V.And(self.in_phase(c, "IDLE", "HOLD"), real(v),
                      V.forall(["value"], lambda w: V.Not(self.m2a.pre(zero, w)))),
                lambda: self.client(c, "UWRITING", cur(c), v, "NONE", none,
                                    m2a=self.ins(self.m2a, zero, v))))

        def write_done(c: Any) -> Any:
            def at(b: Any, phase: str) -> Any:
                return V.exists(["value"], lambda w: V.when(
                    V.And(self.in_phase(c, phase), self.voted_quorum(b, w)),
                    lambda: self.client(c, "IDLE", cur(c), self.arg.pre(c), V.If(
                        V.eq(w, self.arg.pre(c)), self.rc["OK"], self.rc["ALREADY_WRITTEN"]),
                        none)))
            return V.Or(at(cur(c), "WRITING"), at(zero, "UWRITING"))

        def read_decide(c: Any) -> Any:
            b = cur(c)

            def outcome(q: Any, w: Any) -> Any:
                empty = V.when(self.reports(q, b, lambda mb, mv: V.And(V.eq(mb, zero),
                                                                       V.eq(mv, none))),
                               lambda: self.client(c, "IDLE", b, none, "EMPTY", none))
                agreed = V.exists(["ballot"], lambda mb0: self.reports(
                    q, b, lambda mb, mv: V.And(V.eq(mb, mb0), V.eq(mv, w))))
                if self.bug == "read_without_repair":
                    agreed = True
                value = V.when(V.And(self.top_vote(q, b, w), agreed),
                               lambda: self.client(c, "IDLE", b, none, "VALUE", w))
                repair = V.when(V.And(self.top_vote(q, b, w), V.Not(agreed)),
                                lambda: self.client(c, "REPAIRING", b, none, "NONE", none,
                                                    m2a=self.ins(self.m2a, b, w)))
                return V.Or(empty, value, repair)

            return V.when(self.in_phase(c, "READING"), lambda: V.exists(
                ["quorum", "value"], lambda q, w: V.when(self.promise_quorum(q, b),
                                                         lambda: outcome(q, w))))

        def read_repaired(c: Any) -> Any:
            return V.exists(["value"], lambda w: V.when(
                V.And(self.in_phase(c, "REPAIRING"), self.voted_quorum(cur(c), w)),
                lambda: self.client(c, "IDLE", cur(c), none, "VALUE", w)))

        def timeout(c: Any) -> Any:
            def to(ret: str, *phases: str) -> Any:
                return V.when(self.in_phase(c, *phases), lambda: self.client(
                    c, "IDLE", cur(c), self.arg.pre(c), ret, none))
            return V.Or(to("PREEMPTED", "CAPTURING", "WRITING", "UWRITING"),
                        to("TIMEOUT", "READING", "REPAIRING"))

        def promise(n: Any) -> Any:
            return V.exists(["ballot"], lambda b: V.when(
                V.And(self.m1a.pre(b), self.lt(self.promised.pre(n), b)),
                lambda: self.frame(promised=self.upd(self.promised, n, b),
                                   m1b=self.ins(self.m1b, n, b, self.accb.pre(n),
                                                self.accv.pre(n)))))

        def accept(n: Any) -> Any:
            p = self.promised.pre(n)
            return V.exists(["ballot", "value"], lambda b, v: V.when(
                V.And(self.m2a.pre(b, v),
                      True if self.bug == "accept_below_promise" else self.le(p, b)),
                lambda: self.frame(promised=self.upd(self.promised, n, V.If(self.le(p, b), b, p)),
                                   accb=self.upd(self.accb, n, b), accv=self.upd(self.accv, n, v),
                                   m2b=self.ins(self.m2b, n, b, v))))

        def restart(n: Any) -> Any:
            if self.bug == "forget_promise":
                return self.frame(promised=self.upd(self.promised, n, self.accb.pre(n)))
            return self.frame()

        per_client = {"Capture": lambda c: start(c, "CAPTURING"), "CaptureDone": capture_done,
                      "Write": write, "UnsafeWrite": unsafe_write, "WriteDone": write_done,
                      "Read": lambda c: start(c, "READING"), "ReadDecide": read_decide,
                      "ReadRepaired": read_repaired, "Timeout": timeout}
        per_node = {"Promise": promise, "Accept": accept, "Restart": restart}
        out = {name: (lambda f=f: V.exists(["client"], f)) for name, f in per_client.items()}
        out.update({name: (lambda f=f: V.exists(["node"], f)) for name, f in per_node.items()})
        return out

    # -- the inductive invariant and the safety properties ---------------------------------

    def invariant(self, post: bool) -> dict[str, Any]:
        """The conjuncts, over the pre-state (or the post-state when ``post``)."""
        V, none, zero, le = self.V, self.none, self.zero, self.le
        lt = self.lt
        g = (lambda s: s.post) if post else (lambda s: s.pre)  # noqa: E731
        prom, accb, accv = g(self.promised), g(self.accb), g(self.accv)
        m1b, m2a, m2b = g(self.m1b), g(self.m2a), g(self.m2b)
        phase, cur, arg, retc, retv = g(self.phase), g(self.cur), g(self.arg), g(self.retc), \
            g(self.retv)
        N, B, Vv, C, Q = "node", "ballot", "value", "client", "quorum"
        imp, conj, neg, eq = V.Implies, V.And, V.Not, V.eq
        ph = lambda c, *ns: V.Or(*[eq(phase(c), self.ph[n]) for n in ns])  # noqa: E731
        chosen = lambda b, v: V.exists([Q], lambda q: V.forall(  # noqa: E731
            [N], lambda n: imp(self.member(n, q), m2b(n, b, v))))
        return {
            "acc_le_promised": V.forall([N], lambda n: le(accb(n), prom(n))),
            "acc_is_vote": V.forall([N], lambda n: imp(neg(eq(accv(n), none)),
                                                       m2b(n, accb(n), accv(n)))),
            "acc_none": V.forall([N], lambda n: imp(eq(accv(n), none), eq(accb(n), zero))),
            "vote_le_acc": V.forall([N, B, Vv], lambda n, b, v: imp(m2b(n, b, v), conj(
                le(b, accb(n)), neg(eq(accv(n), none))))),
            "vote_proposed": V.forall([N, B, Vv], lambda n, b, v: imp(m2b(n, b, v), m2a(b, v))),
            "proposal_not_none": V.forall([B], lambda b: neg(m2a(b, none))),
            "proposal_unique": V.forall([B, Vv, Vv], lambda b, v1, v2: imp(
                conj(m2a(b, v1), m2a(b, v2)), eq(v1, v2))),
            "promise_bounds": V.forall([N, B, B, Vv], lambda n, b, mb, mv: imp(
                m1b(n, b, mb, mv), conj(le(b, prom(n)), lt(mb, b)))),
            "promise_vote": V.forall([N, B, B, Vv], lambda n, b, mb, mv: imp(
                conj(m1b(n, b, mb, mv), neg(eq(mv, none))), m2b(n, mb, mv))),
            "promise_empty": V.forall([N, B, B, B, Vv], lambda n, b, mb, b1, v: imp(
                conj(m1b(n, b, mb, none), lt(b1, b)), conj(eq(mb, zero), neg(m2b(n, b1, v))))),
            "promise_max": V.forall([N, B, B, Vv, B, Vv], lambda n, b, mb, mv, b1, v1: imp(
                conj(m1b(n, b, mb, mv), lt(mb, b1), lt(b1, b)), neg(m2b(n, b1, v1)))),
            "choosable": V.forall([B, B, Vv, Vv, Q], lambda b1, b2, v1, v2, q: imp(
                conj(lt(b1, b2), m2a(b2, v2), neg(eq(v1, v2))),
                V.exists([N], lambda n: conj(self.member(n, q), lt(b1, prom(n)),
                                             neg(m2b(n, b1, v1)))))),
            "cur_owned": V.forall([C], lambda c: V.Or(eq(cur(c), zero), self.owns(c, cur(c)))),
            "active_ballot": V.forall([C], lambda c: imp(
                ph(c, "CAPTURING", "HOLD", "WRITING", "READING", "REPAIRING"), lt(zero, cur(c)))),
            "fresh_ballot": V.forall([C, Vv], lambda c, v: imp(
                ph(c, "CAPTURING", "HOLD", "READING"), neg(m2a(cur(c), v)))),
            "past_ballots": V.forall([C, B, Vv], lambda c, b, v: imp(
                conj(self.owns(c, b), m2a(b, v)), le(b, cur(c)))),
            "ok_is_chosen": V.forall([C], lambda c: imp(
                eq(retc(c), self.rc["OK"]), V.exists([B], lambda b: chosen(b, arg(c))))),
            "read_is_chosen": V.forall([C], lambda c: imp(
                eq(retc(c), self.rc["VALUE"]), V.exists([B], lambda b: chosen(b, retv(c))))),
        }

    def safety(self) -> dict[str, Any]:
        V = self.V
        m2b = self.m2b.pre
        full = lambda q, b, v: V.forall(["node"], lambda n: V.Implies(  # noqa: E731
            self.member(n, q), m2b(n, b, v)))
        return {
            "Lemma1": V.forall(["ballot", "value", "ballot", "value", "quorum"],
                               lambda b1, v1, b2, v2, q: V.Implies(V.And(
                                   full(q, b1, v1), self.lt(b1, b2), self.m2a.pre(b2, v2)),
                                   V.eq(v1, v2))),
            "Theorem1": V.forall(["ballot", "value", "quorum", "ballot", "value", "quorum"],
                                 lambda b1, v1, q1, b2, v2, q2: V.Implies(V.And(
                                     full(q1, b1, v1), full(q2, b2, v2)), V.eq(v1, v2))),
        }


def proof_suite(bug: str = "", unsafe: bool = True) -> ProofSuite:
    """The obligations of Paxos-WOR's inductive invariant (for ``wormspace prove wor.paxos``)."""
    V = SymbolicVocab()
    enc = PaxosEncoding(V, bug, unsafe)
    inv = {k: (p, enc.invariant(True)[k]) for k, p in enc.invariant(False).items()}
    return ProofSuite(f"wor.paxos{'[' + bug + ']' if bug else ''}", V, enc.axioms(),
                      enc.init(), enc.actions(), inv, enc.safety())


# -- conformance with the explicit model -------------------------------------------------------

def project(m: px.PaxosWOR, s: px.State) -> dict[str, Any]:
    """The explicit state in the encoding's symbols (ghost variables are left out: they are
    never read by the protocol, only by the refinement mapping)."""
    accs, m1a, m1b, m2a, m2b, cl, _ghost = s
    cur = [m.current_ballot(c, r) for c, (_p, r, _a, _rt, _e) in enumerate(cl)]
    return {
        "promised": {(n,): a[0] for n, a in enumerate(accs)},
        "accb": {(n,): a[1] for n, a in enumerate(accs)},
        "accv": {(n,): a[2] for n, a in enumerate(accs)},
        "m1a": {(b,) for b in px._bits(m1a)}, "m1b": set(m1b), "m2a": set(m2a), "m2b": set(m2b),
        "phase": {(c,): x[0] for c, x in enumerate(cl)},
        "cur": {(c,): cur[c] for c in range(len(cl))},
        "arg": {(c,): x[2] for c, x in enumerate(cl)},
        "retc": {(c,): min(x[3], RETS.index("VALUE")) for c, x in enumerate(cl)},
        "retv": {(c,): x[3] - spec.VALUE if x[3] >= spec.VALUE else 0 for c, x in enumerate(cl)},
    }

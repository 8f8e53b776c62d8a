"""The symbolic encoding of WormTX (``wormtx.py``), both variants, and the proof of consistency.

Unbounded resource managers (and, for A8, transaction managers) are an uninterpreted sort; each
WOR is encoded by what the WOS interface guarantees of it, exactly as ``model/apps/space.py``
behaves: a register holds EMPTY or one value; a write lands only on an EMPTY register whose
latest capture is the writer's, and otherwise leaves its value *proposed*; a proposed value may
land later (``Settle``) while the register is EMPTY; a written value never changes. Nothing else
about Paxos or the servers is assumed. Every action mirrors the explicit model's action of the
same name and takes the same ``bug``, so a seeded bug both shows up in the explored state space
and breaks an obligation here.

The inductive invariant, E3 (the decision is a function of the vote WORs):

* a YES is written or proposed in RM ``r``'s vote WOR only once ``r`` has voted (only ``r``
  writes YES there; a timed-out peer writes NO);
* a committed RM has seen, so the registers hold, YES in every vote WOR; what an RM has heard
  (``heard``) is what the register holds, because the register never changes;
* an aborted RM either heard a NO, so some vote WOR holds NO forever, or voted NO itself, so
  its own vote WOR can never hold YES. Written as ``(exists r. val(r) = NO) or forall p. ...``
  so that the formula stays in EPR (the disjunct does not depend on ``p``).

Together they give consistency and "commit only if all prepared". A8 is the same argument about
the single decision WOR: COMMIT is written or proposed only once every RM sent Prepared, an RM
commits only on reading COMMIT, and an RM that sent Prepared aborts only on reading ABORT.

:func:`conformance` checks, on bounded instances, both ways, that this encoding and the explicit
model have the same initial states and the same successors per action (``checker/conformance``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wormspace.checker.conformance import ConformanceReport, Universe, check_conformance
from wormspace.checker.prove import (
    Encoding,
    Formula,
    ProofSuite,
    StateSymbol,
    Transition,
    View,
    Vocab,
    suite,
)
from wormspace.model.apps import wormtx as tx

R, T = "rm", "tm"
STS = ("WORKING", "PREPARED", "COMMITTED", "ABORTED")  # spec/tcommit.py's order
VOTES = ("EMPTY", "YES", "NO")
PCS = ("START", "HOLD", "LISTEN", "DONE", "FORCE")  # wormtx.py's order; FORCE + j -> forcing
DECS = ("EMPTY", "COMMIT", "ABORT")
TMPCS = ("INIT", "HOLD", "DONE")


class _Encoding:
    """What both variants share: the symbol table and mypyvy-style post-state definitions."""

    V: Any
    sym: dict[str, StateSymbol]
    state: list[StateSymbol]
    st: dict[str, Any]  # the TCommit states, as terms

    def step(self, **bodies: Callable[..., Any]) -> Formula:
        """Define the post-state of each named symbol by its body (``sym'(x) = body(x)``)."""
        return self.V.And(*[self.V.define(self.sym[n], b) for n, b in bodies.items()])

    def at(self, name: str, args: tuple[Any, ...], new: Any) -> Callable[..., Any]:
        """Body: ``new`` at ``args``, the pre-state elsewhere."""
        V, s = self.V, self.sym[name]
        return lambda *x: V.If(V.And(*[V.eq(a, b) for a, b in zip(x, args)]), new, s.pre(*x))

    def row(self, name: str, first: Any, new: Callable[[Any], Any]) -> Callable[..., Any]:
        """Body of a binary relation: ``new(y)`` where the first argument is ``first``."""
        V, s = self.V, self.sym[name]
        return lambda x, y: V.If(V.eq(x, first), new(y), s.pre(x, y))

    def axioms(self) -> list[Formula]:
        return []

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        def build(mod: tuple[str, ...], f: Callable[[], Formula]) -> Callable[[], Transition]:
            return lambda: Transition(f(), frozenset(mod))
        return {name: build(mod, f) for name, (mod, f) in self.actions().items()}

    def actions(self) -> dict[str, tuple[tuple[str, ...], Callable[[], Formula]]]:
        """Per action: the symbols it modifies and a builder of its formula."""
        raise NotImplementedError

    def init(self) -> Formula:
        raise NotImplementedError

    def invariant(self, at: View) -> dict[str, Formula]:
        raise NotImplementedError

    def decided(self, st: Callable[..., Any], r: Any) -> Formula:
        return self.V.Or(self.V.eq(st(r), self.st["COMMITTED"]), self.V.eq(st(r), self.st["ABORTED"]))

    def finished(self) -> Formula:
        return self.V.forall([R], lambda r: self.decided(self.sym["st"].pre, r))

    def safety(self) -> dict[str, Formula]:
        """TCommit's consistency, and commit only if all prepared."""
        V, st, s = self.V, self.sym["st"].pre, self.st
        return {
            "Consistent": V.forall([R, R], lambda p, q: V.Not(V.And(
                V.eq(st(p), s["COMMITTED"]), V.eq(st(q), s["ABORTED"])))),
            "CommitNeedsAllPrepared": V.forall([R, R], lambda p, q: V.Implies(
                V.eq(st(p), s["COMMITTED"]), V.Or(V.eq(st(q), s["PREPARED"]),
                                                   V.eq(st(q), s["COMMITTED"])))),
        }

    def steps(self, at: View) -> dict[str, Formula]:
        """A decision is final."""
        V, st = self.V, self.sym["st"]
        return {"DecisionFinal": V.forall([R], lambda r: V.Implies(
            self.decided(st.pre, r), V.eq(at(st)(r), st.pre(r))))}


class E3Encoding(_Encoding):
    """WormTX E3: vote WORs, listening RMs, timed-out RMs forcing NO."""

    def __init__(self, V: Vocab, bug: str = "", flaky: bool = False, precaptured: bool = False
                 ) -> None:
        self.V, self.bug, self.flaky, self.precaptured = V, bug, flaky, precaptured
        V.sort(R)
        self.st = dict(zip(STS, V.enum("tx_st", STS)))
        self.vote = dict(zip(VOTES, V.enum("tx_vote", VOTES)))
        self.pc = dict(zip(PCS, V.enum("tx_pc", PCS)))
        self.state = [
            V.function("st", [R], "tx_st"),
            V.function("pc", [R], "tx_pc"),
            V.relation("forcing", R, R),  # p holds r's vote WOR's capture, about to write NO
            V.relation("heard", R, R),  # p was notified that r's vote WOR holds YES
            V.function("val", [R], "tx_vote"),  # the value of r's vote WOR
            V.relation("owner", R, R),  # p holds the latest capture of r's (EMPTY) vote WOR
            V.relation("prop", R, "tx_vote"),  # v is proposed in r's vote WOR
        ]
        self.sym = {s.name: s for s in self.state}

    # -- the WOS interface, as model/apps/space.py behaves (with wormtx._effects) ------------

    def capture(self, p: Any, r: Any) -> dict[str, Callable[..., Any]]:
        """``p`` captures ``r``'s vote WOR (a written register's capture is not kept)."""
        V = self.V
        empty = V.eq(self.sym["val"].pre(r), self.vote["EMPTY"])
        return {"owner": lambda x, y: V.If(V.eq(y, r), V.And(V.eq(x, p), empty),
                                           self.sym["owner"].pre(x, y))}

    def land(self, r: Any, v: Any) -> dict[str, Callable[..., Any]]:
        """``v`` takes effect in ``r``'s vote WOR: proposals and capture are dropped."""
        V, sym = self.V, self.sym
        return {"val": self.at("val", (r,), v),
                "prop": lambda y, w: V.And(V.Not(V.eq(y, r)), sym["prop"].pre(y, w)),
                "owner": lambda x, y: V.And(V.Not(V.eq(y, r)), sym["owner"].pre(x, y))}

    def propose(self, r: Any, v: Any) -> dict[str, Callable[..., Any]]:
        V, sym = self.V, self.sym
        return {"val": sym["val"].pre, "owner": sym["owner"].pre,
                "prop": lambda y, w: V.Or(sym["prop"].pre(y, w), V.And(V.eq(y, r), V.eq(w, v)))}

    def write(self, p: Any, r: Any, v: Any) -> Formula:
        """Every effect ``p``'s write of ``v`` to ``r``'s vote WOR may have (``val``, ``prop``,
        ``owner``): none on a written register; it lands if ``p`` holds the capture (or, with
        ``flaky``, times out before landing: proposed); otherwise it is proposed."""
        V, sym = self.V, self.sym
        unchanged = {n: sym[n].pre for n in ("val", "prop", "owner")}
        empty = V.eq(sym["val"].pre(r), self.vote["EMPTY"])
        mine = sym["owner"].pre(p, r)
        return V.Or(
            V.when(V.Not(empty), lambda: self.step(**unchanged)),
            V.when(V.And(empty, mine), lambda: self.step(**self.land(r, v))),
            V.when(V.And(empty, V.Or(V.Not(mine), self.flaky)),
                   lambda: self.step(**self.propose(r, v))))

    # -- actions (one per action of WormTX E3, same names) ----------------------------------

    def actions(self) -> dict[str, tuple[tuple[str, ...], Callable[[], Formula]]]:
        wor = ("val", "prop", "owner")
        acts: dict[str, tuple[tuple[str, ...], Callable[[], Formula]]] = {
            "Vote": (("st", "pc", *wor), self._vote),
            "Notify": (("st", "pc", "heard", "forcing"), self._notify),
            "Timeout": (("pc", "forcing", "owner"), self._timeout),
            "ForceNo": (("pc", "forcing", *wor), self._force_no),
            "Settle": (wor, self._settle),
            "Finished": ((), self.finished),
        }
        if not self.precaptured:
            acts["CaptureVote"] = (("pc", "owner"), self._capture_vote)
        return acts

    def pc_is(self, p: Any, *names: str) -> Formula:
        return self.V.Or(*[self.V.eq(self.sym["pc"].pre(p), self.pc[n]) for n in names])

    def _capture_vote(self) -> Formula:
        V, sym = self.V, self.sym

        def effect(p: Any) -> Formula:
            took = self.step(**self.capture(p, p))
            return V.Or(took, self.step(owner=sym["owner"].pre)) if self.flaky else took

        return V.exists([R], lambda p: V.when(self.pc_is(p, "START"), lambda: V.And(
            self.step(pc=self.at("pc", (p,), self.pc["HOLD"])), effect(p))))

    def _vote(self) -> Formula:
        V, s, pc = self.V, self.st, self.pc
        return V.exists([R, "tx_vote"], lambda p, v: V.when(
            V.And(self.pc_is(p, "HOLD"), V.Not(V.eq(v, self.vote["EMPTY"]))), lambda: V.And(
                self.step(st=self.at("st", (p,), V.If(V.eq(v, self.vote["YES"]), s["PREPARED"],
                                                      s["ABORTED"])),
                          pc=self.at("pc", (p,), V.If(V.eq(v, self.vote["YES"]), pc["LISTEN"],
                                                      pc["DONE"]))),
                self.write(p, p, v))))

    def _notify(self) -> Formula:
        """``p`` hears ``r``'s vote: ABORT on NO, COMMIT on the last YES, else remember it."""
        V, sym, vote = self.V, self.sym, self.vote

        def last_yes(p: Any, r: Any) -> Formula:
            if self.bug == "partial_commit":
                return V.Or(sym["heard"].pre(p, p), V.eq(r, p))
            return V.forall([R], lambda x: V.Or(sym["heard"].pre(p, x), V.eq(x, r)))

        def decide(p: Any, d: str) -> Formula:
            return self.step(st=self.at("st", (p,), self.st[d]), pc=self.at("pc", (p,), self.pc["DONE"]),
                             heard=self.row("heard", p, lambda y: False),
                             forcing=self.row("forcing", p, lambda y: False))

        def hear(p: Any, r: Any) -> Formula:
            no = V.eq(sym["val"].pre(r), vote["NO"])
            return V.Or(
                V.when(no, lambda: decide(p, "ABORTED")),
                V.when(V.And(V.Not(no), last_yes(p, r)), lambda: decide(p, "COMMITTED")),
                V.when(V.And(V.Not(no), V.Not(last_yes(p, r))), lambda: self.step(
                    st=sym["st"].pre, pc=sym["pc"].pre, forcing=sym["forcing"].pre,
                    heard=lambda x, y: V.Or(sym["heard"].pre(x, y),
                                            V.And(V.eq(x, p), V.eq(y, r))))))

        return V.exists([R, R], lambda p, r: V.when(V.And(
            self.pc_is(p, "LISTEN", "FORCE"), V.Not(V.eq(sym["val"].pre(r), vote["EMPTY"])),
            V.Not(sym["heard"].pre(p, r))), lambda: hear(p, r)))

    def _timeout(self) -> Formula:
        V, sym = self.V, self.sym

        def effect(p: Any, r: Any) -> Formula:
            took = self.step(**self.capture(p, r))
            return V.Or(took, self.step(owner=sym["owner"].pre)) if self.flaky else took

        return V.exists([R, R], lambda p, r: V.when(V.And(
            self.pc_is(p, "LISTEN"), V.Not(V.eq(p, r)),
            V.eq(sym["val"].pre(r), self.vote["EMPTY"])), lambda: V.And(
                self.step(pc=self.at("pc", (p,), self.pc["FORCE"]),
                          forcing=self.row("forcing", p, lambda y: V.eq(y, r))),
                effect(p, r))))

    def _force_no(self) -> Formula:
        V, sym = self.V, self.sym

        def effect(p: Any, r: Any) -> Formula:
            if self.bug == "timeout_overwrites_yes":  # NO replaces whatever the WOR holds
                return self.step(**self.land(r, self.vote["NO"]))
            return self.write(p, r, self.vote["NO"])

        return V.exists([R, R], lambda p, r: V.when(
            V.And(self.pc_is(p, "FORCE"), sym["forcing"].pre(p, r)), lambda: V.And(
                self.step(pc=self.at("pc", (p,), self.pc["LISTEN"]),
                          forcing=self.row("forcing", p, lambda y: False)),
                effect(p, r))))

    def _settle(self) -> Formula:
        V, sym = self.V, self.sym
        return V.exists([R, "tx_vote"], lambda r, v: V.when(V.And(
            V.eq(sym["val"].pre(r), self.vote["EMPTY"]), sym["prop"].pre(r, v)),
            lambda: self.step(**self.land(r, v))))

    # -- init and the inductive invariant ---------------------------------------------------

    def init(self) -> Formula:
        V, sym = self.V, self.sym
        start = self.pc["HOLD" if self.precaptured else "START"]
        return V.And(
            V.forall([R], lambda r: V.And(
                V.eq(sym["st"].pre(r), self.st["WORKING"]), V.eq(sym["pc"].pre(r), start),
                V.eq(sym["val"].pre(r), self.vote["EMPTY"]))),
            V.forall([R, R], lambda p, r: V.And(
                V.Not(sym["forcing"].pre(p, r)), V.Not(sym["heard"].pre(p, r)),
                V.eq(sym["owner"].pre(p, r), V.And(self.precaptured, V.eq(p, r))))),
            V.forall([R, "tx_vote"], lambda r, v: V.Not(sym["prop"].pre(r, v))))

    def invariant(self, at: View) -> dict[str, Formula]:
        V, s, vote = self.V, self.st, self.vote
        st, pc, val, prop, heard = (at(self.sym[n]) for n in ("st", "pc", "val", "prop", "heard"))
        eq, imp = V.eq, V.Implies

        def yes_possible(r: Any) -> Formula:
            return V.Or(eq(val(r), vote["YES"]), prop(r, vote["YES"]))

        forcing, owner = at(self.sym["forcing"]), at(self.sym["owner"])

        def pc_in(p: Any, *names: str) -> Formula:
            return V.Or(*[eq(pc(p), self.pc[n]) for n in names])

        return {
            # The shape of the reachable states: each RM's program counter and its state.
            "unvoted_is_working": V.forall([R], lambda p: imp(
                pc_in(p, "START", "HOLD"), eq(st(p), s["WORKING"]))),
            "listening_is_prepared": V.forall([R], lambda p: imp(
                pc_in(p, "LISTEN", "FORCE"), eq(st(p), s["PREPARED"]))),
            "done_is_decided": V.forall([R], lambda p: eq(
                pc_in(p, "DONE"), V.Or(eq(st(p), s["COMMITTED"]), eq(st(p), s["ABORTED"])))),
            "forcing_one_peer": V.forall([R, R, R], lambda p, r, r2: V.And(
                imp(forcing(p, r), V.And(pc_in(p, "FORCE"), V.Not(eq(p, r)))),
                imp(V.And(forcing(p, r), forcing(p, r2)), eq(r, r2)))),
            "heard_while_listening": V.forall([R, R], lambda p, r: imp(
                heard(p, r), pc_in(p, "LISTEN", "FORCE"))),
            # The vote WORs, as the WOS interface keeps them.
            "one_owner": V.forall([R, R, R], lambda p, p2, r: imp(
                V.And(owner(p, r), owner(p2, r)), eq(p, p2))),
            "written_is_settled": V.forall([R, R, "tx_vote"], lambda p, r, v: imp(
                V.Not(eq(val(r), vote["EMPTY"])), V.And(V.Not(prop(r, v)), V.Not(owner(p, r))))),
            "proposals_are_votes": V.forall([R], lambda r: V.Not(prop(r, vote["EMPTY"]))),
            # The argument for consistency.
            "yes_only_from_voter": V.forall([R], lambda r: imp(
                yes_possible(r), V.Not(eq(st(r), s["WORKING"])))),
            "heard_is_written": V.forall([R, R], lambda p, r: imp(
                heard(p, r), eq(val(r), vote["YES"]))),
            "committed_saw_all_yes": V.forall([R, R], lambda p, r: imp(
                eq(st(p), s["COMMITTED"]), eq(val(r), vote["YES"]))),
            "aborted_is_justified": V.Or(
                V.exists([R], lambda r: eq(val(r), vote["NO"])),
                V.forall([R], lambda p: imp(eq(st(p), s["ABORTED"]), V.Not(yes_possible(p))))),
        }


class A8Encoding(_Encoding):
    """WormTX A8: Prepared messages, TMs writing one decision WOR, RMs reading it."""

    def __init__(self, V: Vocab, bug: str = "", flaky: bool = False) -> None:
        self.V, self.bug, self.flaky = V, bug, flaky
        V.sort(R)
        V.sort(T)
        self.st = dict(zip(STS, V.enum("tx_st", STS)))
        self.dec = dict(zip(DECS, V.enum("tx_dec", DECS)))
        self.tpc = dict(zip(TMPCS, V.enum("tx_tmpc", TMPCS)))
        self.primary = V.const("primary", T)  # TM 0: holds the decision WOR's capture at first
        self.state = [
            V.function("st", [R], "tx_st"),
            V.relation("pmsg", R),  # Prepared(r) was sent
            V.function("tmpc", [T], "tx_tmpc"),
            V.function("dval", [], "tx_dec"),  # the decision WOR's value
            V.relation("downer", T),  # t holds the latest capture of the (EMPTY) decision WOR
            V.relation("dprop", "tx_dec"),  # proposed in the decision WOR
        ]
        self.sym = {s.name: s for s in self.state}

    def empty(self) -> Formula:
        return self.V.eq(self.sym["dval"].pre(), self.dec["EMPTY"])

    def land(self, d: Any) -> dict[str, Callable[..., Any]]:
        return {"dval": lambda: d, "dprop": lambda w: False, "downer": lambda t: False}

    def actions(self) -> dict[str, tuple[tuple[str, ...], Callable[[], Formula]]]:
        wor = ("dval", "dprop", "downer")
        return {
            "Prepare": (("st", "pmsg"), self._prepare),
            "ChooseToAbort": (("st",), self._choose_to_abort),
            "TMCommit": (("tmpc", *wor), lambda: self._tm_decide("COMMIT")),
            "TMAbort": (("tmpc", *wor), lambda: self._tm_decide("ABORT")),
            "Takeover": (("tmpc", "downer"), self._takeover),
            "ReadDecision": (("st",), self._read),
            "Settle": (wor, self._settle),
            "Finished": ((), self.finished),
        }

    def working(self, r: Any) -> Formula:
        return self.V.eq(self.sym["st"].pre(r), self.st["WORKING"])

    def _prepare(self) -> Formula:
        V = self.V
        return V.exists([R], lambda r: V.when(self.working(r), lambda: self.step(
            st=self.at("st", (r,), self.st["PREPARED"]),
            pmsg=lambda x: V.Or(self.sym["pmsg"].pre(x), V.eq(x, r)))))

    def _choose_to_abort(self) -> Formula:
        V = self.V
        return V.exists([R], lambda r: V.when(self.working(r), lambda: self.step(
            st=self.at("st", (r,), self.st["ABORTED"]))))

    def _tm_decide(self, d: str) -> Formula:
        """A TM holding the capture writes ``d`` (COMMIT only once every RM sent Prepared)."""
        V, sym = self.V, self.sym
        ready = V.forall([R], lambda r: sym["pmsg"].pre(r)) if d == "COMMIT" else True

        def write(t: Any) -> Formula:
            propose = {"dval": sym["dval"].pre, "downer": sym["downer"].pre,
                       "dprop": lambda w: V.Or(sym["dprop"].pre(w), V.eq(w, self.dec[d]))}
            mine = sym["downer"].pre(t)
            return V.Or(
                V.when(V.Not(self.empty()), lambda: self.step(
                    dval=sym["dval"].pre, dprop=sym["dprop"].pre, downer=sym["downer"].pre)),
                V.when(V.And(self.empty(), mine), lambda: self.step(**self.land(self.dec[d]))),
                V.when(V.And(self.empty(), V.Or(V.Not(mine), self.flaky)),
                       lambda: self.step(**propose)))

        return V.exists([T], lambda t: V.when(
            V.And(V.eq(sym["tmpc"].pre(t), self.tpc["HOLD"]), ready), lambda: V.And(
                self.step(tmpc=self.at("tmpc", (t,), self.tpc["DONE"])), write(t))))

    def _takeover(self) -> Formula:
        V, sym = self.V, self.sym

        def effect(t: Any) -> Formula:
            took = self.step(downer=lambda x: V.And(V.eq(x, t), self.empty()))
            return V.Or(took, self.step(downer=sym["downer"].pre)) if self.flaky else took

        return V.exists([T], lambda t: V.when(V.eq(sym["tmpc"].pre(t), self.tpc["INIT"]),
                                              lambda: V.And(self.step(tmpc=self.at(
                                                  "tmpc", (t,), self.tpc["HOLD"])), effect(t))))

    def _read(self) -> Formula:
        V, s, dval = self.V, self.st, self.sym["dval"].pre()

        def prepared(r: Any) -> Formula:
            return V.eq(self.sym["st"].pre(r), s["PREPARED"])

        def outcome(r: Any) -> Formula:
            to_abort = V.Or(V.eq(dval, self.dec["ABORT"]), V.And(
                self.bug == "empty_read_aborts", V.eq(dval, self.dec["EMPTY"]), prepared(r)))
            return V.Or(
                V.when(V.And(to_abort, V.Or(self.working(r), prepared(r))),
                       lambda: self.step(st=self.at("st", (r,), s["ABORTED"]))),
                V.when(V.And(V.eq(dval, self.dec["COMMIT"]), prepared(r)),
                       lambda: self.step(st=self.at("st", (r,), s["COMMITTED"]))))

        return V.exists([R], outcome)

    def _settle(self) -> Formula:
        V = self.V
        return V.exists(["tx_dec"], lambda d: V.when(
            V.And(self.empty(), self.sym["dprop"].pre(d)), lambda: self.step(**self.land(d))))

    def init(self) -> Formula:
        V, sym = self.V, self.sym
        return V.And(
            V.forall([R], lambda r: V.And(self.working(r), V.Not(sym["pmsg"].pre(r)))),
            V.forall([T], lambda t: V.And(
                V.eq(sym["tmpc"].pre(t), V.If(V.eq(t, self.primary), self.tpc["HOLD"],
                                              self.tpc["INIT"])),
                V.eq(sym["downer"].pre(t), V.eq(t, self.primary)))),
            self.empty(), V.forall(["tx_dec"], lambda d: V.Not(sym["dprop"].pre(d))))

    def invariant(self, at: View) -> dict[str, Formula]:
        V, s = self.V, self.st
        st, pmsg, dval, dprop = (at(self.sym[n]) for n in ("st", "pmsg", "dval", "dprop"))
        downer, tmpc = at(self.sym["downer"]), at(self.sym["tmpc"])
        eq, imp = V.eq, V.Implies
        return {
            # The decision WOR, as the WOS interface keeps it, and who may write it.
            "one_owner": V.forall([T, T], lambda t, t2: imp(V.And(downer(t), downer(t2)), eq(t, t2))),
            "written_is_settled": V.forall([T, "tx_dec"], lambda t, d: imp(
                V.Not(eq(dval(), self.dec["EMPTY"])), V.And(V.Not(dprop(d)), V.Not(downer(t))))),
            "proposals_are_decisions": V.Not(dprop(self.dec["EMPTY"])),
            "backup_not_in_holds_nothing": V.forall([T], lambda t: imp(
                eq(tmpc(t), self.tpc["INIT"]), V.Not(downer(t)))),
            # The argument for consistency.
            "commit_needs_all_prepared_msgs": imp(
                V.Or(eq(dval(), self.dec["COMMIT"]), dprop(self.dec["COMMIT"])),
                V.forall([R], lambda r: pmsg(r))),
            "prepared_msg_from_voter": V.forall([R], lambda r: imp(
                pmsg(r), V.Not(eq(st(r), s["WORKING"])))),
            "committed_read_commit": V.forall([R], lambda r: imp(
                eq(st(r), s["COMMITTED"]), eq(dval(), self.dec["COMMIT"]))),
            "aborted_is_justified": V.forall([R], lambda r: imp(
                eq(st(r), s["ABORTED"]), V.Or(eq(dval(), self.dec["ABORT"]), V.Not(pmsg(r))))),
        }


def _check_bug(variant: str, bug: str) -> None:
    if variant not in tx.VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(tx.VARIANTS)}, not {variant!r}")
    if bug and bug not in tx.BUGS:
        raise ValueError(f"unknown bug {bug!r}; one of {sorted(tx.BUGS)}")
    if bug and tx.BUGS[bug][0] != variant:
        raise ValueError(f"bug {bug!r} is a bug of variant {tx.BUGS[bug][0]}")


def encoding(variant: str = tx.E3, bug: str = "", flaky: bool = False,
             precaptured: bool = False) -> Callable[[Vocab], Encoding]:
    """The encoding of one configuration, as a function of the vocabulary."""
    _check_bug(variant, bug)
    if variant == tx.A8:
        return lambda V: A8Encoding(V, bug, flaky)
    return lambda V: E3Encoding(V, bug, flaky, precaptured)


def proof_suite(variant: str = tx.E3, bug: str = "", flaky: bool = False,
                precaptured: bool = False, rm: int = 3, tms: int = 2) -> ProofSuite:
    """The obligations for ``wormspace prove apps.wormtx`` (``rm`` and ``tms`` are accepted
    and ignored: the proof is for any number of RMs and TMs)."""
    del rm, tms
    tags = "".join(f"[{t}]" for t in (bug, "flaky" * flaky, "precaptured" * precaptured) if t)
    return suite(f"apps.wormtx[{variant}]{tags}", encoding(variant, bug, flaky, precaptured))


# -- conformance with the explicit model -------------------------------------------------------

def project(m: tx.WormTX, s: tx.State) -> dict[str, Any]:
    """An explicit state in the encoding's symbols."""
    n = m.rm
    regs = s[3][0][2]
    out: dict[str, Any] = {"st": {(p,): x for p, x in enumerate(s[0])}}
    if m.variant == tx.A8:
        val, own, prop = regs[0]
        out.update(pmsg={(r,) for r in range(n) if s[1] >> r & 1},
                   tmpc={(t,): x for t, x in enumerate(s[2])}, dval={(): val},
                   downer={(own - 1,)} if own else set(),
                   dprop={(d,) for d in (tx.COMMIT, tx.ABORT) if prop >> d & 1})
        return out
    out.update(
        pc={(p,): min(x, tx.FORCE) for p, x in enumerate(s[1])},
        forcing={(p, x - tx.FORCE) for p, x in enumerate(s[1]) if x >= tx.FORCE},
        heard={(p, r) for p, h in enumerate(s[2]) for r in range(n) if h >> r & 1},
        val={(r,): reg[0] for r, reg in enumerate(regs)},
        owner={(reg[1] - 1, r) for r, reg in enumerate(regs) if reg[1]},
        prop={(r, v) for r, reg in enumerate(regs) for v in (tx.YES, tx.NO) if reg[2] >> v & 1})
    return out


def conformance(rm: int = 2, variant: str = tx.E3, precaptured: bool = False, tms: int = 2,
                flaky: bool = False, bug: str = "", max_states: int | None = None
                ) -> ConformanceReport:
    """Check, on every reachable state of the bounded ``WormTX`` (the first ``max_states`` in
    BFS order if given), that the encoding has the same initial states and the same successors
    per action as the explicit model."""
    m = tx.WormTX(rm=rm, variant=variant, precaptured=precaptured, tms=tms if variant == tx.A8 else 2,
                  flaky=flaky, bug=bug)
    sizes = {R: rm} if variant == tx.E3 else {R: rm, T: tms}
    universe = Universe(sizes=sizes, consts={"primary": 0})
    return check_conformance(m, encoding(variant, bug, flaky, precaptured), universe,
                             lambda s: project(m, s), max_states=max_states)

"""Z3 proof of WormPaxos (``wormpaxos.py``) over the atomic WormSpace, and its conformance.

One encoding, written against ``checker.prove.Vocab``, mirrors the explicit model action for
action (same names, same ``policy`` and ``bug`` switches):

* with uninterpreted sorts (processes, addresses, segments, values) it is the proof
  (:func:`proof_suite`): agreement of the replicas' applied prefixes, applied commands were
  proposed, and real-time order of acknowledged commands, for any number of processes,
  commands and addresses;
* with finite sorts it is compared state by state with the explicit model, both ways
  (:func:`conformance`, ``checker.conformance``).

**The WormSpace guarantees are the encoding of the registers**, as ``model/apps/space.py``
states them: a register's value ``val(a)`` is a *function* (one value or none) that actions
change only from none, and only by a write of the latest capturer (``owner``) or by a
proposal of an earlier write taking effect (``prop``, the ``Settle`` step); a write to a
written register answers ``ALREADY_WRITTEN``; allocation is first-wins (``meta``). Agreement
then rests on one conjunct, ``applied_is_written``; real time rests on the takeover
(``owning_prefix``, ``leading_prefix``: a sticky leader proposes only above a fully written
prefix) or, for the rotating policy, on the commit rule (``done_prefix`` via the replica's
``nxt_prefix_written``).

Addresses are a total order with a successor relation and one extra element ``end`` (past the
last address, where a replica that learned everything points); segments are the rigid
relations ``in_seg(a, s)``, ``before(a, s)`` (a lies below segment s), ``start(s, a)`` and
``last(a)`` (a is its segment's last address). State functions go from processes to
segments and addresses and from addresses to values only, so the quantifier alternations are
stratified (EPR).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wormspace.checker.conformance import ConformanceReport, Universe, check_conformance
from wormspace.checker.prove import (
    Formula,
    ProofSuite,
    StateSymbol,
    Transition,
    View,
    Vocab,
    lazy_transitions,
    suite,
)
from wormspace.model.apps import wormpaxos as wp

P, A, S, V_ = "proc", "addr", "seg", "value"
PHASES = ("IDLE", "ELECTING", "TAKEOVER", "FILLING", "OWNING", "LEADING", "DOWN")
STATUS = ("C_IDLE", "PROPOSED", "OKED", "DONE")
#: What a proposal's write changes: the register, and the leader's position.
WRITE = ("val", "prop", "phase", "seg", "cur")


class WormPaxosEncoding:
    """Sorts, symbols, axioms, init, actions, invariant and safety of WormPaxos over ``V``."""

    def __init__(self, V: Vocab, policy: str = "sticky", bug: str = "", crashes: int = 1) -> None:
        self.V, self.bug, self.crashes = V, bug, crashes
        self.rotating = policy == "rotating"
        #: The phases in which a process leads ``seg`` (a rotating revoker fills with seg s0).
        self.leading = ("TAKEOVER", "OWNING", "LEADING") + (() if self.rotating else ("FILLING",))
        for srt in (P, A, S, V_):
            V.sort(srt)
        self.ph = dict(zip(PHASES, V.enum("wp_phase", PHASES)))
        self.st = dict(zip(STATUS, V.enum("wp_status", STATUS)))
        self.none, self.noop = V.const("none", V_), V.const("noop", V_)
        self.end, self.a0, self.s0 = V.const("end", A), V.const("a0", A), V.const("s0", S)
        self.le, self.succ = V.rigid("le", A, A), V.rigid("succ", A, A)
        self.in_seg, self.before = V.rigid("in_seg", A, S), V.rigid("before", A, S)
        self.start, self.last = V.rigid("start", S, A), V.rigid("last", A)
        self.lts, self.turn = V.rigid("lts", S, S), V.rigid("turn", S, P)
        self.may_lead = V.rigid("may_lead", P)
        R, F = V.relation, V.function
        self.val, self.owner, self.prop = F("val", [A], V_), R("owner", A, P), R("prop", A, V_)
        self.meta, self.allocated = R("meta", S, P), R("allocated", S)
        self.phase, self.seg = F("phase", [P], "wp_phase"), F("seg", [P], S)
        self.cur, self.nxt = F("cur", [P], A), F("nxt", [P], A)
        self.applied = R("applied", P, A, V_)
        self.status, self.prec = F("status", [V_], "wp_status"), R("prec", V_, V_)
        self.state: list[StateSymbol] = [
            self.val, self.owner, self.prop, self.meta, self.allocated, self.phase, self.seg,
            self.cur, self.nxt, self.applied, self.status, self.prec]
        self.sym = {x.name: x for x in self.state}

    # -- helpers ---------------------------------------------------------------------------

    def lt(self, a: Any, b: Any) -> Formula:
        """``a`` lies strictly below ``b``."""
        return self.V.And(self.le(a, b), self.V.Not(self.V.eq(a, b)))

    def cmd(self, v: Any) -> Formula:
        """``v`` is a command (not none, not NO-OP)."""
        V = self.V
        return V.And(V.Not(V.eq(v, self.none)), V.Not(V.eq(v, self.noop)))

    def is_ph(self, p: Any, *names: str, at: View | None = None) -> Formula:
        """Process ``p`` is in one of the named phases (in the pre-state, or through ``at``)."""
        ph = self.phase.pre if at is None else at(self.phase)
        return self.V.Or(*[self.V.eq(ph(p), self.ph[n]) for n in names])

    def step(self, modifies: tuple[str, ...], **bodies: Callable[..., Any]) -> Formula:
        """Define every modified symbol's post-state (unchanged where no body is given)."""
        V = self.V
        return V.And(*[V.define(self.sym[m], bodies.get(m, self.sym[m].pre)) for m in modifies])

    def at_point(self, name: str, point: tuple[Any, ...], new: Any) -> Callable[..., Any]:
        """Body: the symbol ``name`` with ``point`` changed to ``new``."""
        V, f = self.V, self.sym[name]
        return lambda *x: V.If(V.And(*[V.eq(a, b) for a, b in zip(x, point)]), new, f.pre(*x))

    def proc(self, p: Any, **fields: Any) -> dict[str, Callable[..., Any]]:
        """Bodies setting process ``p``'s fields (phase names become constants)."""
        return {k: self.at_point(k, (p,), self.ph[v] if k == "phase" else v)
                for k, v in fields.items()}

    def step_down(self, p: Any) -> dict[str, Callable[..., Any]]:
        """Bodies of a process going back to idle (segment and cursor reset to 0)."""
        return self.proc(p, phase="IDLE", seg=self.s0, cur=self.a0)

    def write(self, p: Any, a: Any, v: Any, mod: tuple[str, ...], *,
              ok: dict[str, Callable[..., Any]], preempted: dict[str, Callable[..., Any]],
              already: dict[str, Callable[..., Any]]) -> Formula:
        """Process ``p`` writes ``v`` to ``a`` (``space.write``): ``ALREADY_WRITTEN`` if another
        value is there; ``PREEMPTED`` if ``p`` does not hold the latest capture (``v`` stays
        proposed if the register is empty); else ``OK``. Each outcome's other bodies are given."""
        V, val = self.V, self.val.pre
        free = V.Or(V.eq(val(a), self.none), V.eq(val(a), v))
        proposed = self.at_point("prop", (a, v), V.Or(self.prop.pre(a, v), V.eq(val(a), self.none)))
        return V.Or(
            V.when(V.Not(free), lambda: self.step(mod, **already)),
            V.when(V.And(free, V.Not(self.owner.pre(a, p))),
                   lambda: self.step(mod, prop=proposed, **preempted)),
            V.when(V.And(free, self.owner.pre(a, p)), lambda: self.step(
                mod, val=self.at_point("val", (a,), v), prop=self.cleared(a), **ok)))

    def cleared(self, a: Any) -> Callable[..., Any]:
        """Body of ``prop`` with register ``a``'s proposals gone (it is written)."""
        V = self.V
        return lambda x, w: V.And(self.prop.pre(x, w), V.Not(V.eq(x, a)))

    # -- axioms, init ----------------------------------------------------------------------

    def axioms(self) -> list[Formula]:
        V, le, lt = self.V, self.le, self.lt
        return [
            V.forall([A], lambda x: le(x, x)),
            V.forall([A] * 3, lambda x, y, z: V.Implies(V.And(le(x, y), le(y, z)), le(x, z))),
            V.forall([A] * 2, lambda x, y: V.Implies(V.And(le(x, y), le(y, x)), V.eq(x, y))),
            V.forall([A] * 2, lambda x, y: V.Or(le(x, y), le(y, x))),
            V.forall([A], lambda x: V.And(le(x, self.end), le(self.a0, x))),
            V.forall([A, A, S], lambda x, y, s: V.Implies(V.And(
                self.in_seg(x, s), V.Not(self.last(x)), self.succ(x, y)), self.in_seg(y, s))),
            V.forall([A, A, A], lambda a, b, x: V.Implies(self.succ(a, b), V.And(
                lt(a, b), V.Not(V.And(lt(a, x), lt(x, b)))))),
            V.forall([A, S], lambda a, s: V.Implies(self.in_seg(a, s), V.And(
                V.Not(V.eq(a, self.end)), V.Not(self.before(a, s))))),
            V.forall([A, A, S], lambda b, a, s: V.Implies(
                V.And(self.before(b, s), V.Not(self.before(a, s))), lt(b, a))),
            V.forall([S, A, A], lambda s, x, b: V.Implies(
                V.And(self.start(s, x), lt(b, x)), self.before(b, s))),
            V.forall([S, A], lambda s, x: V.Implies(self.start(s, x), self.in_seg(x, s))),
            V.forall([S], lambda s: V.Not(self.before(self.end, s))),
            V.Not(V.eq(self.none, self.noop)),
        ]

    def init(self) -> Formula:
        V = self.V
        empty = [V.forall(r.dom, lambda *x, r=r: V.Not(r.pre(*x)))
                 for r in (self.owner, self.prop, self.meta, self.allocated, self.applied, self.prec)]
        return V.And(
            *empty,
            V.forall([A], lambda a: V.eq(self.val.pre(a), self.none)),
            V.forall([P], lambda p: V.And(
                V.eq(self.phase.pre(p), self.ph["IDLE"]), V.eq(self.seg.pre(p), self.s0),
                V.eq(self.cur.pre(p), self.a0), V.eq(self.nxt.pre(p), self.a0))),
            V.forall([V_], lambda v: V.eq(self.status.pre(v), self.st["C_IDLE"])))

    # -- actions (one per action of WormPaxos, same names) ---------------------------------

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        """Per action of the model, a builder of its :class:`Transition`."""
        acts: dict[str, tuple[tuple[str, ...], Callable[[], Formula]]] = {
            "Elect": (("phase", "seg"), self._elect),
            "Alloc": (("meta", "allocated", "phase", "seg", "cur"), self._alloc),
            "Capture": (("owner", "phase", "seg"), self._capture),
            "Fill": (("val", "prop", "phase", "seg", "applied", "nxt"), self._fill),
            "CaptureOwn": (("owner", "phase", "cur"), self._capture_own),
            "Propose": ((*WRITE, "status", "prec"), self._propose),
            "Respond": (("status",), self._respond),
            "Learn": (("applied", "nxt"), self._learn),
            "Settle": (("val", "prop"), self._settle),
            "Fail": (("phase", "seg", "cur"), self._fail),
            "Terminated": ((), self._terminated),
        }
        if self.rotating:
            acts["Skip"] = (WRITE, self._skip)
        return lazy_transitions(acts)

    def _elect(self) -> Formula:
        V, alloc = self.V, self.allocated.pre

        def lowest(p: Any, s: Any) -> Formula:
            own = (lambda s2: self.turn(s2, p)) if self.rotating else (lambda s2: True)
            return V.And(own(s), V.Not(alloc(s)), V.forall([S], lambda s2: V.Implies(
                V.And(self.lts(s2, s), own(s2)), alloc(s2))))

        def revoke(p: Any, s: Any) -> Formula:
            if not self.rotating:
                return False
            return V.And(self.in_seg(self.nxt.pre(p), s), V.Not(alloc(s)), V.Not(self.turn(s, p)))

        return V.exists([P, S], lambda p, s: V.when(
            V.And(self.is_ph(p, "IDLE"), self.may_lead(p)), lambda: V.when(
                V.Or(lowest(p, s), revoke(p, s)),
                lambda: self.step(("phase", "seg"), **self.proc(p, phase="ELECTING", seg=s)))))

    def _alloc(self) -> Formula:
        V, mod = self.V, ("meta", "allocated", "phase", "seg", "cur")

        def outcome(p: Any, s: Any) -> Formula:
            fresh = V.Not(self.allocated.pre(s))
            space = {"meta": lambda s2, q: V.Or(self.meta.pre(s2, q), V.And(
                         fresh, V.eq(s2, s), V.eq(q, p))),
                     "allocated": self.at_point("allocated", (s,), True)}
            won = V.Or(fresh, self.meta.pre(s, p))
            revocation = V.Not(self.turn(s, p)) if self.rotating else False
            if self.rotating or self.bug == "no_capture":
                start = V.exists([A], lambda x: V.when(self.start(s, x), lambda: self.step(
                    mod, **space, **self.proc(p, phase="OWNING", cur=x))))
            else:
                start = self.step(mod, **space, **self.proc(p, phase="TAKEOVER"))
            lost = self.step(mod, **space, **self.step_down(p))
            return V.Or(V.when(V.And(won, V.Not(revocation)), lambda: start),
                        V.when(V.Or(V.Not(won), revocation), lambda: lost))

        return V.exists([P], lambda p: V.when(self.is_ph(p, "ELECTING"),
                                              lambda: outcome(p, self.seg.pre(p))))

    def _capture(self) -> Formula:
        V, mod = self.V, ("owner", "phase", "seg")

        def go(p: Any, a: Any, s: Any, seg: Any) -> Formula:
            return V.when(V.And(self.in_seg(a, s), self.allocated.pre(s),
                                V.eq(self.val.pre(a), self.none)), lambda: self.step(
                mod, owner=lambda x, q: V.If(V.eq(x, a), V.eq(q, p), self.owner.pre(x, q)),
                **self.proc(p, phase="FILLING", seg=seg)))

        def case(p: Any, s: Any) -> Formula:
            a = self.nxt.pre(p)
            take = V.when(V.And(self.is_ph(p, "TAKEOVER"), self.before(a, self.seg.pre(p))),
                          lambda: go(p, a, s, self.seg.pre(p)))
            if not self.rotating:
                return take
            return V.Or(take, V.when(self.is_ph(p, "IDLE"), lambda: go(p, a, s, self.s0)))

        return V.exists([P, S], case)

    def _fill(self) -> Formula:
        V, mod = self.V, ("val", "prop", "phase", "seg", "applied", "nxt")
        back = "IDLE" if self.rotating else "TAKEOVER"

        def go(p: Any, b: Any) -> Formula:
            a = self.nxt.pre(p)
            if self.bug == "no_hole_filling":
                hole = V.eq(self.val.pre(a), self.none)
                read_as_noop = V.when(hole, lambda: self.step(
                    mod, applied=lambda r, x, v: V.Or(self.applied.pre(r, x, v), V.And(
                        V.eq(r, p), V.eq(x, a), V.eq(v, self.noop))),
                    nxt=self.at_point("nxt", (p,), b), **self.proc(p, phase=back)))
                return V.Or(read_as_noop, V.when(V.Not(hole), lambda: self._fill_write(p, back)))
            return self._fill_write(p, back)

        return V.exists([P, A], lambda p, b: V.when(
            V.And(self.is_ph(p, "FILLING"), self.succ(self.nxt.pre(p), b)), lambda: go(p, b)))

    def _fill_write(self, p: Any, back: str) -> Formula:
        """The hole's NO-OP write: OK and ALREADY_WRITTEN go back (the replica learns what is
        there), PREEMPTED steps down."""
        mod = ("val", "prop", "phase", "seg", "applied", "nxt")
        ret = self.proc(p, phase=back)
        return self.write(p, self.nxt.pre(p), self.noop, mod, ok=ret, already=ret,
                          preempted=self.proc(p, phase="IDLE", seg=self.s0))

    def _capture_own(self) -> Formula:
        V, mod = self.V, ("owner", "phase", "cur")

        def capture(p: Any, x: Any, s: Any) -> Formula:
            owner = lambda a, q: V.If(V.eq(a, x), V.eq(q, p), self.owner.pre(a, q))  # noqa: E731
            done = V.exists([A], lambda y: V.when(V.And(self.last(x), self.start(s, y)), lambda: self.step(
                mod, owner=owner, **self.proc(p, phase="LEADING", cur=y))))
            more = V.exists([A], lambda y: V.when(V.And(V.Not(self.last(x)), self.succ(x, y)),
                                                  lambda: self.step(mod, owner=owner, **self.proc(
                                                      p, phase="OWNING", cur=y))))
            return V.Or(done, more)

        def case(p: Any) -> Formula:
            s = self.seg.pre(p)
            begin = V.exists([A], lambda x: V.when(V.And(
                self.is_ph(p, "TAKEOVER"), V.Not(self.before(self.nxt.pre(p), s)), self.start(s, x)),
                lambda: capture(p, x, s)))
            going = V.when(self.is_ph(p, "OWNING"), lambda: capture(p, self.cur.pre(p), s))
            return V.Or(begin, going)

        return V.exists([P], case)

    def _lead_write(self, p: Any, v: Any, mod: tuple[str, ...],
                    oked: dict[str, Callable[..., Any]] | None = None,
                    failed: dict[str, Callable[..., Any]] | None = None) -> Formula:
        """Leader ``p`` writes ``v`` at its next free address: on OK it advances (idle after
        its segment's last address), otherwise it steps down; ``oked``/``failed``: the other
        bodies of the two cases."""
        V, a = self.V, self.cur.pre(p)
        down = {**self.step_down(p), **(failed or {})}

        def after(nxt: dict[str, Callable[..., Any]]) -> Formula:
            return self.write(p, a, v, mod, ok={**nxt, **(oked or {})}, preempted=down, already=down)

        return V.Or(V.when(self.last(a), lambda: after(self.step_down(p))),
                    V.exists([A], lambda b: V.when(V.And(V.Not(self.last(a)), self.succ(a, b)),
                                                   lambda: after(self.proc(p, cur=b)))))

    def _propose(self) -> Formula:
        V, mod = self.V, (*WRITE, "status", "prec")

        def go(p: Any, c: Any) -> Formula:
            prec = lambda x, y: V.Or(self.prec.pre(x, y), V.And(  # noqa: E731
                V.eq(y, c), V.eq(self.status.pre(x), self.st["DONE"])))

            def status(name: str) -> dict[str, Callable[..., Any]]:
                return {"status": self.at_point("status", (c,), self.st[name]), "prec": prec}
            return self._lead_write(p, c, mod, status("OKED"), status("PROPOSED"))

        return V.exists([P, V_], lambda p, c: V.when(
            V.And(self.is_ph(p, "LEADING"), self.cmd(c), V.eq(self.status.pre(c), self.st["C_IDLE"])),
            lambda: go(p, c)))

    def _skip(self) -> Formula:
        V = self.V
        return V.exists([P], lambda p: V.when(self.is_ph(p, "LEADING"),
                                              lambda: self._lead_write(p, self.noop, WRITE)))

    def _respond(self) -> Formula:
        V = self.V

        def guard(c: Any, a: Any, s: Any, ld: Any) -> Formula:
            g = V.And(V.eq(self.val.pre(a), c), self.in_seg(a, s), self.meta.pre(s, ld),
                      V.Not(self.is_ph(ld, "DOWN")))
            if self.rotating and self.bug != "ack_before_apply":
                g = V.And(g, self.lt(a, self.nxt.pre(ld)))
            return g

        return V.exists([V_, A, S, P], lambda c, a, s, ld: V.when(
            V.And(V.eq(self.status.pre(c), self.st["OKED"]), guard(c, a, s, ld)),
            lambda: self.step(("status",), status=self.at_point("status", (c,), self.st["DONE"]))))

    def _learn(self) -> Formula:
        V = self.V

        def go(r: Any, b: Any) -> Formula:
            a = self.nxt.pre(r)
            v = self.val.pre(a)
            return V.when(V.Not(V.eq(v, self.none)), lambda: self.step(
                ("applied", "nxt"), applied=lambda r2, x, w: V.Or(self.applied.pre(r2, x, w), V.And(
                    V.eq(r2, r), V.eq(x, a), V.eq(w, v))), nxt=self.at_point("nxt", (r,), b)))

        return V.exists([P, A], lambda r, b: V.when(
            V.And(V.Not(self.is_ph(r, "FILLING", "DOWN")), self.succ(self.nxt.pre(r), b)),
            lambda: go(r, b)))

    def _settle(self) -> Formula:
        V = self.V
        return V.exists([A, V_], lambda a, v: V.when(
            V.And(V.eq(self.val.pre(a), self.none), self.prop.pre(a, v)),
            lambda: self.step(("val", "prop"), val=self.at_point("val", (a,), v),
                              prop=self.cleared(a))))

    def _fail(self) -> Formula:
        V, k = self.V, self.crashes
        if k == 0:
            return False
        # Fewer than k processes are down: among any k distinct processes one is up.
        room = V.forall([P] * k, lambda *ps: V.Or(
            *[V.eq(ps[i], ps[j]) for i in range(k) for j in range(i + 1, k)],
            *[V.Not(self.is_ph(q, "DOWN")) for q in ps]))
        return V.exists([P], lambda p: V.when(V.And(V.Not(self.is_ph(p, "DOWN")), room), lambda: self.step(
            ("phase", "seg", "cur"), **self.proc(p, phase="DOWN", seg=self.s0, cur=self.a0))))

    def _terminated(self) -> Formula:
        V = self.V
        return V.Or(V.forall([S], lambda s: self.allocated.pre(s)),
                    V.forall([V_], lambda c: V.Implies(self.cmd(c), V.Not(
                        V.eq(self.status.pre(c), self.st["C_IDLE"])))))

    # -- the inductive invariant and the safety properties ---------------------------------

    def invariant(self, at: View) -> dict[str, Formula]:
        """The conjuncts, read through ``at`` (the pre-state, or an action's post-state)."""
        V = self.V
        val, owner, prop = at(self.val), at(self.owner), at(self.prop)
        meta, alloc, seg = at(self.meta), at(self.allocated), at(self.seg)
        cur, nxt = at(self.cur), at(self.nxt)
        applied, status, prec = at(self.applied), at(self.status), at(self.prec)
        imp, conj, neg, eq, fa, lt = V.Implies, V.And, V.Not, V.eq, V.forall, self.lt
        none = self.none

        def ph(p: Any, *names: str) -> Formula:
            return self.is_ph(p, *names, at=at)

        def written(a: Any) -> Formula:
            return neg(eq(val(a), none))

        def holds(a: Any, c: Any) -> Formula:
            return V.Or(eq(val(a), c), prop(a, c))

        inv = {
            # The space.
            "owner_unique": fa([A, P, P], lambda a, p, q: imp(conj(owner(a, p), owner(a, q)), eq(p, q))),
            "meta_unique": fa([S, P, P], lambda s, p, q: imp(conj(meta(s, p), meta(s, q)), eq(p, q))),
            "meta_allocated": fa([S, P], lambda s, p: imp(meta(s, p), alloc(s))),
            "prop_on_empty": fa([A, V_], lambda a, v: imp(prop(a, v), conj(
                eq(val(a), none), neg(eq(v, none))))),
            "end_empty": conj(eq(val(self.end), none), fa([V_], lambda v: neg(prop(self.end, v)))),
            # Replicas: what they applied is what is written, and their prefix is written.
            "applied_is_written": fa([P, A, V_], lambda r, a, v: imp(applied(r, a, v), conj(
                eq(val(a), v), written(a)))),
            "nxt_prefix_written": fa([P, A], lambda r, a: imp(lt(a, nxt(r)), written(a))),
            # Commands: an idle one is nowhere; one proposal each; acknowledged ones come first.
            "status_of_values": fa([V_], lambda v: imp(neg(self.cmd(v)), eq(status(v), self.st["C_IDLE"]))),
            "idle_unused": fa([V_, A, V_], lambda c, a, x: imp(
                conj(self.cmd(c), eq(status(c), self.st["C_IDLE"])),
                conj(neg(holds(a, c)), neg(prec(x, c))))),
            "proposed_once": fa([V_, A, A], lambda c, a, b: imp(
                conj(self.cmd(c), holds(a, c), holds(b, c)), eq(a, b))),
            "prec_done": fa([V_, V_], lambda c1, c2: imp(prec(c1, c2), eq(status(c1), self.st["DONE"]))),
            "acked_not_pending": fa([V_, A], lambda c, a: imp(
                V.Or(eq(status(c), self.st["OKED"]), eq(status(c), self.st["DONE"])), neg(prop(a, c)))),
            "done_prefix": fa([V_, A, A], lambda c, a, b: imp(
                conj(eq(status(c), self.st["DONE"]), self.cmd(c), eq(val(a), c), lt(b, a)), written(b))),
            "real_time": fa([V_, V_, A, A], lambda c1, c2, a1, a2: imp(
                conj(prec(c1, c2), eq(val(a1), c1), holds(a2, c2)), lt(a1, a2))),
            "leader_owns": fa([P], lambda p: imp(ph(p, *self.leading), meta(seg(p), p))),
            "cur_in_segment": fa([P], lambda p: imp(ph(p, "OWNING", "LEADING"), self.in_seg(cur(p), seg(p)))),
        }
        if not self.rotating:  # the takeover: a sticky leader proposes above a written prefix
            inv["owning_prefix"] = fa([P, A], lambda p, b: imp(
                conj(ph(p, "OWNING", "LEADING"), self.before(b, seg(p))), written(b)))
            inv["leading_prefix"] = fa([P, A], lambda p, b: imp(
                conj(ph(p, "LEADING"), lt(b, cur(p))), written(b)))
            inv["oked_prefix"] = fa([V_, A, A], lambda c, a, b: imp(
                conj(eq(status(c), self.st["OKED"]), self.cmd(c), eq(val(a), c), lt(b, a)), written(b)))
        return inv

    def safety(self) -> dict[str, Formula]:
        """The model's ``ReplicasAgree``, ``AppliedWasProposed`` and ``RealTimeOrder``."""
        V, val, prop = self.V, self.val.pre, self.prop.pre
        return {
            "ReplicasAgree": V.forall([P, P, A, V_, V_], lambda r1, r2, a, v1, v2: V.Implies(
                V.And(self.applied.pre(r1, a, v1), self.applied.pre(r2, a, v2)), V.eq(v1, v2))),
            "AppliedWasProposed": V.forall([P, A, V_], lambda r, a, c: V.Implies(
                V.And(self.applied.pre(r, a, c), self.cmd(c)),
                V.Not(V.eq(self.status.pre(c), self.st["C_IDLE"])))),
            "RealTimeOrder": V.forall([V_, V_, A, A], lambda c1, c2, a1, a2: V.Implies(
                V.And(self.prec.pre(c1, c2), V.eq(val(a1), c1), V.Or(V.eq(val(a2), c2), prop(a2, c2))),
                self.lt(a1, a2))),
        }

    def steps(self, at: View) -> dict[str, Formula]:
        """Write-once, as a step property: a written address keeps its value."""
        V = self.V
        return {"WriteOnce": V.forall([A], lambda a: V.Implies(
            V.Not(V.eq(self.val.pre(a), self.none)), V.eq(at(self.val)(a), self.val.pre(a))))}


def proof_suite(policy: str = "sticky", bug: str = "", crashes: int = 1, **_params: Any) -> ProofSuite:
    """The obligations of WormPaxos' inductive invariant for unbounded processes, addresses,
    segments and commands (``wormspace prove apps.wormpaxos``; other model parameters are
    accepted and ignored: the proof covers every size)."""
    if policy not in wp.POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join(wp.POLICIES)}")
    if bug and bug not in wp.BUGS:
        raise ValueError(f"unknown bug {bug!r}; one of {sorted(wp.BUGS)}")
    if bug and wp.BUG_POLICY[bug] != policy:
        raise ValueError(f"bug {bug} is a mistake of the {wp.BUG_POLICY[bug]} policy")
    name = f"apps.wormpaxos[{policy}]" + (f"[{bug}]" if bug else "")
    return suite(name, lambda V: WormPaxosEncoding(V, policy, bug, max(crashes, 1)))


# -- conformance with the explicit model -------------------------------------------------------

def universe(m: wp.WormPaxos) -> Universe:
    """The bounded interpretation for ``m``: processes, addresses 0..L (L = past the end),
    segments, values 0 (none), 1..K (commands), K+1 (NO-OP)."""
    n, z, segs = m.length, m.size, m.segments
    addrs = range(n + 1)
    return Universe(
        sizes={P: m.procs, A: n + 1, S: segs, V_: m.commands + 2},
        consts={"none": 0, "noop": m.noop, "end": n, "a0": 0, "s0": 0},
        rigid={"le": {(a, b) for a in addrs for b in addrs if a <= b},
               "succ": {(a, a + 1) for a in range(n)},
               "in_seg": {(a, a // z) for a in range(n)},
               "before": {(a, s) for a in range(n) for s in range(segs) if a < s * z},
               "start": {(s, s * z) for s in range(segs)},
               "last": {(a,) for a in range(n) if a % z == z - 1},
               "lts": {(s1, s2) for s1 in range(segs) for s2 in range(segs) if s1 < s2},
               "turn": {(s, s % m.procs) for s in range(segs)},
               "may_lead": {(p,) for p in range(m.leaders)}})


def project(m: wp.WormPaxos, s: wp.State) -> dict[str, Any]:
    """The explicit state in the encoding's symbols."""
    sp, procs, cmds = s
    val, owner, prop = {(m.length,): 0}, set(), set()
    for a in range(m.length):
        v, own, pr = sp[a // m.size][2][a % m.size]
        val[(a,)] = v
        if own:
            owner.add((a, own - 1))
        prop |= {(a, x) for x in range(1, m.noop + 1) if pr >> x & 1}
    return {
        "val": val, "owner": owner, "prop": prop,
        "meta": {(seg, g[0] - 1) for seg, g in enumerate(sp) if g[0]},
        "allocated": {(seg,) for seg, g in enumerate(sp) if g[0]},
        "phase": {(p,): x[0] for p, x in enumerate(procs)},
        "seg": {(p,): x[1] for p, x in enumerate(procs)},
        "cur": {(p,): x[2] for p, x in enumerate(procs)},
        "nxt": {(p,): len(x[3]) for p, x in enumerate(procs)},
        "applied": {(p, i, v) for p, x in enumerate(procs) for i, v in enumerate(x[3])},
        "status": {(v,): cmds[v - 1][0] if 1 <= v <= m.commands else 0 for v in range(m.noop + 1)},
        "prec": {(c1 + 1, c2 + 1) for c2, (_st, mask) in enumerate(cmds)
                 for c1 in range(m.commands) if mask >> c1 & 1},
    }


def conformance(policy: str = "sticky", bug: str = "", procs: int = 2, leaders: int | None = None,
                commands: int = 1, segments: int = 2, size: int = 1, crashes: int = 1,
                max_states: int | None = None) -> ConformanceReport:
    """Check, on every reachable state of the bounded model (the first ``max_states`` in BFS
    order if given), that the encoding has the same initial states and the same successors
    per action as the explicit model."""
    m = wp.WormPaxos(procs=procs, leaders=procs if leaders is None else leaders,
                     commands=commands, segments=segments, size=size, crashes=crashes,
                     policy=policy, bug=bug)
    return check_conformance(m, lambda V: WormPaxosEncoding(V, policy, bug, crashes), universe(m),
                             lambda st: project(m, st), max_states=max_states)

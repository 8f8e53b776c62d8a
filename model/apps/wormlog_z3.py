"""Z3 proof that WormLog hands out every address at most once and that its answers never change,
for unbounded segments, offsets, sequencers, clients and values, from the WOS guarantees alone;
and its bounded conformance with ``wormlog.py``.

The encoding abstracts the module to what these properties rest on, and states the WOS
guarantees as the only ways the WormSpace part of the state changes:

* **first allocation wins**: a segment's metadata (``allocated``, ``meta``) is written once, by
  the allocation of a segment that was not allocated (``Alloc``);
* **write-once registers**: a register's value ``val`` goes from ``none`` to a value once
  (``Land``, ``AppendReturns``, ``FillJunk``), and a write answers ``OK`` only if the register is
  empty or already holds the written value (the guard of ``AppendReturns`` and ``FillJunk``);
* **reads answer the register** (``ReadAnswer``), and **trim is final** (``Trim``: the segment's
  registers are dropped, and nothing is written or read in a trimmed segment again).

Captures do not appear at all: which write wins is the WOR's business, and the proof shows that
*whichever* wins, WormLog is safe. What the proof does rest on is the protocol: a sequencer serves
only a segment whose allocation it won (``serving_won``), hands out each offset below its
counter once (``below``), and a client answers an append only with a write that answered ``OK``.
The key invariant is that every address already handed out (granted or given) is below the
counter of whichever sequencer serves its segment, which a second sequencer on one segment (the
``duplicate_address`` mutant) breaks.

Written against ``checker.prove.Vocab``: proved with uninterpreted sorts (:func:`proof_suite`),
and evaluated on the explicit module's states (:func:`conformance`). The encoding is an
abstraction of the module, so conformance is one way, as for the WOS layer: every reachable
module step, projected, is an abstract step or a stutter, which is the direction that carries
the proof over to the module; and every reachable state satisfies every conjunct.

Each seeded bug of ``wormlog.BUGS`` has its counterpart here and breaks an obligation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from wormspace.checker.prove import ProofSuite, StateSymbol, Transition, View, Vocab, pre_view, suite
from wormspace.model.apps import wormlog as mod
from wormspace.model.wos.segments_z3 import EvalVocab, SimulationReport
from wormspace.spec import sharedlog as spec

S, OFF, Q, C, VL = "seg", "off", "seq", "client", "val"
#: The symbols holding a client's last answer.
ANSWERS = ("told", "toldA")


class WormLogEncoding:
    """Sorts, state symbols, init, actions, invariant and safety over a vocabulary."""

    def __init__(self, voc: Vocab, bug: str = "") -> None:
        self.V, self.bug = voc, bug
        for s in (S, OFF, Q, C, VL):
            voc.sort(s)
        self.none, self.junk = voc.const("none", VL), voc.const("junk", VL)
        R, F = voc.relation, voc.function
        self.allocated, self.meta, self.trimmed = R("allocated", S), R("meta", S, Q), R("trimmed", S)
        self.val = F("val", [S, OFF], VL)
        self.active, self.sseg, self.below = R("active", Q), F("sseg", [Q], S), R("below", Q, OFF)
        self.grant, self.given, self.dup = R("grant", C, S, OFF), R("given", S, OFF), R("dup")
        self.told, self.toldA = R("told", C, S, OFF, VL), R("toldA", C, S, OFF)
        self.cval = F("cval", [C], VL)  # the value each client appends (never changes)
        self.state: list[StateSymbol] = [
            self.allocated, self.meta, self.trimmed, self.val, self.active, self.sseg,
            self.below, self.grant, self.given, self.dup, self.told, self.toldA, self.cval]

    # -- helpers -------------------------------------------------------------------------------

    def at_point(self, xs: Sequence[Any], at: Sequence[Any]) -> Any:
        """The arguments ``xs`` are the point ``at``."""
        return self.V.And(*[self.V.eq(x, a) for x, a in zip(xs, at)])

    def update(self, f: StateSymbol, key: Sequence[Any], body: Callable[..., Any]) -> Any:
        """``f'`` is ``body`` where the leading arguments are ``key``, ``f`` elsewhere."""
        V, k = self.V, len(key)
        return V.define(f, lambda *x: V.If(self.at_point(x[:k], key), body(*x[k:]), f.pre(*x)))

    def answer(self, c: Any, told: Callable[..., Any] | None = None,
               toldA: Callable[..., Any] | None = None) -> list[Any]:
        """Client ``c``'s last answer becomes the given one (a predicate on the relation's
        other arguments; None: nothing). Modifies ``ANSWERS``."""
        return [self.update(self.told, (c,), told or (lambda *_: False)),
                self.update(self.toldA, (c,), toldA or (lambda *_: False))]

    def data(self, v: Any) -> Any:
        """``v`` is a data value: neither ``none`` nor ``junk``."""
        return self.V.And(self.V.Not(self.V.eq(v, self.none)), self.V.Not(self.V.eq(v, self.junk)))

    def serve(self, q: Any, s: Any) -> list[Any]:
        """Sequencer ``q`` now serves segment ``s`` with a fresh counter."""
        return [self.update(self.active, (q,), lambda: True),
                self.update(self.sseg, (q,), lambda: s),
                self.update(self.below, (q,), lambda o: False)]

    # -- the encoding interface (prove.Encoding) -----------------------------------------------

    def axioms(self) -> list[Any]:
        return [self.V.Not(self.V.eq(self.none, self.junk))]

    def init(self) -> Any:
        V = self.V
        empty = [V.forall(f.dom, lambda *x, f=f: V.Not(f.pre(*x))) for f in self.state
                 if f.rng is None]
        return V.And(*empty, V.forall([S, OFF], lambda s, o: V.eq(self.val.pre(s, o), self.none)),
                     V.forall([C], lambda c: self.data(self.cval.pre(c))))

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        """One builder per abstract action (conformance evaluates them per explicit step)."""
        V, none, junk = self.V, self.none, self.junk
        val, trimmed, grant = self.val.pre, self.trimmed.pre, self.grant.pre

        def tr(formula: Any, *modifies: str) -> Transition:
            return Transition(formula, frozenset(modifies))

        def alloc() -> Transition:
            def won(q: Any, s: Any) -> Any:  # the WOS guarantee: only an unallocated segment
                return V.when(V.Not(self.allocated.pre(s)), lambda: V.And(
                    self.update(self.allocated, (s,), lambda: True),
                    self.update(self.meta, (s, q), lambda: True), *self.serve(q, s)))

            def stale(q: Any, s: Any) -> Any:  # the mutant serves a segment it did not win
                return V.when(self.allocated.pre(s), lambda: V.And(
                    V.define(self.allocated, self.allocated.pre),
                    V.define(self.meta, self.meta.pre), *self.serve(q, s)))

            body = (lambda q, s: V.Or(won(q, s), stale(q, s))) \
                if self.bug == "duplicate_address" else won
            return tr(V.exists([Q, S], body), "allocated", "meta", "active", "sseg", "below")

        def retire() -> Transition:
            return tr(V.exists([Q, S], lambda q, s: V.And(
                self.update(self.active, (q,), lambda: False),
                self.update(self.sseg, (q,), lambda: s),
                self.update(self.below, (q,), lambda o: False))), "active", "sseg", "below")

        def skip() -> Transition:  # a used-up (trimmed) segment: the counter passes its end
            return tr(V.exists([Q], lambda q: V.when(self.active.pre(q), lambda: self.update(
                self.below, (q,), lambda o: True))), "below")

        def grant_() -> Transition:
            def body(q: Any, c: Any, o: Any) -> Any:
                s = self.sseg.pre(q)
                return V.when(V.And(self.active.pre(q), V.Not(self.below.pre(q, o)),
                                    V.forall([S, OFF], lambda s2, o2: V.Not(grant(c, s2, o2)))),
                              lambda: V.And(self.update(self.below, (q, o), lambda: True),
                                            self.update(self.grant, (c, s, o), lambda: True)))
            return tr(V.exists([Q, C, OFF], body), "below", "grant")

        def append_returns() -> Transition:
            def body(c: Any, s: Any, o: Any) -> Any:
                v = self.cval.pre(c)
                ok = V.Or(V.eq(val(s, o), none), V.eq(val(s, o), v))  # the WOR's OK
                written = self.update(self.val, (s, o), lambda: v)
                if self.bug == "append_ignores_preempted":  # PREEMPTED: nothing written
                    ok, written = True, V.define(self.val, val)
                return V.when(V.And(grant(c, s, o), V.Not(trimmed(s)), ok), lambda: V.And(
                    written, self.update(self.grant, (c,), lambda s2, o2: False),
                    self.update(self.given, (s, o), lambda: True),
                    V.define(self.dup, lambda: V.Or(self.dup.pre(), self.given.pre(s, o))),
                    *self.answer(c, toldA=lambda s2, o2: self.at_point((s2, o2), (s, o)))))
            return tr(V.exists([C, S, OFF], body), "val", "grant", "given", "dup", *ANSWERS)

        def write_fails() -> Transition:  # PREEMPTED, ALREADY_WRITTEN, TRIMMED: drop the grant
            return tr(V.exists([C], lambda c: self.update(self.grant, (c,), lambda s, o: False)),
                      "grant")

        def land() -> Transition:  # a proposed value takes effect (the WOR finishes it)
            return tr(V.exists([S, OFF, VL], lambda s, o, v: V.when(
                V.And(V.eq(val(s, o), none), V.Not(trimmed(s)), V.Not(V.eq(v, none))),
                lambda: self.update(self.val, (s, o), lambda: v))), "val")

        def fill_junk() -> Transition:
            def body(c: Any, s: Any, o: Any) -> Any:
                ok = V.Or(V.eq(val(s, o), none), V.eq(val(s, o), junk))
                written = self.update(self.val, (s, o), lambda: junk)
                if self.bug == "fill_overwrites":  # ALREADY_WRITTEN taken for OK
                    ok = True
                    written = self.update(self.val, (s, o), lambda: V.If(
                        V.eq(val(s, o), none), junk, val(s, o)))
                return V.when(V.And(V.Not(trimmed(s)), ok), lambda: V.And(written, *self.answer(
                    c, told=lambda s2, o2, v2: V.And(self.at_point((s2, o2, v2), (s, o, junk))))))
            return tr(V.exists([C, S, OFF], body), "val", *ANSWERS)

        def read_answer() -> Transition:  # a read or a fill's read reveals the register
            return tr(V.exists([C, S, OFF], lambda c, s, o: V.when(
                V.And(V.Not(trimmed(s)), V.Not(V.eq(val(s, o), none))), lambda: V.And(
                    *self.answer(c, told=lambda s2, o2, v2: self.at_point(
                        (s2, o2, v2), (s, o, val(s, o))))))), *ANSWERS)

        def forget() -> Transition:  # an invocation, or an answer that reveals no entry
            return tr(V.exists([C], lambda c: V.And(*self.answer(c))), *ANSWERS)

        def trim() -> Transition:
            return tr(V.exists([S], lambda s: V.And(
                self.update(self.trimmed, (s,), lambda: True),
                self.update(self.val, (s,), lambda o: none))), "trimmed", "val")

        return {"Alloc": alloc, "Retire": retire, "Skip": skip, "Grant": grant_,
                "AppendReturns": append_returns, "WriteFails": write_fails, "Land": land,
                "FillJunk": fill_junk, "ReadAnswer": read_answer, "Forget": forget, "Trim": trim}

    # -- the inductive invariant ---------------------------------------------------------------

    def invariant(self, at: View) -> dict[str, Any]:
        V, none, junk = self.V, self.none, self.junk
        allocated, meta, trimmed = at(self.allocated), at(self.meta), at(self.trimmed)
        val, active, sseg, below = at(self.val), at(self.active), at(self.sseg), at(self.below)
        grant, given, dup, cval = at(self.grant), at(self.given), at(self.dup), at(self.cval)
        told, toldA = at(self.told), at(self.toldA)
        imp, conj, eq, neg, fa = V.Implies, V.And, V.eq, V.Not, V.forall
        return {
            "meta_allocated": fa([S, Q], lambda s, q: imp(meta(s, q), allocated(s))),
            "meta_unique": fa([S, Q, Q], lambda s, q1, q2: imp(conj(meta(s, q1), meta(s, q2)),
                                                               eq(q1, q2))),
            "serving_won": fa([Q], lambda q: imp(active(q), meta(sseg(q), q))),
            "grant_allocated": fa([C, S, OFF], lambda c, s, o: imp(grant(c, s, o), allocated(s))),
            "given_allocated": fa([S, OFF], lambda s, o: imp(given(s, o), allocated(s))),
            "grant_below": fa([Q, C, OFF], lambda q, c, o: imp(
                conj(active(q), grant(c, sseg(q), o)), below(q, o))),
            "given_below": fa([Q, OFF], lambda q, o: imp(conj(active(q), given(sseg(q), o)),
                                                       below(q, o))),
            "grant_fresh": fa([C, S, OFF], lambda c, s, o: imp(grant(c, s, o), neg(given(s, o)))),
            "grant_unique": fa([C, C, S, OFF], lambda c1, c2, s, o: imp(
                conj(grant(c1, s, o), grant(c2, s, o)), eq(c1, c2))),
            "one_grant_each": fa([C, S, OFF, S, OFF], lambda c, s1, o1, s2, o2: imp(
                conj(grant(c, s1, o1), grant(c, s2, o2)), conj(eq(s1, s2), eq(o1, o2)))),
            "no_dup": neg(dup()),
            "cval_is_data": fa([C], lambda c: conj(neg(eq(cval(c), none)), neg(eq(cval(c), junk)))),
            "given_holds_data": fa([S, OFF], lambda s, o: imp(conj(given(s, o), neg(trimmed(s))), conj(
                neg(eq(val(s, o), none)), neg(eq(val(s, o), junk))))),
            "append_answer_holds": fa([C, S, OFF], lambda c, s, o: imp(
                conj(toldA(c, s, o), neg(trimmed(s))), eq(val(s, o), cval(c)))),
            "read_answer_holds": fa([C, S, OFF, VL], lambda c, s, o, v: imp(
                conj(told(c, s, o, v), neg(trimmed(s))), conj(eq(val(s, o), v), neg(eq(v, none))))),
            "trimmed_dropped": fa([S, OFF], lambda s, o: imp(trimmed(s), eq(val(s, o), none))),
        }

    def safety(self) -> dict[str, Any]:
        V = self.V
        return {
            "UniqueAddresses": V.Not(self.dup.pre()),
            "AnswersHold": V.forall([C, S, OFF, VL], lambda c, s, o, v: V.Implies(
                V.And(V.Or(self.told.pre(c, s, o, v),
                           V.And(self.toldA.pre(c, s, o), V.eq(v, self.cval.pre(c)))),
                      V.Not(self.trimmed.pre(s))),
                V.eq(self.val.pre(s, o), v))),
        }

    def steps(self, at: View) -> dict[str, Any]:
        """Entries are final: a written register keeps its value until its segment is trimmed
        (with AnswersHold: a read never changes its answer once it revealed an entry)."""
        V = self.V
        return {"EntriesAreFinal": V.forall([S, OFF], lambda s, o: V.Implies(
            V.And(V.Not(V.eq(self.val.pre(s, o), self.none)), V.Not(at(self.trimmed)(s))),
            V.eq(at(self.val)(s, o), self.val.pre(s, o))))}


def proof_suite(bug: str = "", **_model_params: Any) -> ProofSuite:
    """The obligations for ``wormspace prove apps.wormlog`` (``bug``: a seeded mutant). The
    proof is for unbounded sizes: the model's size parameters are accepted and ignored."""
    if bug and bug not in mod.BUGS:
        raise ValueError(f"unknown bug {bug!r}; one of {sorted(mod.BUGS)}")
    return suite(f"apps.wormlog{'[' + bug + ']' if bug else ''}",
                 lambda v: WormLogEncoding(v, bug))


# -- conformance with the explicit module --------------------------------------------------------


class _Eval(EvalVocab):
    """``EvalVocab`` with WormLog's constants: ``none`` is 0, ``junk`` the last value."""

    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__(sizes)
        self.consts = {"none": 0, "junk": sizes[VL] - 1}

    def const(self, name: str, sort: str) -> Any:
        return self.consts[name]


def project(m: mod.WormLog, st: mod.State) -> dict[str, Any]:
    """An explicit state of ``wormlog.py`` in the encoding's symbols (values: 0 none, 1..values,
    values + 1 junk)."""
    sp, seqs, cl, given, dup = st
    junk = m.values + 1

    def v(x: int) -> int:
        return junk if x == spec.JUNK else x

    def so(a: int) -> tuple[int, int]:
        return divmod(a, m.size)

    serving = {q: x for q, x in enumerate(seqs) if x[0] == mod.SERVE}
    told, told_a = set(), set()
    for c, x in enumerate(cl):
        kind, a, e = x[5]
        if kind in (spec.READ, spec.FILL) and e not in (spec.EMPTY, spec.TRIMMED):
            told.add((c, *so(a), v(e)))
        elif kind == spec.APPEND and e != spec.FAILED:
            told_a.add((c, *so(a)))
    return {
        "allocated": {(s,) for s, g in enumerate(sp) if g[0]},
        "meta": {(s, g[0] - 1) for s, g in enumerate(sp) if g[0]},
        "trimmed": {(s,) for s, g in enumerate(sp) if g[1]},
        "val": {(s, o): v(r[0]) for s, g in enumerate(sp) for o, r in enumerate(g[2])},
        "active": {(q,) for q in serving},
        "sseg": {(q,): serving[q][1] if q in serving else 0 for q in range(m.sequencers)},
        "below": {(q, o) for q, x in serving.items() for o in range(x[2])},
        "grant": {(c, *so(x[2])) for c, x in enumerate(cl) if x[1] == mod.WRITE},
        "given": {so(a) for a in range(m.addresses) if given >> a & 1},
        "dup": {()} if dup else set(),
        "told": told, "toldA": told_a,
        "cval": {(c,): m.value(c) for c in range(m.clients)},
    }


def conformance(bug: str = "", max_problems: int = 5, encoding_bug: str | None = None,
                segments: int = 2, size: int = 1, sequencers: int = 2, values: int = 1,
                workload: str = "append,append/read,tail,trim") -> SimulationReport:
    """Check that the bounded module ``WormLog(...)`` is simulated by the encoding (with
    ``encoding_bug``, by default the module's own ``bug``): every reachable step, projected, is
    a stutter or satisfies an abstract action that modifies at least what changed; the initial
    state satisfies ``init``; every reachable state satisfies every invariant conjunct."""
    t0 = time.perf_counter()
    m = mod.WormLog(segments=segments, size=size, sequencers=sequencers, values=values,
                    workload=workload, bug=bug)
    voc = _Eval({S: m.segments, OFF: m.size, Q: m.sequencers, C: m.clients, VL: m.values + 2})
    enc = WormLogEncoding(voc, bug if encoding_bug is None else encoding_bug)
    builders = enc.transitions()
    names = [sym.name for sym in enc.state]
    rep = SimulationReport(f"apps.wormlog({', '.join(f'{k}={v}' for k, v in m.params.items())})")
    inits = list(m.init_states())
    for s in inits:
        voc.pre = voc.post = project(m, s)
        if not enc.init():
            rep.mismatches.append("an initial state does not satisfy init")
    # What each action modifies is static: only actions that may explain a step get evaluated.
    modifies = {n: b().modifies for n, b in builders.items()}
    checked: set[Any] = set()
    matched: dict[Any, str | None] = {}
    keys: dict[Any, tuple[Any, ...]] = {}  # per state, its projection's key (computed once)

    def key(st: mod.State) -> tuple[Any, ...]:
        k = keys.get(st)
        if k is None:
            k = keys[st] = _key(project(m, st))
        return k

    queue = list(inits)
    for s in inits:
        key(s)
    actions = m.actions()
    while queue and len(rep.mismatches) + len(rep.invariant_failures) < max_problems:
        nxt = []
        for s in queue:
            rep.states += 1
            key_s = key(s)
            if key_s not in checked:  # many module states share a projection
                checked.add(key_s)
                ps = project(m, s)
                voc.pre = voc.post = ps
                bad = [k for k, f in enc.invariant(pre_view).items() if not f]
                if bad:
                    rep.invariant_failures.append(
                        f"conjunct {', '.join(bad)} fails in a reachable state: {dict(m.variables(s))}")
            for act in actions:
                for params, t in act.successors(s):
                    rep.steps += 1
                    if t not in keys:
                        nxt.append(t)
                    key_t = key(t)
                    if key_t == key_s:
                        rep.stutters += 1
                        continue
                    pair = (key_s, key_t)
                    if pair not in matched:
                        ps, pt = project(m, s), project(m, t)
                        voc.pre, voc.post = ps, pt
                        changed = {n for n in names if ps[n] != pt[n]}
                        matched[pair] = next((n for n, b in builders.items()
                                              if changed <= modifies[n] and b().formula), None)
                    match = matched[pair]
                    if match is None:
                        rep.mismatches.append(
                            f"{act.describe(params)} changes the projection in a way no abstract "
                            f"action allows, from {dict(m.variables(s))}")
                    else:
                        rep.actions[match] = rep.actions.get(match, 0) + 1
        queue = nxt
    rep.seconds = time.perf_counter() - t0
    return rep


def _key(val: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(frozenset(v.items()) if isinstance(v, dict) else frozenset(v)
                 for _n, v in sorted(val.items()))

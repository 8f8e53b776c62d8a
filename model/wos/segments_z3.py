"""Z3 proof of the WOS module's key invariants for unbounded segments, clients and values, from
the WOR layer's guarantees taken as axioms; and its bounded conformance with ``segments.py``.

The encoding abstracts the module to the steps that matter for allocation, trimming and sealing
and states the WOR layer's guarantee as the only way registers change: a register's value
(``mw`` for metadata, ``dw`` for data, ``tw`` for the trim WOR) goes from none to a value once
and never again; an ``OK``/value answer from a register means it holds that value; and all of
this holds only while *at most one client unsafe-writes* each register (the WOR contract's
assumption, a conjunct here). It is written against ``checker.prove.Vocab`` so the same formulas
are proved symbolically (``proof_suite``) and evaluated on explicit states (``conformance``).

Each seeded bug of ``segments.BUGS`` has its counterpart action here and breaks an obligation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from wormspace.checker.prove import ProofSuite, StateSymbol, Transition, View, Vocab, pre_view, suite
from wormspace.model.wos import segments as mod
from wormspace.spec import wos as spec

S, C, M, OFF, VL = "seg", "client", "meta", "off", "val"
#: The symbols holding clients' last answers, and the monitors of answers.
ANSWERS = ("told", "toldT", "toldv")
MONITORS = ("served_drop", "served_stale")


class WosEncoding:
    """Sorts, state symbols, init, actions and the inductive invariant over a vocabulary."""

    def __init__(self, voc: Vocab, bug: str = "") -> None:
        self.V, self.bug = voc, bug
        for s in (S, C, M, OFF, VL):
            voc.sort(s)
        self.nm = voc.const("no_meta", M)
        self.nv = voc.const("no_val", VL)
        R, F = voc.relation, voc.function
        self.mw, self.dw = F("mw", [S], M), F("dw", [S, OFF], VL)
        self.mprop, self.tprop, self.tw = R("mprop", S, M), R("tprop", S), R("tw", S)
        self.dropped, self.stale = R("dropped", S), R("stale", C)
        self.told, self.toldT, self.toldv = R("told", C, S, M), R("toldT", C, S), R("toldv", C, S, OFF, VL)
        self.uw, self.duw = R("uw", S, C), R("duw", S, OFF, C)
        self.served_drop, self.served_stale = R("served_drop", S), R("served_stale", C)
        self.state: list[StateSymbol] = [
            self.mw, self.dw, self.mprop, self.tprop, self.tw, self.dropped, self.stale,
            self.told, self.toldT, self.toldv, self.uw, self.duw, self.served_drop,
            self.served_stale]

    # -- helpers -------------------------------------------------------------------------------

    def set_at(self, f: StateSymbol, at: Sequence[Any], val: Any) -> Any:
        """``f'`` is ``f`` changed at the single point ``at`` to ``val``."""
        V = self.V
        return V.define(f, lambda *x: V.If(V.And(*[V.eq(a, b) for a, b in zip(x, at)]), val,
                                            f.pre(*x)))

    def answer(self, c: Any, told: Any = None, toldT: Any = None) -> list[Any]:
        """Client ``c``'s last answer becomes the given one, its other answers forgotten: each
        argument is a predicate on the relation's other arguments, or None (nothing). Modifies
        ``ANSWERS``."""
        V = self.V

        def upd(f: StateSymbol, new: Any) -> Any:
            return V.define(f, lambda c2, *r: V.If(V.eq(c2, c), False if new is None else new(*r),
                                                   f.pre(c2, *r)))
        return [upd(self.told, told), upd(self.toldT, toldT), upd(self.toldv, None)]

    def gate(self, c: Any, s: Any) -> Any:
        """The servers serve client ``c`` on segment ``s``: current configuration, not dropped."""
        V = self.V
        fresh = True if self.bug == "sealed_accept" else V.Not(self.stale.pre(c))
        return V.And(fresh, V.Not(self.dropped.pre(s)))

    def served(self, c: Any, s: Any) -> list[Any]:
        """The monitors of an informative answer to ``c`` about ``s``. Modifies ``MONITORS``."""
        V = self.V
        return [V.define(self.served_drop, lambda s2: V.Or(
                    self.served_drop.pre(s2), V.And(V.eq(s2, s), self.dropped.pre(s)))),
                V.define(self.served_stale, lambda c2: V.Or(
                    self.served_stale.pre(c2), V.And(V.eq(c2, c), self.stale.pre(c))))]

    # -- the encoding interface (prove.Encoding) -----------------------------------------------

    def axioms(self) -> list[Any]:
        """None: the WOR layer's guarantees are built into the actions (see the module doc)."""
        return []

    def init(self) -> Any:
        V = self.V
        empty = [V.forall(f.dom, lambda *x, f=f: V.Not(f.pre(*x))) for f in self.state
                 if f.rng is None]
        return V.And(V.forall([S], lambda s: V.eq(self.mw.pre(s), self.nm)),
                     V.forall([S, OFF], lambda s, o: V.eq(self.dw.pre(s, o), self.nv)), *empty)

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        """One builder per abstract action (conformance rebuilds them per explicit step)."""
        V, nm, nv = self.V, self.nm, self.nv
        mw, dw = self.mw.pre, self.dw.pre

        def tr(formula: Any, *modifies: str) -> Transition:
            return Transition(formula, frozenset(modifies))

        def invoke_alloc() -> Transition:
            return tr(V.exists([C, S, M], lambda c, s, m: V.when(V.Not(V.eq(m, nm)), lambda: V.And(
                self.set_at(self.mprop, (s, m), True), *self.answer(c)))), "mprop", *ANSWERS)

        def invoke_trim() -> Transition:
            return tr(V.exists([C, S], lambda c, s: V.And(
                self.set_at(self.tprop, (s,), True), *self.answer(c))), "tprop", *ANSWERS)

        def forget() -> Transition:  # invoking check or a data op; an uninformative answer
            return tr(V.exists([C], lambda c: V.And(*self.answer(c))), *ANSWERS)

        def meta_written() -> Transition:  # the WOR guarantee: from none, once, a proposal
            return tr(V.exists([S, M], lambda s, m: V.when(
                V.And(V.eq(mw(s), nm), self.mprop.pre(s, m), V.Not(V.eq(m, nm))),
                lambda: self.set_at(self.mw, (s,), m))), "mw")

        def alloc_answer() -> Transition:  # alloc OK, alloc learning the winner, check
            return tr(V.exists([C, S], lambda c, s: V.when(
                V.And(V.Not(V.eq(mw(s), nm)), self.gate(c, s)), lambda: V.And(
                    *self.answer(c, told=lambda s2, m2: V.And(V.eq(s2, s), V.eq(m2, mw(s)))),
                    *self.served(c, s)))), *ANSWERS, *MONITORS)

        def trim_written() -> Transition:
            return tr(V.exists([S], lambda s: V.when(
                V.And(V.Not(self.tw.pre(s)), self.tprop.pre(s), V.Not(V.eq(mw(s), nm))),
                lambda: self.set_at(self.tw, (s,), True))), "tw")

        def complete_trim() -> Transition:
            return tr(V.exists([S], lambda s: V.when(self.tw.pre(s), lambda: self.set_at(
                self.dropped, (s,), True))), "dropped")

        def trimmed_answer() -> Transition:
            def fresh(c: Any) -> Any:
                return True if self.bug == "sealed_accept" else V.Not(self.stale.pre(c))
            # The bug answers on seeing the trim WOR written, without the drop.
            seen = self.tw.pre if self.bug == "trim_not_completed" else self.dropped.pre
            return tr(V.exists([C, S], lambda c, s: V.when(V.And(fresh(c), seen(s)), lambda: V.And(
                *self.answer(c, toldT=lambda s2: V.eq(s2, s))))), *ANSWERS)

        def seal() -> Transition:
            return tr(V.define(self.stale, lambda c: True), "stale")

        def sealed_answer() -> Transition:
            return tr(V.exists([C], lambda c: V.when(self.stale.pre(c), lambda: V.And(
                self.set_at(self.stale, (c,), False), *self.answer(c)))), "stale", *ANSWERS)

        def data_written() -> Transition:  # the WOR guarantee for data registers
            return tr(V.exists([S, OFF, VL], lambda s, o, v: V.when(
                V.And(V.eq(dw(s, o), nv), V.Not(V.eq(v, nv))),
                lambda: self.set_at(self.dw, (s, o), v))), "dw")

        def data_answer() -> Transition:  # capture/write codes and per-address read values
            def told_values(c: Any, s: Any) -> Any:
                # Some offsets of s, each with the value its register holds.
                return V.forall([C, S, OFF, VL], lambda c2, s2, o, v: V.And(
                    V.Implies(V.Not(V.eq(c2, c)), V.eq(self.toldv.post(c2, s2, o, v),
                                                       self.toldv.pre(c2, s2, o, v))),
                    V.Implies(V.And(V.eq(c2, c), self.toldv.post(c2, s2, o, v)), V.And(
                        V.eq(s2, s), V.Not(V.eq(v, nv)), V.eq(v, dw(s, o))))))
            return tr(V.exists([C, S], lambda c, s: V.when(self.gate(c, s), lambda: V.And(
                *self.answer(c)[:2], told_values(c, s), *self.served(c, s)))),
                *ANSWERS, *MONITORS)

        def unsafe_meta() -> Transition:  # only the seeded bug writes without capture
            if self.bug != "alloc_without_capture":
                return tr(False, "uw")
            return tr(V.exists([C, S], lambda c, s: self.set_at(self.uw, (s, c), True)), "uw")

        def unsafe_data() -> Transition:
            if self.bug != "batch_write_unchecked":
                return tr(False, "duw")
            return tr(V.exists([C, S, OFF], lambda c, s, o: self.set_at(self.duw, (s, o, c), True)),
                      "duw")

        return {"InvokeAlloc": invoke_alloc, "InvokeTrim": invoke_trim, "Forget": forget,
                "MetaWritten": meta_written, "AllocAnswer": alloc_answer,
                "TrimWritten": trim_written, "CompleteTrim": complete_trim,
                "TrimmedAnswer": trimmed_answer, "Seal": seal, "SealedAnswer": sealed_answer,
                "DataWritten": data_written, "DataAnswer": data_answer,
                "UnsafeMetaWrite": unsafe_meta, "UnsafeDataWrite": unsafe_data}

    def steps(self, at: View) -> dict[str, Any]:
        """Trim finality as a step property: a dropped segment stays dropped."""
        V = self.V
        return {"TrimStaysDropped": V.forall([S], lambda s: V.Implies(
            self.dropped.pre(s), at(self.dropped)(s)))}

    # -- invariant -----------------------------------------------------------------------------

    def invariant(self, at: View) -> dict[str, Any]:
        V, nm, nv = self.V, self.nm, self.nv
        g = at
        mw, dw, mprop, tprop, tw = g(self.mw), g(self.dw), g(self.mprop), g(self.tprop), g(self.tw)
        dropped, told, toldT, toldv = g(self.dropped), g(self.told), g(self.toldT), g(self.toldv)
        uw, duw, sd, ss = g(self.uw), g(self.duw), g(self.served_drop), g(self.served_stale)
        imp, eq, neg = V.Implies, V.eq, V.Not
        return {
            "meta_was_proposed": V.forall([S], lambda s: V.Or(eq(mw(s), nm), mprop(s, mw(s)))),
            "told_is_winner": V.forall([C, S, M], lambda c, s, m: imp(
                told(c, s, m), V.And(eq(mw(s), m), neg(eq(m, nm))))),
            "trim_needs_alloc": V.forall([S], lambda s: imp(tw(s), V.And(
                tprop(s), neg(eq(mw(s), nm))))),
            "dropped_is_trimmed": V.forall([S], lambda s: imp(dropped(s), tw(s))),
            "trimmed_told_dropped": V.forall([C, S], lambda c, s: imp(toldT(c, s), dropped(s))),
            "never_served_dropped": V.forall([S], lambda s: neg(sd(s))),
            "never_served_stale": V.forall([C], lambda c: neg(ss(c))),
            "read_is_written": V.forall([C, S, OFF, VL], lambda c, s, o, v: imp(
                toldv(c, s, o, v), V.And(eq(dw(s, o), v), neg(eq(v, nv))))),
            "one_unsafe_meta_writer": V.forall([S, C, C], lambda s, c1, c2: imp(
                V.And(uw(s, c1), uw(s, c2)), eq(c1, c2))),
            "one_unsafe_data_writer": V.forall([S, OFF, C, C], lambda s, o, c1, c2: imp(
                V.And(duw(s, o, c1), duw(s, o, c2)), eq(c1, c2))),
        }

    def safety(self) -> dict[str, Any]:
        V = self.V
        return {
            "AllocUnique": V.forall([C, C, S, M, M], lambda c1, c2, s, m1, m2: V.Implies(
                V.And(self.told.pre(c1, s, m1), self.told.pre(c2, s, m2)), V.eq(m1, m2))),
            "TrimFinal": V.forall([C, S], lambda c, s: V.Implies(
                self.toldT.pre(c, s), V.And(self.dropped.pre(s), V.Not(self.served_drop.pre(s))))),
        }


def proof_suite(bug: str = "") -> ProofSuite:
    """The obligations for ``wormspace prove wos.segments`` (``bug``: a seeded mutant)."""
    if bug and bug not in mod.BUGS:
        raise ValueError(f"unknown bug {bug!r}; one of {sorted(mod.BUGS)}")
    return suite(f"wos.segments{'[' + bug + ']' if bug else ''}", lambda v: WosEncoding(v, bug))


# -- conformance with the explicit module --------------------------------------------------------
#
# The encoding abstracts the module: one module step is one abstract step or none (a stutter:
# protocol stages, lower-layer messages and effects that change nothing the encoding names).
# So the check here is a *simulation*, one way: on every reachable state of a bounded module,
# the projected initial state satisfies ``init`` and every explicit step, projected, is a
# stutter or satisfies some abstract action (and changes only what that action modifies).
# That is the direction that carries the proof over to the module. The generic two-way
# ``checker.conformance`` is for encodings that mirror a model action for action; the other
# direction (every abstract step is a module step) is false by design here: the abstraction
# lets any proposal take effect at any time, which the module does only through its protocol.

class EvalVocab(Vocab):
    """Finite sorts ``0..k-1``, quantifiers expanded, every symbol read from a concrete pre-
    and post-state: formulas evaluate to Python booleans."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes
        self.pre: dict[str, Any] = {}
        self.post: dict[str, Any] = {}

    def sort(self, name: str) -> str:
        return name

    def const(self, name: str, sort: str) -> Any:
        return 0  # no_meta and no_val are 0 in the projection

    def _sym(self, name: str, dom: Sequence[str], rng: str | None) -> StateSymbol:
        def read(state: dict[str, Any]) -> Callable[..., Any]:
            if rng is None:
                return lambda *a: a in state[name]
            return lambda *a: state[name][a]
        return StateSymbol(name, tuple(dom), rng, lambda *a: read(self.pre)(*a),
                           lambda *a: read(self.post)(*a))

    def relation(self, name: str, *sorts: str) -> StateSymbol:
        return self._sym(name, sorts, None)

    def function(self, name: str, dom: Sequence[str], rng: str) -> StateSymbol:
        return self._sym(name, dom, rng)

    def forall(self, sorts: Sequence[str], body: Callable[..., Any]) -> Any:
        return all(body(*xs) for xs in product(*[range(self.sizes[s]) for s in sorts]))

    def exists(self, sorts: Sequence[str], body: Callable[..., Any]) -> Any:
        return any(body(*xs) for xs in product(*[range(self.sizes[s]) for s in sorts]))

    def And(self, *fs: Any) -> Any:
        return all(fs)

    def Or(self, *fs: Any) -> Any:
        return any(fs)

    def Not(self, f: Any) -> Any:
        return not f

    def Implies(self, a: Any, b: Any) -> Any:
        return (not a) or b

    def If(self, c: Any, a: Any, b: Any) -> Any:
        return a if c else b

    def when(self, guard: Any, then: Callable[[], Any]) -> Any:
        return guard and then()


def project(m: mod.Segments, st: mod.State) -> dict[str, Any]:
    """An explicit state of ``segments.py`` in the encoding's symbols (values 0 = none)."""
    epoch, segs, wors, cl = st[:4]  # notifications (listen) are not in the encoding
    meta, trim, data = m.plugs
    out: dict[str, Any] = {
        "mw": {(s,): meta.reg(wors[m.reg_index(s, mod.META_W)]) for s in range(m.segments)},
        "dw": {(s, o): data.reg(wors[m.reg_index(s, mod.DATA_W + o)])
               for s in range(m.segments) for o in range(m.size)},
        "mprop": {(s, v) for s, g in enumerate(segs) for v in range(1, m.metas + 1) if g[1] >> v & 1},
        "tprop": {(s,) for s, g in enumerate(segs) if g[2]},
        "tw": {(s,) for s in range(m.segments) if trim.reg(wors[m.reg_index(s, mod.TRIM_W)])},
        "dropped": {(s,) for s, g in enumerate(segs) if g[0]},
        "stale": {(c,) for c, x in enumerate(cl) if x[8] < epoch},
        "told": set(), "toldT": set(), "toldv": set(),
        "uw": {(s, c) for s in range(m.segments) for c in range(m.clients)
               if wors[m.reg_index(s, mod.META_W)][1] >> c & 1},
        "duw": {(s, o, c) for s in range(m.segments) for o in range(m.size)
                for c in range(m.clients) if wors[m.reg_index(s, mod.DATA_W + o)][1] >> c & 1},
        "served_drop": {(s,) for s, g in enumerate(segs) if g[3]},
        "served_stale": set(),  # the module has no such monitor: the gate must make it so
    }
    for c, x in enumerate(cl):
        s, ret = x[1], x[11]
        if x[0] != spec.IDLE:
            continue
        if isinstance(ret, tuple):  # data answers cover the whole segment in a workload
            out["toldv"] |= {(c, s, o, r - spec.VALUE) for o, r in enumerate(ret)
                             if r >= spec.VALUE}
        elif ret >= spec.META:
            out["told"].add((c, s, ret - spec.META))
        elif ret == spec.TRIMMED:
            out["toldT"].add((c, s))
    return out


@dataclass
class SimulationReport:
    """The outcome of :func:`conformance` (the shape ``wormspace prove`` prints)."""

    model: str
    states: int = 0
    steps: int = 0
    stutters: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    invariant_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.states > 0 and not self.mismatches and not self.invariant_failures

    @property
    def summary(self) -> str:
        verdict = "holds" if self.ok else "fails"
        line = (f"{verdict}: {self.model}, all {self.states:,} reachable states, "
                f"{self.steps:,} steps ({self.stutters:,} stutters), one way (module steps are "
                f"abstract steps), {self.seconds:.1f} s")
        problems = self.mismatches + self.invariant_failures
        return line + (f"; first problem: {problems[0]}" if problems else "")

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "ok": self.ok, "model": self.model,
                "states": self.states, "steps": self.steps, "stutters": self.stutters,
                "actions": self.actions, "mismatches": self.mismatches[:5],
                "invariant_failures": self.invariant_failures[:5],
                "seconds": round(self.seconds, 3)}


def conformance(workload: str = "alloc1,write1,trim/alloc2,check", bug: str = "",
                max_problems: int = 5, encoding_bug: str | None = None, **params: Any
                ) -> SimulationReport:
    """Check that the bounded module ``Segments(workload=..., bug=..., **params)`` is simulated
    by the encoding (with ``encoding_bug``, by default the same bug; see the comment above),
    and that every reachable state satisfies the encoding's invariant conjuncts under the
    projection."""
    t0 = time.perf_counter()
    m = mod.Segments(workload=workload, bug=bug, **params)
    voc = EvalVocab({S: m.segments, C: m.clients, M: m.metas + 1, OFF: m.size,
                     VL: m.values + 1})
    enc = WosEncoding(voc, bug if encoding_bug is None else encoding_bug)
    builders = enc.transitions()
    rep = SimulationReport(f"wos.segments({', '.join(f'{k}={v}' for k, v in m.params.items())})")
    names = [sym.name for sym in enc.state]

    def problem(where: list[str], text: str) -> None:
        where.append(text)

    inits = list(m.init_states())
    for s in inits:
        voc.pre = voc.post = project(m, s)
        if not enc.init():
            problem(rep.mismatches, "an initial state does not satisfy init")
    # What each action modifies is static; knowing it first means only the actions that may
    # explain a step's changes get their formula evaluated.
    modifies = {n: b().modifies for n, b in builders.items()}
    actions = m.actions()
    checked: set[Any] = set()
    matched: dict[Any, str | None] = {}
    seen = set(inits)
    queue = list(inits)
    while queue and len(rep.mismatches) + len(rep.invariant_failures) < max_problems:
        nxt = []
        for s in queue:
            rep.states += 1
            ps = project(m, s)
            key_s = _key(ps)
            # Many module states share a projection: evaluate each distinct one once.
            if key_s in checked:
                bad = []
            else:
                checked.add(key_s)
                voc.pre = voc.post = ps
                bad = [k for k, f in enc.invariant(pre_view).items() if not f]
            if bad:
                problem(rep.invariant_failures, f"conjunct {', '.join(bad)} fails in a "
                        f"reachable state: {dict(m.variables(s))}")
            for act in actions:
                for args, t in act.successors(s):
                    rep.steps += 1
                    pt = project(m, t)
                    if t not in seen:
                        seen.add(t)
                        nxt.append(t)
                    if pt == ps:
                        rep.stutters += 1
                        continue
                    pair = (key_s, _key(pt))
                    if pair in matched:
                        match = matched[pair]
                    else:
                        voc.pre, voc.post = ps, pt
                        changed = {n for n in names if ps[n] != pt[n]}
                        match = matched[pair] = next(
                            (n for n, b in builders.items()
                             if changed <= modifies[n] and b().formula), None)
                    if match is None:
                        problem(rep.mismatches, f"{act.describe(args)} changes the "
                                f"projection in a way no abstract action allows, from "
                                f"{dict(m.variables(s))}")
                    else:
                        rep.actions[match] = rep.actions.get(match, 0) + 1
        queue = nxt
    rep.seconds = time.perf_counter() - t0
    return rep


def _key(val: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(frozenset(v.items()) if isinstance(v, dict) else frozenset(v)
                 for _n, v in sorted(val.items()))

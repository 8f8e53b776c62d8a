"""Inductive-invariant proofs with Z3, split into obligations as mypyvy splits them.

An *encoding* describes a transition system through a small vocabulary (:class:`Vocab`):
sorts, rigid symbols (constrained by axioms), state relations and functions (each with a pre-
and a post-state copy), quantifiers and connectives. The same encoding code runs against two
vocabularies: :class:`SymbolicVocab` here (uninterpreted sorts, real quantifiers: the proof)
and ``conformance.BoundedVocab`` (finite sorts, quantifiers expanded: the check that the
encoding is the explored model).

Actions are written mypyvy-style: a :class:`Transition` names the state symbols it
``modifies`` and gives each an explicit definition of its post-state (``R'(x) <-> R(x) | x =
new``, see :meth:`Vocab.define`); every other symbol is *the same symbol* in both states, so Z3
never reasons about frames. A :class:`ProofSuite` is the list of obligations:

* ``init -> C`` for each invariant conjunct ``C``;
* ``A => C`` for each action ``A`` and conjunct ``C``: ``Inv and A implies C'``, where ``Inv``
  is all conjuncts. When ``C`` reads no symbol that ``A`` modifies, ``C'`` *is* ``C`` and the
  obligation holds by the frame (it is reported as such, with no solver call);
* ``inv -> P`` for each safety property ``P``, and ``A => P`` for each two-state property.

:func:`run_suite` proves each one or returns a small counterexample to induction (CTI), printed
in the encoding's own names. :func:`alternation_cycle` checks that the quantifier alternations
of every obligation are stratified (the EPR fragment, where Z3's model-based quantifier
instantiation is a decision procedure). This module knows nothing of any particular model.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import z3

Formula = Any  # a z3.BoolRef, or a Python bool in the bounded vocabulary
Term = Any


@dataclass
class StateSymbol:
    """A state relation (``rng`` is None) or function: ``pre(*args)``, ``post(*args)``."""

    name: str
    dom: tuple[str, ...]
    rng: str | None
    pre: Callable[..., Any]
    post: Callable[..., Any]


#: Which copy of each state symbol a formula reads: ``at(sym)`` is ``sym.pre`` or ``sym.post``.
View = Callable[[StateSymbol], Callable[..., Any]]


def pre_view(sym: StateSymbol) -> Callable[..., Any]:
    """The view of the pre-state."""
    return sym.pre


def post_view(modifies: Iterable[str]) -> View:
    """The post-state of a transition that modifies only ``modifies``: every other symbol keeps
    its pre-state copy (so no frame condition is ever stated)."""
    changed = frozenset(modifies)
    return lambda sym: sym.post if sym.name in changed else sym.pre


@dataclass(frozen=True)
class Transition:
    """One action: a formula over the pre-state and the post-state of the symbols it modifies
    (existential parameters are quantified inside ``formula``)."""

    formula: Formula
    modifies: frozenset[str]


def lazy_transitions(acts: Mapping[str, tuple[Iterable[str], Callable[[], Formula]]]
                     ) -> dict[str, Callable[[], Transition]]:
    """Per action name, a function that builds its :class:`Transition` when called, from
    ``(modifies, formula builder)``: an encoding's formulas are built only once its
    vocabulary is in place, by the suite that uses them."""
    return {name: functools.partial(_transition, frozenset(mod), f)
            for name, (mod, f) in acts.items()}


def _transition(modifies: frozenset[str], formula: Callable[[], Formula]) -> Transition:
    return Transition(formula(), modifies)


class Vocab:
    """What an encoding is written against (see the module docstring)."""

    def sort(self, name: str) -> Any:
        """Declare (or get) an uninterpreted sort."""
        raise NotImplementedError

    def enum(self, name: str, members: Sequence[str]) -> list[Term]:
        """A finite sort whose elements are exactly ``members``; returns the elements."""
        raise NotImplementedError

    def const(self, name: str, sort: str) -> Term:
        """A rigid constant (the same in every state)."""
        raise NotImplementedError

    def rigid(self, name: str, *sorts: str) -> Callable[..., Formula]:
        """A rigid relation (never changes; constrained by axioms)."""
        raise NotImplementedError

    def relation(self, name: str, *sorts: str) -> StateSymbol:
        """A state relation."""
        raise NotImplementedError

    def function(self, name: str, dom: Sequence[str], rng: str) -> StateSymbol:
        """A state function."""
        raise NotImplementedError

    def forall(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        """``forall x1:s1 ... . body(x1, ...)``."""
        raise NotImplementedError

    def exists(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        """``exists x1:s1 ... . body(x1, ...)``."""
        raise NotImplementedError

    # Boolean connectives and equality; the bounded vocabulary folds Python bools.
    def And(self, *fs: Formula) -> Formula:
        return z3.And(*fs) if fs else True

    def Or(self, *fs: Formula) -> Formula:
        return z3.Or(*fs) if fs else False

    def Not(self, f: Formula) -> Formula:
        return z3.Not(f)

    def Implies(self, a: Formula, b: Formula) -> Formula:
        return z3.Implies(a, b)

    def eq(self, a: Term, b: Term) -> Formula:
        return a == b

    def If(self, c: Formula, a: Term, b: Term) -> Term:
        return z3.If(c, a, b)

    def when(self, guard: Formula, then: Callable[[], Formula]) -> Formula:
        """``guard and then()``; the bounded vocabulary skips building ``then()`` when the
        guard is already false (that is what keeps conformance checking fast)."""
        return z3.And(guard, then())

    def define(self, sym: StateSymbol, body: Callable[..., Any]) -> Formula:
        """The explicit definition of ``sym``'s post-state: ``forall x. sym'(x) = body(x)``
        (``<->`` for a relation). ``body`` reads the pre-state and the action's parameters."""
        return self.forall(sym.dom, lambda *x: self.eq(sym.post(*x), body(*x)))


_ENUMS: dict[tuple[str, tuple[str, ...]], tuple[z3.SortRef, list[z3.ExprRef]]] = {}


class SymbolicVocab(Vocab):
    """Uninterpreted sorts and real quantifiers: the vocabulary of the unbounded proof."""

    def __init__(self) -> None:
        self.sorts: dict[str, z3.SortRef] = {}
        #: (name, pre-state declaration, post-state declaration or None if rigid)
        self.symbols: list[tuple[str, z3.FuncDeclRef, z3.FuncDeclRef | None]] = []
        self._n = 0

    def sort(self, name: str) -> z3.SortRef:
        if name not in self.sorts:
            self.sorts[name] = z3.DeclareSort(name)
        return self.sorts[name]

    def enum(self, name: str, members: Sequence[str]) -> list[Term]:
        # Z3 declares an enumeration sort once per context: share it between vocabularies.
        # Two encodings may use one name for different members: the second gets a suffix.
        key = (name, tuple(members))
        if key not in _ENUMS:
            taken = sum(1 for n, _m in _ENUMS if n == name)
            _ENUMS[key] = z3.EnumSort(f"{name}_{taken}" if taken else name, list(members))
        srt, elems = _ENUMS[key]
        self.sorts[name] = srt
        return list(elems)

    def const(self, name: str, sort: str) -> Term:
        c = z3.Const(name, self.sort(sort))
        self.symbols.append((name, c.decl(), None))
        return c

    def rigid(self, name: str, *sorts: str) -> Callable[..., Formula]:
        f = z3.Function(name, *[self.sorts[s] for s in sorts], z3.BoolSort())
        self.symbols.append((name, f, None))
        return f  # type: ignore[no-any-return]

    def _decl(self, name: str, dom: Sequence[str], rng: z3.SortRef, rng_name: str | None
              ) -> StateSymbol:
        pre = z3.Function(name, *[self.sorts[s] for s in dom], rng)
        post = z3.Function(name + "'", *[self.sorts[s] for s in dom], rng)
        self.symbols.append((name, pre, post))
        return StateSymbol(name, tuple(dom), rng_name, pre, post)

    def relation(self, name: str, *sorts: str) -> StateSymbol:
        return self._decl(name, sorts, z3.BoolSort(), None)

    def function(self, name: str, dom: Sequence[str], rng: str) -> StateSymbol:
        return self._decl(name, dom, self.sorts[rng], rng)

    def _vars(self, sorts: Sequence[str]) -> list[z3.ExprRef]:
        self._n += 1
        return [z3.Const(f"{s[0].upper()}{self._n}_{i}", self.sorts[s]) for i, s in enumerate(sorts)]

    def forall(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        if not sorts:
            return body()
        xs = self._vars(sorts)
        return z3.ForAll(xs, body(*xs))

    def exists(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        if not sorts:
            return body()
        xs = self._vars(sorts)
        return z3.Exists(xs, body(*xs))


@dataclass
class ProofSuite:
    """The obligations of one encoding's inductive invariant.

    ``invariant(at)`` and ``steps(at)`` are built over a view, so the same conjunct can be read
    in the pre-state (``pre_view``) or in the post-state of any action (``post_view``).
    """

    name: str
    vocab: SymbolicVocab
    axioms: list[Formula]
    init: Formula
    actions: dict[str, Transition]
    invariant: Callable[[View], dict[str, Formula]]
    #: properties of one state, implied by the invariant
    safety: dict[str, Formula] = field(default_factory=dict)
    #: properties of one step (over the pre-state and the post-state ``at``), per action
    steps: Callable[[View], dict[str, Formula]] | None = None


class Encoding(Protocol):
    """A symbolic transition system written against a :class:`Vocab` (built by a function
    ``build(vocab)``), as both :func:`suite` and ``conformance.check_conformance`` read it."""

    #: the state symbols, in the order a counterexample shows them
    state: list[StateSymbol]

    def axioms(self) -> list[Formula]:
        """Facts about the rigid symbols (ignored by a bounded check, which interprets them)."""
        ...

    def init(self) -> Formula:
        """The initial states, over the pre-state."""
        ...

    def transitions(self) -> dict[str, Callable[[], Transition]]:
        """Per action, a function building it (built lazily: a bounded check builds each
        action once per pre-state)."""
        ...

    def invariant(self, at: View) -> dict[str, Formula]:
        """The inductive invariant's named conjuncts, read through ``at``."""
        ...

    def safety(self) -> dict[str, Formula]:
        """Safety properties of one state, to follow from the invariant."""
        ...

    def steps(self, at: View) -> dict[str, Formula]:
        """Safety properties of one step, from the pre-state to the post-state ``at``."""
        ...


def suite(name: str, build: Callable[[Vocab], Encoding]) -> ProofSuite:
    """The proof suite of an encoding, over uninterpreted sorts."""
    vocab = SymbolicVocab()
    enc = build(vocab)
    return ProofSuite(name, vocab, enc.axioms(), enc.init(),
                      {a: make() for a, make in enc.transitions().items()}, enc.invariant,
                      enc.safety(), enc.steps)


@dataclass
class Obligation:
    """One proof obligation's outcome."""

    name: str
    verdict: str  # "proved", "cti" (counterexample to induction), "unknown"
    seconds: float
    cti: str = ""
    #: how it was proved: "z3", or "frame" (the conjunct reads nothing the action modifies)
    how: str = "z3"


@dataclass
class ProofReport:
    """The outcome of a suite: every obligation, and whether all were proved."""

    suite: str
    obligations: list[Obligation] = field(default_factory=list)
    seconds: float = 0.0
    #: a cycle in the quantifier-alternation graph of the obligations (empty: stratified)
    alternation_cycle: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """All obligations proved."""
        return bool(self.obligations) and all(o.verdict == "proved" for o in self.obligations)

    @property
    def failed(self) -> list[Obligation]:
        """The obligations not proved."""
        return [o for o in self.obligations if o.verdict != "proved"]

    def slowest(self, k: int = 3) -> list[Obligation]:
        """The ``k`` obligations that took longest."""
        return sorted(self.obligations, key=lambda o: -o.seconds)[:k]

    @property
    def summary(self) -> str:
        """One line: counts, time, and the failures' names."""
        z3_ = sum(o.how == "z3" for o in self.obligations)
        line = (f"{self.suite}: {len(self.obligations) - len(self.failed)}/{len(self.obligations)}"
                f" obligations proved ({z3_} by Z3, the rest by the frame) in {self.seconds:.2f} s")
        if self.failed:
            line += "; not proved: " + ", ".join(f"{o.name} ({o.verdict})" for o in self.failed)
        return line

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (for ``wormspace report``)."""
        return {"suite": self.suite, "ok": self.ok, "seconds": round(self.seconds, 3),
                "stratified": not self.alternation_cycle,
                "alternation_cycle": self.alternation_cycle,
                "obligations": [{"name": o.name, "verdict": o.verdict, "how": o.how,
                                 "seconds": round(o.seconds, 4), "cti": o.cti}
                                for o in self.obligations]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def run_suite(suite: ProofSuite, *, progress: Callable[[Obligation], None] | None = None,
              timeout_ms: int = 30_000, minimize: bool = True,
              only: Collection[str] | None = None) -> ProofReport:
    """Check every obligation of ``suite`` (or only those named in ``only``); ``progress`` is
    called after each one.

    A CTI is shrunk (``minimize``) to the fewest elements per sort that still violate the
    obligation, as mypyvy does, so that it can be read.
    """
    report = ProofReport(suite.name)
    t_all = time.perf_counter()
    inv_pre = suite.invariant(pre_view)
    reads = {name: _symbols_read(f) for name, f in inv_pre.items()}
    formulas: list[tuple[list[Formula], Formula]] = []
    unchanged_steps: set[str] = set()

    def check(name: str, hyps: list[Formula], goal: Formula, modified: frozenset[str] | None
              ) -> None:
        # A fresh solver per obligation: measured faster than one incremental solver with
        # push/pop, and Z3's incremental mode has answered ``sat`` with quantifiers here.
        if only is not None and name not in only:
            return
        t0 = time.perf_counter()
        solver = z3.Solver()
        solver.set("timeout", timeout_ms)
        # EPR obligations are decided by model-based quantifier instantiation; E-matching
        # only adds useless instances.
        solver.set("smt.ematching", False)
        solver.set("smt.mbqi", True)
        solver.add(*suite.axioms, *hyps, z3.Not(goal))
        formulas.append((hyps, goal))
        res = solver.check()
        cti = ""
        if res == z3.sat:
            claim = z3.And(*suite.axioms, *hyps, z3.Not(goal))
            model = _minimized(solver, suite.vocab, claim) if minimize else solver.model()
            cti = show_model(suite.vocab, model, modified)
        verdict = "proved" if res == z3.unsat else "cti" if res == z3.sat else "unknown"
        _record(report, Obligation(name, verdict, time.perf_counter() - t0, cti), progress)

    for cname, pre in inv_pre.items():
        check(f"init -> {cname}", [suite.init], pre, None)
    for aname, act in suite.actions.items():
        at = post_view(act.modifies)
        hyps = [*inv_pre.values(), act.formula]
        for cname, post in suite.invariant(at).items():
            if not reads[cname] & act.modifies:
                _record(report, Obligation(f"{aname} => {cname}", "proved", 0.0, how="frame"),
                        progress, only)
                continue
            check(f"{aname} => {cname}", hyps, post, act.modifies)
        for pname, prop in (suite.steps(at) if suite.steps else {}).items():
            if any(r.endswith("'") for r in _symbols_read(prop)):
                check(f"{aname} => {pname}", hyps, prop, act.modifies)
                continue
            # The action changes nothing the property reads, so the property is a formula
            # of one state, the same for every such action: prove it once from Inv.
            if pname not in unchanged_steps:
                unchanged_steps.add(pname)
                check(f"inv -> {pname} (unchanged)", list(inv_pre.values()), prop, None)
            _record(report, Obligation(f"{aname} => {pname}", "proved", 0.0, how="frame"),
                    progress, only)
    for pname, prop in suite.safety.items():
        check(f"inv -> {pname}", list(inv_pre.values()), prop, None)
    report.alternation_cycle = alternation_cycle(suite.axioms, formulas)
    report.seconds = time.perf_counter() - t_all
    return report


def _record(report: ProofReport, ob: Obligation,
            progress: Callable[[Obligation], None] | None,
            only: Collection[str] | None = None) -> None:
    if only is not None and ob.name not in only:
        return
    report.obligations.append(ob)
    if progress:
        progress(ob)


def _symbols_read(f: Formula) -> set[str]:
    """The names of the uninterpreted symbols a (pre-state) formula applies."""
    out: set[str] = set()
    seen: set[int] = set()
    todo = [f] if isinstance(f, z3.ExprRef) else []
    while todo:
        e = todo.pop()
        if e.get_id() in seen:
            continue
        seen.add(e.get_id())
        if z3.is_quantifier(e):
            todo.append(e.body())
            continue
        if z3.is_app(e):
            if e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
                out.add(e.decl().name())
            todo.extend(e.children())
    return out


# -- counterexamples --------------------------------------------------------------------------

def _minimized(solver: z3.Solver, vocab: SymbolicVocab, claim: z3.BoolRef) -> z3.ModelRef:
    """Shrink each uninterpreted sort to the fewest elements that still give a model.

    A shrunk model is kept only if it really satisfies ``claim`` (the obligation's negation)
    when evaluated: with quantifiers, the model Z3 returns after the domain bound is added can
    be one whose printed interpretation does not; then the last good model is shown instead.
    """
    model = solver.model()

    def holds(m: z3.ModelRef) -> bool:
        return bool(z3.is_true(m.eval(claim, model_completion=True)))

    for sname, srt in vocab.sorts.items():
        if srt.kind() != z3.Z3_UNINTERPRETED_SORT:
            continue
        univ = model.get_universe(srt)
        if univ is None:
            continue
        for k in range(1, len(univ)):
            elems = [z3.Const(f"__{sname}{i}", srt) for i in range(k)]
            x = z3.Const(f"__{sname}_x", srt)
            solver.push()
            solver.add(z3.ForAll([x], z3.Or(*[x == e for e in elems])))
            if solver.check() == z3.sat and holds(solver.model()):
                model = solver.model()
                solver.pop()
                solver.add(z3.ForAll([x], z3.Or(*[x == e for e in elems])))  # keep the bound
                break
            solver.pop()
    return model


def show_model(vocab: SymbolicVocab, m: z3.ModelRef, modified: frozenset[str] | None) -> str:
    """A counterexample in the encoding's names: each sort's elements, then each symbol's true
    tuples (relations) or graph (functions) in the pre-state and, for the symbols the action
    modifies (``modified``), in the post-state when it differs."""
    names: dict[str, str] = {}
    lines = []
    for sname, srt in vocab.sorts.items():
        univ = m.get_universe(srt) if srt.kind() == z3.Z3_UNINTERPRETED_SORT else None
        if univ is None:
            continue
        for i, e in enumerate(univ):
            names[str(e)] = f"{sname}{i}"
        lines.append(f"{sname}: {', '.join(names[str(e)] for e in univ)}")

    def show(e: z3.ExprRef) -> str:
        s = str(m.eval(e, model_completion=True))
        return names.get(s, s)

    def graph(f: z3.FuncDeclRef, label: str) -> list[str]:
        doms = [f.domain(i) for i in range(f.arity())]
        elems = [(m.get_universe(d) or []) if d.kind() == z3.Z3_UNINTERPRETED_SORT
                 else [d.constructor(i)() for i in range(d.num_constructors())] for d in doms]
        out = []
        for t in itertools.product(*elems):
            val = m.eval(f(*t), model_completion=True)
            args = ", ".join(show(x) for x in t)
            call = f"{label}({args})" if t else label
            if f.range() == z3.BoolSort():
                if z3.is_true(val):
                    out.append(call)
            else:
                out.append(f"{call} = {show(val)}")
        return out

    for name, pre, post in vocab.symbols:
        g = graph(pre, name)
        lines.append(f"{name}: " + ("; ".join(g) if g else "{}"))
        if modified is not None and post is not None and name in modified:
            g2 = graph(post, name + "'")
            if g2 != [x.replace(name, name + "'", 1) for x in g]:
                lines.append(f"{name}': " + ("; ".join(g2) if g2 else "{}"))
    return "\n".join(lines)


# -- stratification (EPR) ---------------------------------------------------------------------

def alternation_cycle(axioms: Sequence[Formula],
                      obligations: Sequence[tuple[Sequence[Formula], Formula]]) -> list[str]:
    """A cycle in the quantifier-alternation graph, or ``[]`` if every obligation is in EPR.

    Each obligation is ``hyps and not goal``; after Skolemization an existential of sort ``B``
    under universals of sorts ``A...`` is a function ``A... -> B``, and so is every declared
    function. If those edges are acyclic the Herbrand universe is finite and MBQI decides the
    obligation. Checked over the union of all obligations (one graph for the whole suite).
    """
    edges: dict[str, set[str]] = {}

    def add(a: str, b: str) -> None:
        if b in infinite:  # a function into a finite (enumerated) sort is harmless
            edges.setdefault(a, set()).add(b)

    infinite: set[str] = set()

    seen: set[tuple[int, bool, tuple[str, ...]]] = set()
    decls: dict[str, z3.FuncDeclRef] = {}

    def walk(e: z3.ExprRef, positive: bool, univ: tuple[str, ...]) -> None:
        if not isinstance(e, z3.ExprRef):
            return  # a Python bool
        key = (e.get_id(), positive, univ)
        if key in seen:
            return
        seen.add(key)
        if z3.is_quantifier(e):
            sorts = tuple(e.var_sort(i).name() for i in range(e.num_vars()))
            infinite.update(e.var_sort(i).name() for i in range(e.num_vars())
                            if e.var_sort(i).kind() == z3.Z3_UNINTERPRETED_SORT)
            if e.is_forall() == positive:  # a universal after pushing negations in
                walk(e.body(), positive, tuple(sorted(set(univ) | set(sorts))))
            else:
                for a in univ:
                    for b in sorts:
                        add(a, b)
                walk(e.body(), positive, univ)
            return
        if not z3.is_app(e):
            return
        k = e.decl().kind()
        if k == z3.Z3_OP_UNINTERPRETED and e.num_args() > 0:
            decls[e.decl().name()] = e.decl()
        kids = e.children()
        if k == z3.Z3_OP_NOT:
            walk(kids[0], not positive, univ)
        elif k == z3.Z3_OP_IMPLIES:
            walk(kids[0], not positive, univ)
            walk(kids[1], positive, univ)
        elif k in (z3.Z3_OP_AND, z3.Z3_OP_OR):
            for c in kids:
                walk(c, positive, univ)
        elif k in (z3.Z3_OP_EQ, z3.Z3_OP_ITE, z3.Z3_OP_IFF, z3.Z3_OP_XOR, z3.Z3_OP_DISTINCT):
            for c in kids:  # both polarities
                walk(c, positive, univ)
                walk(c, not positive, univ)
        else:
            for c in kids:
                walk(c, positive, univ)

    for ax in axioms:
        walk(ax, True, ())
    for hyps, goal in obligations:
        for h in hyps:
            walk(h, True, ())
        walk(goal, False, ())
    for d in decls.values():
        rng = d.range()
        if rng.kind() == z3.Z3_UNINTERPRETED_SORT:
            infinite.add(rng.name())
            for i in range(d.arity()):
                add(d.domain(i).name(), rng.name())
    return _find_cycle(edges)


def _find_cycle(edges: Mapping[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(a: str) -> list[str]:
        state[a] = 1
        stack.append(a)
        for b in sorted(edges.get(a, ())):
            if state.get(b) == 1:
                return [*stack[stack.index(b):], b]
            if b not in state:
                found = dfs(b)
                if found:
                    return found
        stack.pop()
        state[a] = 2
        return []

    for a in sorted(edges):
        if a not in state:
            found = dfs(a)
            if found:
                return found
    return []

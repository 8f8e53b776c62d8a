"""Inductive-invariant proofs with Z3, split into obligations as mypyvy and Apalache split them.

An *encoding* describes a transition system over uninterpreted sorts through a small
vocabulary (:class:`Vocab`): sorts, state symbols (relations and functions, each with a pre-
and a post-state copy), quantifiers and an order relation. The same encoding code runs
against two vocabularies: :class:`SymbolicVocab` here (uninterpreted sorts, real quantifiers:
the proof) and ``conformance.BoundedVocab`` (finite sorts, quantifiers expanded: the check that
the encoding is the explored model). A :class:`ProofSuite` is the list of obligations:

* ``init => C`` for each invariant conjunct ``C``;
* ``Inv and A => C'`` for each action ``A`` and conjunct ``C`` (``Inv`` is all conjuncts);
* ``Inv => P`` for each safety property ``P``.

:func:`run_suite` proves each one or returns a small counterexample-to-induction, printed in the
encoding's own names. This module knows nothing of any particular model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

Formula = Any  # a z3.BoolRef, or a Python bool in the bounded vocabulary
Term = Any


class Vocab:
    """What an encoding is written against (see the module docstring)."""

    def sort(self, name: str) -> Any:
        """Declare (or get) a sort."""
        raise NotImplementedError

    def enum(self, name: str, members: Sequence[str]) -> list[Term]:
        """A finite sort whose elements are exactly ``members``; returns the elements."""
        raise NotImplementedError

    def const(self, name: str, sort: str) -> Term:
        """A rigid constant (same in pre and post state)."""
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
        raise NotImplementedError

    def exists(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
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


@dataclass
class StateSymbol:
    """A state relation or function: ``pre(*args)``, ``post(*args)``."""

    name: str
    dom: tuple[str, ...]
    rng: str | None  # None for a relation
    pre: Callable[..., Any]
    post: Callable[..., Any]


class SymbolicVocab(Vocab):
    """Uninterpreted sorts and real quantifiers: the vocabulary of the unbounded proof."""

    def __init__(self) -> None:
        self.sorts: dict[str, z3.SortRef] = {}
        self.symbols: list[tuple[str, z3.FuncDeclRef, z3.FuncDeclRef | None]] = []
        self._n = 0

    def sort(self, name: str) -> z3.SortRef:
        if name not in self.sorts:
            self.sorts[name] = z3.DeclareSort(name)
        return self.sorts[name]

    def enum(self, name: str, members: Sequence[str]) -> list[Term]:
        srt, elems = z3.EnumSort(name, list(members))
        self.sorts[name] = srt
        return list(elems)

    def const(self, name: str, sort: str) -> Term:
        c = z3.Const(name, self.sort(name=sort))
        self.symbols.append((name, c.decl(), None))
        return c

    def rigid(self, name: str, *sorts: str) -> Callable[..., Formula]:
        f = z3.Function(name, *[self.sorts[s] for s in sorts], z3.BoolSort())
        self.symbols.append((name, f, None))
        return f

    def _decl(self, name: str, dom: Sequence[str], rng: z3.SortRef) -> StateSymbol:
        pre = z3.Function(name, *[self.sorts[s] for s in dom], rng)
        post = z3.Function(name + "'", *[self.sorts[s] for s in dom], rng)
        self.symbols.append((name, pre, post))
        return StateSymbol(name, tuple(dom), None, pre, post)

    def relation(self, name: str, *sorts: str) -> StateSymbol:
        return self._decl(name, sorts, z3.BoolSort())

    def function(self, name: str, dom: Sequence[str], rng: str) -> StateSymbol:
        sym = self._decl(name, dom, self.sorts[rng])
        sym.rng = rng
        return sym

    def _vars(self, sorts: Sequence[str]) -> list[z3.ExprRef]:
        self._n += 1
        return [z3.Const(f"{s[0].upper()}{self._n}_{i}", self.sorts[s]) for i, s in enumerate(sorts)]

    def forall(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        xs = self._vars(sorts)
        return z3.ForAll(xs, body(*xs))

    def exists(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        xs = self._vars(sorts)
        return z3.Exists(xs, body(*xs))


@dataclass
class ProofSuite:
    """Named obligations of one encoding: axioms, init, actions, invariant and safety."""

    name: str
    vocab: SymbolicVocab
    axioms: list[Formula]
    init: Formula
    actions: dict[str, Formula]
    #: conjunct name -> (formula over the pre-state, the same over the post-state)
    invariant: dict[str, tuple[Formula, Formula]]
    safety: dict[str, Formula]


@dataclass
class Obligation:
    """One proof obligation's outcome."""

    name: str
    verdict: str  # "proved", "cti" (counterexample to induction), "unknown"
    seconds: float
    cti: str = ""


@dataclass
class ProofReport:
    """The outcome of a suite: every obligation, and whether all were proved."""

    suite: str
    obligations: list[Obligation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.obligations) and all(o.verdict == "proved" for o in self.obligations)

    @property
    def failed(self) -> list[Obligation]:
        return [o for o in self.obligations if o.verdict != "proved"]

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "ok": self.ok, "seconds": round(self.seconds, 3),
                "obligations": [{"name": o.name, "verdict": o.verdict,
                                 "seconds": round(o.seconds, 4), "cti": o.cti}
                                for o in self.obligations]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


def run_suite(suite: ProofSuite, *, progress: Callable[[Obligation], None] | None = None,
              timeout_ms: int = 30_000) -> ProofReport:
    """Check every obligation of ``suite``; ``progress`` is called after each one."""
    report = ProofReport(suite.name)
    t_all = time.perf_counter()
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    # EPR obligations are decided by model-based quantifier instantiation; E-matching only
    # adds useless instances (measured: it turns several seconds-long proofs into timeouts).
    solver.set("smt.ematching", False)
    solver.set("smt.mbqi", True)
    solver.add(*suite.axioms)
    inv_pre = [pre for pre, _post in suite.invariant.values()]

    def check(name: str, hyps: list[Formula], goal: Formula) -> None:
        t0 = time.perf_counter()
        solver.push()
        solver.add(*hyps)
        solver.add(z3.Not(goal))
        res = solver.check()
        cti = ""
        if res == z3.sat:
            cti = _show_model(suite.vocab, solver.model(), two_state=" => " in name)
        solver.pop()
        verdict = "proved" if res == z3.unsat else "cti" if res == z3.sat else "unknown"
        ob = Obligation(name, verdict, time.perf_counter() - t0, cti)
        report.obligations.append(ob)
        if progress:
            progress(ob)

    for cname, (pre, _post) in suite.invariant.items():
        check(f"init -> {cname}", [suite.init], pre)
    for aname, act in suite.actions.items():
        solver.push()
        solver.add(*inv_pre, act)
        for cname, (_pre, post) in suite.invariant.items():
            check(f"{aname} => {cname}", [], post)
        solver.pop()
    for pname, prop in suite.safety.items():
        check(f"inv -> {pname}", inv_pre, prop)
    report.seconds = time.perf_counter() - t_all
    return report


def _show_model(vocab: SymbolicVocab, m: z3.ModelRef, two_state: bool) -> str:
    """A counterexample in the encoding's names: each sort's elements, then each symbol's
    true tuples (relations) or graph (functions), pre-state and, if changed, post-state."""
    names: dict[str, str] = {}
    lines = []
    for sname, srt in vocab.sorts.items():
        univ = m.get_universe(srt) if isinstance(srt, z3.SortRef) and srt.kind() == \
            z3.Z3_UNINTERPRETED_SORT else None
        if univ is None:
            continue
        for i, e in enumerate(univ):
            names[str(e)] = f"{sname}{i}"
        lines.append(f"{sname}: {', '.join(names[str(e)] for e in univ)}")

    def show(e: z3.ExprRef) -> str:
        s = str(m.eval(e, model_completion=True))
        return names.get(s, s)

    def graph(f: z3.FuncDeclRef) -> list[str]:
        doms = [f.domain(i) for i in range(f.arity())]
        tuples: list[list[z3.ExprRef]] = [[]]
        for d in doms:
            elems = (m.get_universe(d) if d.kind() == z3.Z3_UNINTERPRETED_SORT
                     else [d.constructor(i)() for i in range(d.num_constructors())])
            tuples = [t + [e] for t in tuples for e in elems]
        out = []
        for t in tuples:
            val = m.eval(f(*t), model_completion=True)
            args = ", ".join(show(x) for x in t)
            if f.range() == z3.BoolSort():
                if z3.is_true(val):
                    out.append(f"{f.name()}({args})")
            else:
                out.append(f"{f.name()}({args}) = {show(val)}")
        return out

    for name, pre, post in vocab.symbols:
        g = graph(pre)
        lines.append(f"{name}: " + ("; ".join(g) if g else "{}"))
        if two_state and post is not None:
            g2 = graph(post)
            if g2 != [x.replace(f"{name}(", f"{name}'(", 1) for x in g]:
                lines.append(f"{name}': " + ("; ".join(g2) if g2 else "{}"))
    return "\n".join(lines)

"""Conformance: is the symbolic encoding the transition system the checker explores?

A proof about a different system than the explored one is worth nothing, so on a bounded
instance this module checks, both ways, that an encoding (``prove.Encoding``) and an explicit
model (``model.Model``) agree:

* **initial states**: the solutions of the encoding's ``init`` (enumerated by Z3 over the
  bounded sorts) are exactly the projections of the model's initial states;
* **steps**, for every reachable state ``s`` (or the first ``max_states`` in BFS order) and
  every action: (a) every explicit successor, projected, is a solution of the action's formula
  from the projected ``s``, and changes only the symbols the action declares it modifies;
  (b) every solution of the formula (enumerated with blocking clauses) is the projection of an
  explicit successor.

The encoding runs against :class:`BoundedVocab`: sorts are ``0..k-1``, rigid symbols are
given by a :class:`Universe`, the pre-state is the projected explicit state (so almost all of a
formula folds to Python booleans while it is built), and only the post-state of the modified
symbols is made of Z3 variables. This module knows nothing of any particular model.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from .model import Model
from .prove import Encoding, Formula, StateSymbol, Term, Vocab

#: A state in an encoding's vocabulary: per symbol, the set of true tuples (relation) or the
#: graph ``{args: value}`` (function). Elements are ints ``0..k-1`` of their sort.
Valuation = Mapping[str, Any]


@dataclass
class Universe:
    """A bounded interpretation: sort sizes, constants, rigid relations (true tuples)."""

    sizes: dict[str, int]
    consts: dict[str, int] = field(default_factory=dict)
    rigid: dict[str, set[tuple[int, ...]]] = field(default_factory=dict)


class BoundedVocab(Vocab):
    """Finite sorts; quantifiers expanded; a concrete pre-state; a Z3 variable per tuple of
    the post-state. With ``pre = None`` the pre-state is made of variables too (for init)."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self.sizes = dict(universe.sizes)
        self.symbols: dict[str, StateSymbol] = {}
        self.pre: Valuation | None = None
        self._vars: dict[tuple[str, tuple[int, ...]], Any] = {}
        self._solver = z3.Solver()
        self._neg: dict[int, Any] = {}

    # -- declarations ----------------------------------------------------------------------

    def sort(self, name: str) -> str:
        if name not in self.sizes:
            raise ValueError(f"conformance: no size given for sort {name!r}")
        return name

    def enum(self, name: str, members: Sequence[str]) -> list[Term]:
        self.sizes[name] = len(members)
        return list(range(len(members)))

    def const(self, name: str, sort: str) -> Term:
        return self.universe.consts[name]

    def rigid(self, name: str, *sorts: str) -> Callable[..., Formula]:
        table = self.universe.rigid[name]
        return lambda *args: self._lookup(table, sorts, args)

    def _symbol(self, name: str, dom: Sequence[str], rng: str | None) -> StateSymbol:
        sym = StateSymbol(name, tuple(dom), rng, lambda *a: self._pre(sym, a),
                          lambda *a: self._post(sym, a))
        self.symbols[name] = sym
        return sym

    def relation(self, name: str, *sorts: str) -> StateSymbol:
        return self._symbol(name, sorts, None)

    def function(self, name: str, dom: Sequence[str], rng: str) -> StateSymbol:
        return self._symbol(name, dom, rng)

    # -- quantifiers and connectives (folding Python values) --------------------------------

    def tuples(self, sorts: Sequence[str]) -> Iterable[tuple[int, ...]]:
        """Every tuple of elements of ``sorts``."""
        return itertools.product(*[range(self.sizes[s]) for s in sorts])

    def forall(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        parts = []
        for t in self.tuples(sorts):
            f = body(*t)
            if f is False:
                return False
            if f is not True:
                parts.append(f)
        return self.And(*parts)

    def exists(self, sorts: Sequence[str], body: Callable[..., Formula]) -> Formula:
        parts = []
        for t in self.tuples(sorts):
            f = body(*t)
            if f is True:
                return True
            if f is not False:
                parts.append(f)
        return self.Or(*parts)

    def And(self, *fs: Formula) -> Formula:
        rest = []
        for f in fs:
            if f is False:
                return False
            if f is not True:
                rest.append(f)
        return True if not rest else rest[0] if len(rest) == 1 else _fast(z3.Z3_mk_and, rest)

    def Or(self, *fs: Formula) -> Formula:
        rest = []
        for f in fs:
            if f is True:
                return True
            if f is not False:
                rest.append(f)
        return False if not rest else rest[0] if len(rest) == 1 else _fast(z3.Z3_mk_or, rest)

    def Not(self, f: Formula) -> Formula:
        return (not f) if isinstance(f, bool) else z3.Not(f)

    def Implies(self, a: Formula, b: Formula) -> Formula:
        return self.Or(self.Not(a), b)

    def eq(self, a: Term, b: Term) -> Formula:
        if isinstance(a, (bool, int)) and isinstance(b, (bool, int)):
            return a == b
        return _z3(a) == _z3(b)

    def If(self, c: Formula, a: Term, b: Term) -> Term:
        if isinstance(c, bool):
            return a if c else b
        return z3.If(c, _z3(a), _z3(b))

    def when(self, guard: Formula, then: Callable[[], Formula]) -> Formula:
        if guard is False:
            return False
        return self.And(guard, then())

    def define(self, sym: StateSymbol, body: Callable[..., Any]) -> Formula:
        # The common case, a body that folds to a constant, becomes a literal (much cheaper
        # to build than ``var == True``).
        parts = []
        for t in self.tuples(sym.dom):
            val = body(*t)
            var = self.var(sym, t)
            if sym.rng is None and isinstance(val, bool):
                parts.append(var if val else self._negated(var))
            else:
                parts.append(self.eq(var, val))
        return self.And(*parts)

    def _negated(self, var: Any) -> Any:
        neg = self._neg.get(var.get_id())
        if neg is None:
            neg = self._neg[var.get_id()] = z3.Not(var)
        return neg

    # -- state symbols ---------------------------------------------------------------------

    def var(self, sym: StateSymbol, args: tuple[int, ...]) -> Any:
        """The Z3 variable for ``sym(args)`` in the post-state (and, for init, the pre)."""
        key = (sym.name, args)
        v = self._vars.get(key)
        if v is None:
            label = f"{sym.name}({','.join(map(str, args))})"
            v = z3.Bool(label) if sym.rng is None else z3.Int(label)
            self._vars[key] = v
        return v

    def _lookup(self, table: Any, sorts: Sequence[str], args: tuple[Any, ...]) -> Formula:
        if _concrete(args):
            return args in table
        return self.Or(*[self.And(*[self.eq(a, x) for a, x in zip(args, t)])
                         for t in self.tuples(sorts) if t in table])

    def _pre(self, sym: StateSymbol, args: tuple[Any, ...]) -> Any:
        if self.pre is None:
            return self._post(sym, args)
        val = self.pre[sym.name]
        if _concrete(args):
            return args in val if sym.rng is None else val[args]
        if sym.rng is None:
            return self._lookup(val, sym.dom, args)
        return self._cases(sym, args, lambda t: val[t])

    def _post(self, sym: StateSymbol, args: tuple[Any, ...]) -> Any:
        if _concrete(args):
            return self.var(sym, args)
        if sym.rng is None:
            return self.Or(*[self.And(*[self.eq(a, x) for a, x in zip(args, t)], self.var(sym, t))
                             for t in self.tuples(sym.dom)])
        return self._cases(sym, args, lambda t: self.var(sym, t))

    def _cases(self, sym: StateSymbol, args: tuple[Any, ...], value: Callable[[Any], Any]) -> Any:
        out: Any = 0
        for t in self.tuples(sym.dom):
            out = self.If(self.And(*[self.eq(a, x) for a, x in zip(args, t)]), value(t), out)
        return out

    def solutions(self, formula: Formula, symbols: Sequence[StateSymbol], limit: int
                  ) -> list[dict[str, Any]]:
        """Every assignment of ``symbols`` (as valuations) satisfying ``formula``, by
        enumeration with blocking clauses; at most ``limit``."""
        if formula is False:
            return []
        cells = [(sym, t, self.var(sym, t)) for sym in symbols for t in self.tuples(sym.dom)]
        solver = self._solver
        solver.push()
        try:
            if formula is not True:
                solver.add(formula)
            for sym, _t, v in cells:
                if sym.rng is not None:
                    solver.add(v >= 0, v < self.sizes[sym.rng])
            out: list[dict[str, Any]] = []
            while len(out) < limit and solver.check() == z3.sat:
                # Read the model through its declarations (cells it leaves out are
                # unconstrained: they take the default, False or 0, like model completion).
                model = solver.model()
                assigned = {d.name(): model.get_interp(d) for d in model.decls()}
                val: dict[str, Any] = {sym.name: set() if sym.rng is None else {}
                                       for sym in symbols}
                block = []
                for sym, t, v in cells:
                    x = assigned.get(str(v))
                    if sym.rng is None:
                        if x is not None and z3.is_true(x):
                            val[sym.name].add(t)
                            block.append(self._negated(v))
                        else:
                            block.append(v)
                    else:
                        n = x.as_long() if x is not None else 0
                        val[sym.name][t] = n
                        block.append(v != n)
                out.append(val)
                if not block:
                    break
                solver.add(_fast(z3.Z3_mk_or, block) if len(block) > 1 else block[0])
        finally:
            solver.pop()
        return out


def _fast(mk: Callable[..., Any], fs: list[Any]) -> Any:
    """``z3.And``/``z3.Or`` of Boolean expressions without z3.py's per-argument coercions."""
    ctx = fs[0].ctx
    arr = (z3.Ast * len(fs))()
    for i, f in enumerate(fs):
        arr[i] = f.as_ast()
    return z3.BoolRef(mk(ctx.ref(), len(fs), arr), ctx)


def _concrete(args: tuple[Any, ...]) -> bool:
    for a in args:
        if type(a) is not int:
            return False
    return True


def _z3(x: Any) -> Any:
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if isinstance(x, int):
        return z3.IntVal(x)
    return x


# -- the check --------------------------------------------------------------------------------

@dataclass
class Mismatch:
    """One disagreement between the encoding and the model."""

    kind: str  # "init", "explicit-not-symbolic" (a), "symbolic-not-explicit" (b), "frame"
    action: str
    state: str  # the explicit pre-state, readable
    detail: str


@dataclass
class ConformanceReport:
    """The outcome of a conformance check."""

    model: str
    states: int = 0  # explicit states whose successors were compared
    exhaustive: bool = True  # every reachable state was compared
    steps: int = 0  # explicit (state, successor) pairs compared
    solutions: int = 0  # symbolic solutions enumerated
    mismatches: list[Mismatch] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)  # per action, explicit steps
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No mismatch (and at least one state compared)."""
        return not self.mismatches and self.states > 0

    @property
    def summary(self) -> str:
        """``holds`` or ``fails`` (the first word ``wormspace report`` reads), then counts."""
        verdict = "holds" if self.ok else "fails"
        return verdict

    @property
    def detail(self) -> str:
        """The counts behind the verdict, in one line."""
        scope = "all reachable" if self.exhaustive else "the first (BFS)"
        line = (f"{self.model}: {scope} {self.states:,} states, {self.steps:,} steps, "
                f"{self.solutions:,} symbolic solutions, {self.seconds:.1f} s")
        if self.mismatches:
            m = self.mismatches[0]
            line += f"; {len(self.mismatches)} mismatch(es), first: {m.kind} in {m.action}: {m.detail}"
        return line

    def to_json(self) -> dict[str, Any]:
        """The report as plain data."""
        return {"summary": self.summary, "detail": self.detail, "ok": self.ok,
                "model": self.model, "states": self.states, "exhaustive": self.exhaustive,
                "steps": self.steps, "solutions": self.solutions, "actions": self.actions,
                "seconds": round(self.seconds, 3),
                "mismatches": [vars(m) for m in self.mismatches]}


def check_conformance(model: Model[Any], build: Callable[[Vocab], Encoding], universe: Universe,
                      project: Callable[[Any], Valuation], *, max_states: int | None = None,
                      max_mismatches: int = 5) -> ConformanceReport:
    """Compare ``model`` with the encoding ``build(vocab)`` on ``universe`` (see the module
    docstring). ``project`` maps an explicit state into the encoding's vocabulary. The
    encoding's actions must carry the model's action names."""
    t0 = time.perf_counter()
    vocab = BoundedVocab(universe)
    enc = build(vocab)
    report = ConformanceReport(f"{model.name}({_params(model)})")
    builders = enc.transitions()
    explicit = {a.name: a for a in model.actions()}

    def show(s: Any) -> str:
        return ", ".join(f"{k}={v}" for k, v in model.variables(s).items())

    def fail(kind: str, action: str, s: Any, detail: str) -> None:
        report.mismatches.append(Mismatch(kind, action, "" if s is None else show(s), detail))

    for name in sorted(set(builders) ^ set(explicit)):
        side = "the model" if name in explicit else "the encoding"
        fail("actions", name, None, f"only {side} has action {name}")

    # Initial states.
    inits = list(model.init_states())
    vocab.pre = None
    want = {_key(project(s), enc.state) for s in inits}
    got = {_key(v, enc.state) for v in vocab.solutions(enc.init(), enc.state, len(want) + 5)}
    for k in want - got:
        fail("init", "init", None, f"explicit initial state not allowed by init: {_show(k)}")
    for k in got - want:
        fail("init", "init", None, f"init allows a state the model does not start in: {_show(k)}")

    # Steps, breadth-first over the reachable states.
    seen: set[Hashable] = set(inits)
    queue = deque(inits)
    while queue and len(report.mismatches) < max_mismatches:
        if max_states is not None and report.states >= max_states:
            report.exhaustive = False
            break
        s = queue.popleft()
        report.states += 1
        pre = project(s)
        vocab.pre = pre
        for name in sorted(set(builders) & set(explicit)):
            tr = builders[name]()
            mod = [enc_sym for enc_sym in enc.state if enc_sym.name in tr.modifies]
            succ = explicit[name].successors(s)
            want_keys: dict[Any, Any] = {}
            for _step_params, t in succ:
                report.steps += 1
                report.actions[name] = report.actions.get(name, 0) + 1
                pt = project(t)
                changed = [x.name for x in enc.state if x.name not in tr.modifies
                           and _canon(pt[x.name]) != _canon(pre[x.name])]
                if changed:
                    fail("frame", name, s, f"the model changes {', '.join(changed)}, which the "
                         "encoding's action does not modify")
                want_keys.setdefault(_key(pt, mod), t)
                if t not in seen:
                    seen.add(t)
                    queue.append(t)
            sols = vocab.solutions(tr.formula, mod, len(want_keys) + 3)
            report.solutions += len(sols)
            got_keys = {_key(v, mod) for v in sols}
            for k in want_keys.keys() - got_keys:
                fail("explicit-not-symbolic", name, s, "the formula does not allow the model's "
                     f"step to {_diff(pre, k)}")
            for k in got_keys - want_keys.keys():
                fail("symbolic-not-explicit", name, s, "the formula allows a step the model "
                     f"does not take, to {_diff(pre, k)}")
    if queue and len(report.mismatches) >= max_mismatches:
        report.exhaustive = False
    report.seconds = time.perf_counter() - t0
    return report


def _params(model: Model[Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in model.params.items())


def _canon(val: Any) -> Any:
    if isinstance(val, dict):
        return tuple(sorted(val.items()))
    return frozenset(val)


def _key(val: Valuation, symbols: Sequence[StateSymbol]) -> tuple[tuple[str, Any], ...]:
    return tuple((s.name, _canon(val[s.name])) for s in symbols)


def _show(key: tuple[tuple[str, Any], ...]) -> str:
    return "; ".join(f"{name}={sorted(v)}" for name, v in key)


def _diff(pre: Valuation, key: tuple[tuple[str, Any], ...]) -> str:
    """A post-state (restricted to modified symbols) as its difference from the pre-state."""
    parts = []
    for name, v in key:
        old = _canon(pre[name])
        if v == old:
            continue
        if isinstance(v, frozenset):
            add, rem = sorted(v - old), sorted(old - v)
            parts.append(f"{name}" + (f" +{add}" if add else "") + (f" -{rem}" if rem else ""))
        else:
            parts.append(f"{name}: " + ", ".join(f"{k}={x}" for k, x in v if (k, x) not in old))
    return "; ".join(parts) if parts else "no change"

"""Liveness checking as TLC does it: temporal properties under weak and strong fairness.

Properties, over state predicates ``P`` and ``Q``:

* :func:`eventually` ``<>P``: every behaviour reaches a ``P`` state;
* :func:`leads_to` ``P ~> Q``: after every ``P`` state, a ``Q`` state (possibly the same one);
* :func:`always_eventually` ``[]<>P``: ``P`` holds infinitely often.

Fairness, per action (:func:`weak`, :func:`strong`), either for the action as a whole or, with
``per_params=True``, separately for each parameter value (TLA+'s
``\\A rm: WF_vars(RMRcvCommitMsg(rm))``). An action *instance* is ``(action name, params)``.

A model declares its own with two optional methods, read with ``getattr`` (they are not on the
base class): ``properties() -> Sequence[Property]`` and ``fairness() -> Sequence[Fairness]``.

The method, for each property: build the reachable state graph (``liveness_graph.py``), take
the states where the property's suffix is violated (``~P`` states for ``<>P`` and ``[]<>P``,
``~Q`` states after a ``P /\\ ~Q`` state for ``P ~> Q``), split them into strongly connected
components and keep a component if a cycle through all of it is fair: every weakly fair action
is taken inside it or disabled somewhere in it; a strongly fair action that is enabled somewhere
in it but never taken inside it rules out the states where it is enabled, and the rest is split
again. A surviving component, reached by a shortest prefix, gives a lasso counterexample.

Stuttering: a TLA+ behaviour may stop changing at any state (``[][Next]_vars``), so every state
has an implicit stuttering self-loop that is no action. Without fairness, ``<>P`` is violated by
any reachable ``~P`` state at which the behaviour stops; TLC reports those lassos as ending in
``Stuttering``, and so do we. A model's own step from a state to itself is a stutter too.

Symmetry is refused: a per-parameter fairness condition names one RM, and a lasso through orbit
representatives may switch RMs at every step, so violations can be missed (TLC only warns).
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .liveness_graph import StateGraph, build_graph, replay, strongly_connected
from .model import Model, ModelError
from .result import LIVENESS, CheckResult, TraceStep

EVENTUALLY, LEADS_TO, ALWAYS_EVENTUALLY = "eventually", "leads_to", "always_eventually"
WEAK, STRONG = "WF", "SF"

#: Refuse graphs larger than this by default (the graph lives in memory: ~40 bytes a state
#: plus 16 bytes an edge, with Python's dict overhead on top).
MAX_STATES = 2_000_000

StatePredicate = Callable[[Any], bool]


@dataclass(frozen=True)
class Property:
    """A temporal property over state predicates (build it with the functions below)."""

    name: str
    kind: str
    p: StatePredicate
    q: StatePredicate | None = None
    #: How to show the formula, e.g. ``"<>(AllDecided)"``; a generic form by default.
    text: str = ""

    def formula(self) -> str:
        """The property as a TLA+-like formula, for output."""
        if self.text:
            return self.text
        return {EVENTUALLY: "<>P", LEADS_TO: "P ~> Q", ALWAYS_EVENTUALLY: "[]<>P"}[self.kind]


def eventually(name: str, p: StatePredicate, *, text: str = "") -> Property:
    """``<>P``: every fair behaviour reaches a state satisfying ``p``."""
    return Property(name, EVENTUALLY, p, None, text)


def leads_to(name: str, p: StatePredicate, q: StatePredicate, *, text: str = "") -> Property:
    """``P ~> Q``: in every fair behaviour, each ``p`` state is followed by a ``q`` state."""
    return Property(name, LEADS_TO, p, q, text)


def always_eventually(name: str, p: StatePredicate, *, text: str = "") -> Property:
    """``[]<>P``: in every fair behaviour, ``p`` holds infinitely often."""
    return Property(name, ALWAYS_EVENTUALLY, p, None, text)


@dataclass(frozen=True)
class Fairness:
    """A fairness assumption on one action (``kind`` is ``"WF"`` or ``"SF"``)."""

    kind: str
    action: str
    #: One condition per parameter value (``\\A rm: WF(A(rm))``) rather than one for ``A``.
    per_params: bool = True
    #: Only the instances whose parameters satisfy ``where`` are fair (e.g. only the acceptors
    #: of a live majority); ``where_text`` says which, in output.
    where: Callable[[tuple[Any, ...]], bool] | None = field(default=None, compare=False)
    where_text: str = ""

    def describe(self, param_names: Sequence[str] = ()) -> str:
        """TLA+-like: ``WF_vars(A)``, or ``\\A rm: WF_vars(A(rm))`` per parameter value."""
        only = f" for {self.where_text}" if self.where_text else ""
        if self.per_params and param_names:
            names = ", ".join(param_names)
            return f"\\A {names}: {self.kind}_vars({self.action}({names})){only}"
        return f"{self.kind}_vars({self.action}){only}"


def weak(action: str, per_params: bool = True, *,
         where: Callable[[tuple[Any, ...]], bool] | None = None, where_text: str = "") -> Fairness:
    """Weak fairness: ``action`` may not stay enabled forever without being taken.

    With ``where``, only the instances whose parameters satisfy it are fair.
    """
    return Fairness(WEAK, action, per_params, where, where_text)


def strong(action: str, per_params: bool = True, *,
           where: Callable[[tuple[Any, ...]], bool] | None = None, where_text: str = "") -> Fairness:
    """Strong fairness: ``action`` may not be enabled infinitely often without being taken."""
    return Fairness(STRONG, action, per_params, where, where_text)


@dataclass
class LivenessResult(CheckResult):
    """A :class:`CheckResult` with the lasso's shape and what was checked.

    ``trace`` holds the prefix and then the cycle; the behaviour continues from its last state
    back to ``trace[loop]`` by ``loop_label`` (an action, or ``"Stuttering"`` when the cycle is
    the last state stuttering forever).
    """

    properties: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)
    fairness: list[str] = field(default_factory=list)
    formula: str = ""
    loop: int | None = None
    loop_label: str = ""
    loop_action: str | None = None
    loop_params: dict[str, Any] = field(default_factory=dict)
    #: ``P ~> Q`` only: the index in ``trace`` of the ``P`` state never followed by ``Q``.
    trigger: int | None = None
    edges: int = 0


def model_properties(model: Model[Any]) -> list[Property]:
    """The model's ``properties()``, or none."""
    return _optional(model, "properties")


def model_fairness(model: Model[Any]) -> list[Fairness]:
    """The model's ``fairness()``, or none."""
    return _optional(model, "fairness")


def _optional(model: Model[Any], method: str) -> list[Any]:
    fn = getattr(model, method, None)
    if not callable(fn):
        return []
    try:
        return list(fn())
    except Exception as exc:
        raise ModelError(f"model {model.name!r}: {method}() raised {type(exc).__name__}: "
                         f"{exc}") from exc


def check_liveness(
    model: Model[Any],
    properties: Sequence[Property] | None = None,
    fairness: Sequence[Fairness] | None = None,
    *,
    max_states: int = MAX_STATES,
    symmetry: bool = False,
) -> LivenessResult:
    """Check temporal ``properties`` of ``model`` under ``fairness`` (the model's own when
    ``None``); stop at the first violated property, with a lasso counterexample.

    Raises :class:`ModelError` for a bad model, an unknown fair action, duplicate property names,
    ``symmetry=True``, or a graph over ``max_states`` states.
    """
    if symmetry:
        raise ModelError("liveness checking does not use symmetry: a lasso through orbit "
                         "representatives can miss violations (TLC warns of this); drop "
                         "--symmetry for temporal properties")
    props = model_properties(model) if properties is None else list(properties)
    fair = model_fairness(model) if fairness is None else list(fairness)
    names = [p.name for p in props]
    if len(set(names)) != len(names):
        raise ModelError(f"model {model.name!r}: duplicate property names in {names}")
    param_names = {a.name: a.param_names for a in model.actions()}
    action_names = list(param_names)
    for f in fair:
        if f.action not in action_names:
            raise ModelError(f"model {model.name!r}: fairness on unknown action {f.action!r} "
                             f"(actions: {', '.join(action_names)})")
        if f.kind not in (WEAK, STRONG):
            raise ModelError(f"fairness kind must be WF or SF, not {f.kind!r}")
    preds: list[StatePredicate] = []
    pred_names: list[str] = []
    for p in props:
        preds.append(p.p)
        pred_names.append(f"{p.name} (P)")
        if p.kind == LEADS_TO:
            if p.q is None:
                raise ModelError(f"property {p.name}: leads_to needs a Q")
            preds.append(p.q)
            pred_names.append(f"{p.name} (Q)")

    t0 = time.perf_counter()
    g = build_graph(model, preds, pred_names, max_states=max_states)
    res = LivenessResult(model=model.name, params=dict(model.params), mode="liveness",
                         distinct=g.size, generated=g.generated, depth=g.depth, levels=g.levels,
                         coverage=g.coverage, properties=names, edges=len(g.dst),
                         fairness=[f.describe(param_names[f.action]) for f in fair])
    conds = _Conditions(g, fair)
    bit = 0
    for p in props:
        p_bit = 1 << bit
        q_bit = 1 << (bit + 1) if p.kind == LEADS_TO else 0
        bit += 2 if p.kind == LEADS_TO else 1
        lasso = _search(g, conds, p.kind, p_bit, q_bit)
        if lasso is None:
            res.holds.append(p.name)
            continue
        _fill_counterexample(res, model, g, p, lasso)
        break
    res.seconds = time.perf_counter() - t0
    return res


class _Conditions:
    """The fairness conditions, as ids: which conditions each action instance belongs to."""

    def __init__(self, g: StateGraph, fair: Sequence[Fairness]) -> None:
        self.strong: list[bool] = []
        self.labels: list[str] = []
        self.of_inst: list[tuple[int, ...]] = [() for _ in g.instances]
        index = {a.name: i for i, a in enumerate(g.actions)}
        for f in fair:
            ai = index[f.action]
            by_params: dict[Any, int] = {}
            for k, (a, params) in enumerate(g.instances):
                if a != ai or (f.where is not None and not f.where(params)):
                    continue
                key = params if f.per_params else ()
                c = by_params.get(key)
                if c is None:
                    c = by_params[key] = len(self.labels)
                    self.strong.append(f.kind == STRONG)
                    shown = g.actions[ai].describe(params) if f.per_params else f.action
                    self.labels.append(f"{f.kind}_vars({shown})")
                self.of_inst[k] += (c,)

    def enabled(self, g: StateGraph, u: int) -> set[int]:
        """The conditions enabled at ``u`` (some instance has a non-stuttering step)."""
        out: set[int] = set()
        of_inst = self.of_inst
        for _v, k in g.out(u):
            out.update(of_inst[k])
        return out


@dataclass
class _Lasso:
    path: list[int]  # the prefix, then the cycle (state ids); the cycle returns to path[loop]
    steps: list[int]  # steps[i]: the instance of path[i] -> path[i+1]
    loop: int
    closing: int | None  # the instance from path[-1] back to path[loop]; None: stuttering
    trigger: int | None  # P ~> Q: the index of the P state that Q never follows


def _search(g: StateGraph, conds: _Conditions, kind: str, p_bit: int,
            q_bit: int) -> _Lasso | None:
    """A fair lasso violating the property, or ``None`` when it holds."""
    marks = g.marks
    # A violating behaviour: a prefix, then a "trigger" state from which every state is "bad".
    if kind == LEADS_TO:
        bad = [not m & q_bit for m in marks]
        trigger = [bool(m & p_bit) and not m & q_bit for m in marks]
    else:
        bad = [not m & p_bit for m in marks]
        trigger = bad
    # BFS over (state, phase): phase 0 before the trigger, phase 1 from it on (bad states only).
    # For <>P the whole behaviour must be bad, so it starts in phase 1. Key: 2 * state + phase.
    n = g.size
    parent = array("q", [-1]) * (2 * n)
    via = array("q", [-1]) * (2 * n)
    dist = array("q", [-1]) * (2 * n)
    queue: deque[int] = deque()

    def reach(key: int, d: int, par: int, k: int) -> None:
        if dist[key] < 0:
            dist[key], parent[key], via[key] = d, par, k
            queue.append(key)

    for u in g.init:
        if kind != EVENTUALLY:
            reach(2 * u, 0, -1, -1)
        if trigger[u]:
            reach(2 * u + 1, 0, -1, -1)
    while queue:
        key = queue.popleft()
        u, phase = divmod(key, 2)
        for v, k in g.out(u):
            if phase == 0:
                reach(2 * v, dist[key] + 1, key, k)
                if trigger[v]:
                    reach(2 * v + 1, dist[key] + 1, key, k)
            elif bad[v]:
                reach(2 * v + 1, dist[key] + 1, key, k)
    region = {u for u in range(n) if dist[2 * u + 1] >= 0}
    comps = _fair_components(g, conds, region)
    if not comps:
        return None
    # The fair component closest to an initial state gives the shortest prefix.
    entry, comp = min(((u, c) for c in comps for u in c), key=lambda uc: dist[2 * uc[0] + 1])
    keys: list[int] = []
    key = 2 * entry + 1
    while key >= 0:
        keys.append(key)
        key = parent[key]
    keys.reverse()
    path = [k // 2 for k in keys]
    steps = [via[k] for k in keys[1:]]
    trig = next(i for i, k in enumerate(keys) if k % 2) if kind == LEADS_TO else None
    cyc_path, cyc_steps = _fair_cycle(g, conds, set(comp), entry)
    if not cyc_steps:
        return _Lasso(path, steps, len(path) - 1, None, trig)
    return _Lasso(path + cyc_path[1:-1], steps + cyc_steps[:-1], len(path) - 1, cyc_steps[-1],
                  trig)


def _fair_components(g: StateGraph, conds: _Conditions, region: set[int]) -> list[list[int]]:
    """The components of ``region`` through which a fair cycle runs (every state has an
    implicit stuttering loop, so each lone state is a cycle too)."""

    def scc(nodes: set[int]) -> list[list[int]]:
        return strongly_connected(nodes, lambda u: (v for v, _k in g.out(u) if v in nodes))

    fair: list[list[int]] = []
    work = scc(region)
    while work:
        comp = work.pop()
        members = set(comp)
        taken: set[int] = set()
        enabled_at: dict[int, set[int]] = {}
        count: dict[int, int] = {}
        for u in comp:
            en = enabled_at[u] = conds.enabled(g, u)
            for c in en:
                count[c] = count.get(c, 0) + 1
            for v, k in g.out(u):
                if v in members:
                    taken.update(conds.of_inst[k])
        # WF: enabled at every state and taken nowhere: no cycle inside is fair.
        if any(not conds.strong[c] and c not in taken and count[c] == len(comp) for c in count):
            continue
        # SF: enabled somewhere, taken nowhere: no fair cycle may visit where it is enabled.
        unfair = {c for c in count if conds.strong[c] and c not in taken}
        if unfair:
            rest = {u for u in comp if not enabled_at[u] & unfair}
            work.extend(scc(rest))
            continue
        fair.append(comp)
    return fair


def _fair_cycle(g: StateGraph, conds: _Conditions, comp: set[int],
                entry: int) -> tuple[list[int], list[int]]:
    """A closed walk from ``entry`` inside the fair component ``comp`` that satisfies every
    fairness condition, as (states, instances); ``([entry], [])`` when stuttering at ``entry``
    forever already does."""
    path, steps = [entry], []
    taken: set[int] = set()
    enabled_seen: set[int] = set()
    disabled_seen: set[int] = set()
    every = frozenset(range(len(conds.labels)))

    def visit(u: int) -> None:
        en = conds.enabled(g, u)
        enabled_seen.update(en)
        disabled_seen.update(every - en)

    def unsatisfied() -> set[int]:
        # WF: taken, or disabled at some state of the cycle; SF: taken, or never enabled on it.
        return {c for c in enabled_seen - taken if conds.strong[c] or c not in disabled_seen}

    def fix(u: int) -> int | None:
        """At ``u``: an instance to take that satisfies a condition, -1 if being at ``u``
        satisfies one (a WF action disabled there), or ``None``."""
        todo = unsatisfied()
        for v, k in g.out(u):
            if v in comp and not todo.isdisjoint(conds.of_inst[k]):
                return k
        en = conds.enabled(g, u)
        return -1 if any(not conds.strong[c] and c not in en for c in todo) else None

    def walk_to(goal: Callable[[int], int | None]) -> None:
        """Extend the walk, inside ``comp``, to the nearest state where ``goal`` is not None,
        and take the instance it names there, if any."""
        start = path[-1]
        prev: dict[int, tuple[int, int]] = {start: (-1, -1)}
        queue = deque([start])
        while queue:
            u = queue.popleft()
            action = goal(u)
            if action is None:
                for v, k in g.out(u):
                    if v in comp and v not in prev:
                        prev[v] = (u, k)
                        queue.append(v)
                continue
            hops: list[tuple[int, int]] = []
            while u != start:
                hops.append((u, prev[u][1]))
                u = prev[u][0]
            for w, k in reversed(hops):
                path.append(w)
                steps.append(k)
                visit(w)
            if action >= 0:
                path.append(next(v for v, k in g.out(path[-1]) if k == action and v in comp))
                steps.append(action)
                taken.update(conds.of_inst[action])
                visit(path[-1])
            return
        # _fair_components keeps only components where every condition has a witness.
        raise AssertionError("no fairness witness in a fair component")

    visit(entry)
    # Each round satisfies at least one condition for good (an instance taken, or a WF action
    # seen disabled); returning to the entry may enable SF actions not yet taken, hence the loop.
    while True:
        while unsatisfied():
            walk_to(fix)
        if not steps or path[-1] == entry:
            return path, steps
        walk_to(lambda u: -1 if u == entry else None)
        if not unsatisfied():
            return path, steps


def _fill_counterexample(res: LivenessResult, model: Model[Any], g: StateGraph, p: Property,
                         lasso: _Lasso) -> None:
    """Replay the lasso through the model into ``res.trace`` and set the verdict."""
    path, steps = lasso.path, lasso.steps
    if lasso.closing is not None:
        # Replaying the closing step too checks that the cycle really closes.
        path, steps = path + [path[lasso.loop]], steps + [lasso.closing]
    states = replay(model, g, path, steps)
    trace = [TraceStep(None, {}, "Initial predicate", states[0], dict(model.variables(states[0])))]
    for st, k in zip(states[1 : len(lasso.path)], lasso.steps):
        ai, params = g.instances[k]
        a = g.actions[ai]
        trace.append(TraceStep(a.name, a.params_dict(params), a.describe(params), st,
                               dict(model.variables(st))))
    res.trace = trace
    res.result = LIVENESS
    res.violated = p.name
    res.formula = p.formula()
    res.loop = lasso.loop
    res.trigger = lasso.trigger
    if lasso.closing is None:
        res.loop_label = "Stuttering"
    else:
        ai, params = g.instances[lasso.closing]
        res.loop_action = g.actions[ai].name
        res.loop_params = g.actions[ai].params_dict(params)
        res.loop_label = g.actions[ai].describe(params)
    res.message = f"Temporal property {p.name} ({res.formula}) is violated."

"""The reachable state graph that liveness checking searches, and its strongly connected parts.

Safety checking (``explore.py``) forgets a state's edges once it is expanded; liveness needs them
all, because a counterexample is a cycle. The graph is kept compact:

* states get integer ids in BFS discovery order, and only their 64-bit fingerprints are kept
  (plus one small bitmask per state: which of the properties' state predicates hold there);
  traces are rebuilt by replaying the model along the ids, as ``explore.py`` does;
* edges are stored in compressed-sparse-row form: the out-edges of state ``u`` are positions
  ``start[u] .. start[u+1]-1`` of two flat integer arrays, ``dst`` and ``inst``; ``inst`` indexes
  the table of *action instances* ``(action index, params)``, so an edge costs two machine
  words, and enabledness of an instance is read off a state's out-edges;
* a step from a state back to itself is not stored: in TLA+ it is a stuttering step, which
  neither enables nor takes an action for fairness (``WF_vars(A)`` is about ``<<A>>_vars``).

Counting follows ``explore.py`` (and TLC): *generated* is initial states plus every successor
computed; *depth* counts the initial states as level 1.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fingerprint import UnstableStateError, validate_state
from .model import Action, Model, ModelError, Params

#: How many of the first distinct states are validated for fingerprint stability.
VALIDATE_FIRST = 2000


@dataclass
class StateGraph:
    """The reachable states (ids ``0..n-1``) and their labelled edges, in CSR form."""

    actions: Sequence[Action[Any]]
    fps: array[int]  # the fingerprint of each state id
    marks: list[int]  # bit i set: predicate i holds in the state
    init: list[int]
    start: array[int]  # the out-edges of u are start[u] .. start[u+1]-1
    dst: array[int]
    inst: array[int]  # an index into ``instances``
    instances: list[tuple[int, Params]]
    generated: int = 0
    depth: int = 0
    levels: list[int] = field(default_factory=list)
    coverage: dict[str, list[int]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The number of distinct states."""
        return len(self.fps)

    def out(self, u: int) -> Iterable[tuple[int, int]]:
        """The edges out of ``u``, as ``(dst, instance)`` pairs (self-loops excluded)."""
        dst, inst = self.dst, self.inst
        return ((dst[k], inst[k]) for k in range(self.start[u], self.start[u + 1]))

    def describe(self, instance: int) -> str:
        """``Action(p=v)`` for an action instance."""
        ai, params = self.instances[instance]
        return self.actions[ai].describe(params)


def build_graph(
    model: Model[Any], predicates: Sequence[Callable[[Any], bool]], predicate_names: Sequence[str],
    *, max_states: int,
) -> StateGraph:
    """Explore ``model`` breadth-first and keep every state's fingerprint, marks and edges.

    ``predicates[i]`` is evaluated once per distinct state and recorded as bit ``i`` of its mark
    (``predicate_names[i]`` names it in errors). Raises :class:`ModelError` if the model
    misbehaves or has more than ``max_states`` states.
    """
    actions = list(model.actions())
    succ_fns = [a.successors for a in actions]
    bounded = model.has_bounds()
    within = model.within_bounds
    g = StateGraph(actions, array("q"), [], [], array("q"), array("q"), array("q"), [])
    ids: dict[int, int] = {}
    inst_ids: dict[tuple[int, Params], int] = {}
    cov_d = [0] * len(actions)
    cov_g = [0] * len(actions)

    def mark(s: Any) -> int:
        m = 0
        for i, p in enumerate(predicates):
            try:
                ok = p(s)
            except Exception as exc:
                raise ModelError(f"model {model.name!r}: predicate {predicate_names[i]} raised "
                                 f"{type(exc).__name__}: {exc} on state {s!r:.300}") from exc
            if ok:
                m |= 1 << i
        return m

    def fingerprint(s: Any, where: str) -> int:
        try:
            return hash(s)
        except TypeError as exc:
            raise ModelError(f"model {model.name!r}: {where} produced an unhashable state "
                             f"{s!r:.200}: {exc}") from exc

    def store(s: Any, fp: int, where: str) -> int:
        """Give the new state ``s`` the next id."""
        if len(g.fps) < VALIDATE_FIRST:
            try:
                validate_state(s)
            except UnstableStateError as exc:
                raise ModelError(f"model {model.name!r}: {where} produced a state whose "
                                 f"{exc}") from None
        if len(g.fps) >= max_states:
            raise ModelError(f"model {model.name!r} has more than {max_states} states: liveness "
                             "keeps the whole state graph; choose a smaller configuration or raise "
                             "the limit")
        ids[fp] = len(g.fps)
        g.fps.append(fp)
        g.marks.append(mark(s))
        return len(g.fps) - 1

    frontier: list[Any] = []
    try:
        inits = list(model.init_states())
    except Exception as exc:
        raise ModelError(f"model {model.name!r}: init_states() raised {exc!r}") from exc
    if not inits:
        raise ModelError(f"model {model.name!r} has no initial state")
    g.generated = len(inits)
    for s in inits:
        if bounded and not within(s):
            continue
        fp = fingerprint(s, "init_states")
        if fp not in ids:
            g.init.append(store(s, fp, "init_states"))
            frontier.append(s)
    u = 0  # states are expanded in id order, so each one's edges land contiguously (CSR)
    while frontier:
        g.depth += 1
        g.levels.append(len(frontier))
        nxt: list[Any] = []
        for s in frontier:
            g.start.append(len(g.dst))
            for ai, fn in enumerate(succ_fns):
                try:
                    succs = fn(s)
                    if not isinstance(succs, (list, tuple)):
                        succs = list(succs)
                except Exception as exc:
                    raise ModelError(f"model {model.name!r}: action {actions[ai].name} raised "
                                     f"{type(exc).__name__}: {exc} in state {s!r:.300}") from exc
                g.generated += len(succs)
                cov_g[ai] += len(succs)
                for params, t in succs:
                    if bounded and not within(t):
                        continue
                    fp = fingerprint(t, f"action {actions[ai].name}")
                    v = ids.get(fp)
                    if v is None:
                        v = store(t, fp, f"action {actions[ai].name}")
                        cov_d[ai] += 1
                        nxt.append(t)
                    if v == u:
                        continue  # a stuttering step: not <<A>>_vars
                    key = (ai, params)
                    k = inst_ids.get(key)
                    if k is None:
                        k = inst_ids[key] = len(g.instances)
                        g.instances.append(key)
                    g.dst.append(v)
                    g.inst.append(k)
            u += 1
        frontier = nxt
    g.start.append(len(g.dst))
    g.coverage = {a.name: [cov_d[i], cov_g[i]] for i, a in enumerate(actions)}
    return g


def replay(model: Model[Any], g: StateGraph, path: Sequence[int],
           steps: Sequence[int]) -> list[Any]:
    """The states along ``path`` (state ids), re-run through the model; ``steps[i]`` is the
    instance of the edge ``path[i] -> path[i+1]``."""
    cur = next((s for s in model.init_states() if hash(s) == g.fps[path[0]]), None)
    if cur is None:
        raise ModelError(f"model {model.name!r}: initial states are not deterministic (replay)")
    out = [cur]
    for v, k in zip(path[1:], steps):
        ai, params = g.instances[k]
        want = g.fps[v]
        cur = next((t for p, t in g.actions[ai].successors(cur) if p == params and hash(t) == want),
                   None)
        if cur is None:
            raise ModelError(f"model {model.name!r}: actions are not deterministic (replay of "
                             f"{g.describe(k)})")
        out.append(cur)
    return out


def strongly_connected(nodes: Iterable[int],
                       succ: Callable[[int], Iterable[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components of the graph induced by ``succ`` on ``nodes``.

    Iterative (no recursion limit on long chains); ``succ`` must only yield members of
    ``nodes``. Every node lands in exactly one component (a lone node is its own component).
    """
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[int, Any]] = [(root, iter(succ(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            pushed = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ(w))))
                    pushed = True
                    break
                if w in on_stack and index[w] < low[v]:
                    low[v] = index[w]
            if pushed:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                if low[v] < low[parent]:
                    low[parent] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out

"""The reachable state graph as a networkx ``DiGraph``, and its Graphviz DOT rendering.

For small configurations only: unlike the BFS in ``explore.py`` this keeps every state in
memory, with its readable variables as the node label and the action as the edge label.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import networkx as nx

from .model import Model, ModelError
from .traces import tla_value

#: Refuse to build graphs larger than this (a DOT file past it is unreadable anyway).
MAX_GRAPH_STATES = 20_000


def state_graph(model: Model[Any], *, symmetry: bool = False,
                limit: int = MAX_GRAPH_STATES) -> nx.DiGraph:
    """Every reachable state (node id = fingerprint) and step (edge labelled by action)."""
    canon = model.canonical if symmetry else (lambda x: x)
    g = nx.DiGraph()
    queue: deque[Any] = deque()
    for s in model.init_states():
        fp = hash(canon(s))
        if fp not in g:
            g.add_node(fp, state=s, init=True)
            queue.append(s)
    actions = list(model.actions())
    while queue:
        s = queue.popleft()
        fs = hash(canon(s))
        for a in actions:
            for params, t in a.successors(s):
                if model.has_bounds() and not model.within_bounds(t):
                    continue
                ft = hash(canon(t))
                if ft not in g:
                    if g.number_of_nodes() >= limit:
                        raise ModelError(
                            f"model {model.name!r} has more than {limit} states: too many for "
                            "--dot; choose a smaller configuration"
                        )
                    g.add_node(ft, state=t, init=False)
                    queue.append(t)
                label = a.describe(params)
                if g.has_edge(fs, ft):
                    g.edges[fs, ft]["labels"].append(label)
                else:
                    g.add_edge(fs, ft, labels=[label])
    return g


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(model: Model[Any], g: nx.DiGraph) -> str:
    """Graphviz DOT text: initial states doubled, nodes labelled with their variables."""
    ids = {fp: f"s{i}" for i, fp in enumerate(g.nodes)}
    lines = [f'digraph "{_esc(model.name)}" {{', "  node [shape=box, fontname=monospace];"]
    for fp, data in g.nodes(data=True):
        variables = model.variables(data["state"])
        label = "\\l".join(_esc(f"{k} = {tla_value(v)}") for k, v in variables.items()) + "\\l"
        style = ", peripheries=2" if data.get("init") else ""
        lines.append(f'  {ids[fp]} [label="{label}"{style}];')
    for a, b, data in g.edges(data=True):
        lines.append(f'  {ids[a]} -> {ids[b]} [label="{_esc(", ".join(data["labels"]))}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"

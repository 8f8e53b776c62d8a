"""Small, dependency-free SVG drawings for reports: state growth and message-sequence charts.

Both return an ``<svg>`` element as text, so a report can inline them in Markdown-rendered HTML
or write them as files. Text is escaped; sizes follow the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from .result import TraceStep
from .traces import tla_value


def growth_chart(levels: Sequence[int], *, title: str = "", width: int = 420,
                 height: int = 160) -> str:
    """Bars of new distinct states per BFS level (level 1 = initial states)."""
    pad_l, pad_b, pad_t = 52, 28, 22
    n = max(len(levels), 1)
    top = max(levels) if levels else 1
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    bar_w = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "state growth")}">',
        '<style>text{font:11px sans-serif;fill:#333}.bar{fill:#4a7fb5}</style>',
        f'<text x="{pad_l}" y="14">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{top:,}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end">0</text>',
    ]
    for i, v in enumerate(levels):
        h = plot_h * v / top if top else 0
        x = pad_l + i * bar_w
        parts.append(f'<rect class="bar" x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" '
                     f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}"><title>level {i + 1}: '
                     f'{v:,} new states</title></rect>')
    parts.append(f'<text x="{pad_l + plot_w / 2}" y="{height - 6}" text-anchor="middle">'
                 f'BFS level (1..{len(levels)}): new distinct states</text>')
    parts.append("</svg>")
    return "".join(parts)


def actor_of(step: TraceStep) -> str:
    """Default lifeline of a step: the first parameter's value, else the action's prefix."""
    if step.params:
        first = next(iter(step.params.values()))
        return str(first)
    name = step.action or "init"
    for prefix in ("TM", "RM", "Client", "Acceptor", "Node"):
        if name.startswith(prefix):
            return prefix
    return "system"


def sequence_chart(trace: Sequence[TraceStep], *, title: str = "",
                   messages: Sequence[tuple[int, str, str, str]] = ()) -> str:
    """A message-sequence chart of a counterexample.

    Each step is an event box on its actor's lifeline (see :func:`actor_of`), labelled with the
    action; ``messages`` adds arrows ``(step index, from actor, to actor, label)``. The last
    step, where the violation shows, is drawn in red.
    """
    actors: list[str] = []
    for step in trace[1:]:
        a = actor_of(step)
        if a not in actors:
            actors.append(a)
    for _i, src, dst, _label in messages:
        for a in (src, dst):
            if a not in actors:
                actors.append(a)
    if not actors:
        actors = ["system"]
    col, row, top = 150, 34, 50
    width = 40 + col * len(actors)
    height = top + row * max(len(trace), 1) + 20
    x_of = {a: 20 + col * i + col // 2 for i, a in enumerate(actors)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "trace")}">',
        "<style>text{font:11px sans-serif;fill:#222}.ev{fill:#eef3fa;stroke:#4a7fb5}"
        ".bad{fill:#fbeaea;stroke:#c0392b}.life{stroke:#bbb;stroke-dasharray:4 3}"
        ".msg{stroke:#555;marker-end:url(#arrow)}</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        f'<text x="10" y="16">{escape(title)}</text>',
    ]
    for a, x in x_of.items():
        parts.append(f'<text x="{x}" y="36" text-anchor="middle" font-weight="bold">'
                     f'{escape(a)}</text>')
        parts.append(f'<line class="life" x1="{x}" y1="42" x2="{x}" y2="{height - 10}"/>')
    for i, step in enumerate(trace[1:], start=1):
        y = top + row * (i - 1)
        x = x_of[actor_of(step)]
        cls = "bad" if i == len(trace) - 1 else "ev"
        label = escape(step.label)
        tip = escape("; ".join(f"{k} = {tla_value(v)}" for k, v in step.variables.items()))
        parts.append(f'<rect class="{cls}" x="{x - 68}" y="{y}" width="136" height="22" rx="4">'
                     f"<title>{tip}</title></rect>")
        parts.append(f'<text x="{x}" y="{y + 15}" text-anchor="middle">{label[:26]}</text>')
    for i, src, dst, label in messages:
        y = top + row * (i - 1) + 11
        parts.append(f'<line class="msg" x1="{x_of[src]}" y1="{y}" x2="{x_of[dst]}" y2="{y}"/>')
        parts.append(f'<text x="{(x_of[src] + x_of[dst]) / 2}" y="{y - 3}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def trace_steps_from_json(steps: Sequence[dict[str, Any]]) -> list[TraceStep]:
    """Rebuild :class:`TraceStep`s from ``--json`` trace entries (for drawing saved results)."""
    out = []
    for s in steps:
        params = s.get("params") or {}
        action = s.get("action")
        if action is None:
            label = "Initial predicate"
        elif params:
            label = f"{action}({', '.join(f'{k}={v}' for k, v in params.items())})"
        else:
            label = str(action)
        out.append(TraceStep(action=action, params=params, label=label, state=None,
                             variables=s.get("state") or {}))
    return out

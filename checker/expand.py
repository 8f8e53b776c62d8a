"""The checker's hot loop: expanding one BFS level, specialised to the features in use.

Every successor of every state passes through this loop, so each test it makes costs millions
of times per run. Rather than test "is refinement on? symmetry? a constraint?" for each
successor, the loop is written once below as a template whose feature-specific lines carry a
``#@feature`` (or ``#@!feature``) tag, and :func:`make_expander` compiles the variant with just
the lines a run needs (as ``dataclasses`` and ``attrs`` generate their methods). Invariants are
inlined into one ``and`` expression for the same reason.

A violation is raised as :class:`Found`, carrying where the search was; a model that raises
propagates its own exception, and the caller reads the failing state and action from the
traceback (see :func:`locate`), so the loop pays nothing for error reporting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

#: Check the clock every this many expanded states (a power of two minus one, as a mask).
PROGRESS_MASK = 0x3FF

_TEMPLATE = """\
def expand(frontier, frontier_fps, seen, generated, nxt, nxt_fps, cov_d, cov_g):
    push = nxt.append
    push_fp = nxt_fps.append
    validate = budget[0]
    ZERO_COUNTERS
    idx = 0  #@progress
    for s, fs in zip(frontier, frontier_fps):
        moved = False  #@deadlock
        ms = refmap(s)  #@ref
        allowed = None  #@ref
ACTIONS
        if not moved:  #@deadlock
            SAVE_COUNTERS  #@deadlock
            raise Found("deadlock", -1, s, fs, None, GENERATED, len(nxt), None)  #@deadlock
        if len(seen) >= BATCH_LIMIT[0]:  #@batch
            flush(seen)  #@batch
        idx += 1  #@progress
        if not idx & PROGRESS_MASK:  #@progress
            tick(GENERATED, len(seen), len(frontier) - idx + len(nxt))  #@progress
    SAVE_COUNTERS
    budget[0] = validate
    return GENERATED
"""

# One block per action, unrolled (AI is the action's index): no loop over actions, no
# per-successor counter; like TLC, "generated" grows by the size of each successor batch.
# Coverage is counted in locals (g_AI, d_AI) and added to cov_g/cov_d when the level ends or
# a violation is raised (SAVE_COUNTERS); the running "generated" is the level's starting
# value plus the g_AI (GENERATED), computed only when it is needed.
_ACTION_BLOCK = """\
        succs = succ_AI(s)
        if succs:
            g_AI += len(succs)
            moved = True  #@deadlock
            for _p, t in succs:
                mt = refmap(t)  #@ref
                if mt != ms:  #@ref
                    if allowed is None:  #@ref
                        allowed = spec_succ(ms)  #@ref
                    if mt not in allowed:  #@ref
                        SAVE_COUNTERS  #@ref
                        raise Found("refinement", AI, s, fs, t, GENERATED, len(nxt), (ms, mt))  #@ref
                fp = hash(canonical(t))  #@sym
                fp = hash(t)  #@!sym
                if fp in seen:
                    continue
                seen[fp] = (t, fs, AI)  #@batch
                continue  #@batch
                o = fp % NW  #@parallel
                if o != W:  #@parallel
                    seen[fp] = fs  #@parallel
                    outbox[o].append((t, fp, fs, AI))  #@parallel
                    continue  #@parallel
                if not within(t):  #@bounds
                    if not (INVARIANTS):  #@bounds_inv
                        SAVE_COUNTERS  #@bounds_inv
                        raise Found("invariant", AI, s, fs, t, GENERATED, len(nxt), None)  #@bounds_inv
                    continue  #@bounds
                seen[fp] = fs
                d_AI += 1
                if not (INVARIANTS):  #@inv
                    SAVE_COUNTERS  #@inv
                    raise Found("invariant", AI, s, fs, t, GENERATED, len(nxt), None)  #@inv
                if validate:
                    validate -= 1
                    check_state(t, AI)
                push(t)
                push_fp(fp)
"""


class Found(Exception):
    """A violation found while expanding: what, and where the search was."""

    def __init__(self, kind: str, action: int, state: Any, state_fp: int,
                 successor: Any, generated: int, queued_next: int, extra: Any) -> None:
        super().__init__(kind)
        self.kind = kind
        self.action = action
        self.state = state
        self.state_fp = state_fp
        self.successor = successor
        self.generated = generated
        self.queued_next = queued_next
        self.extra = extra


Expander = Callable[..., int]

#: Generated sources by file name, so a model's exception can be located in them.
_SOURCES: dict[str, list[str]] = {}
_FILENAMES: dict[str, str] = {}


def _source_line(code: Any, lineno: int) -> str:
    lines = _SOURCES.get(code.co_filename, [])
    return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


def make_expander(
    *,
    succ_fns: Sequence[Callable[[Any], Any]],
    invariants: Sequence[Callable[[Any], bool]],
    canonical: Callable[[Any], Any] | None,
    within: Callable[[Any], bool] | None,
    refmap: Callable[[Any], Any] | None,
    spec_succ: Callable[[Any], Any] | None,
    deadlock: bool,
    tick: Callable[[int, int, int], None] | None,
    check_state: Callable[[Any, int], None],
    budget: list[int],
    partition: tuple[int, int, list[list[Any]]] | None = None,
    batch: tuple[list[int], Callable[[dict[int, Any]], None]] | None = None,
) -> Expander:
    """Compile the level-expansion loop for this combination of features.

    ``partition = (worker, workers, outboxes)`` makes a parallel worker's loop: a successor
    whose fingerprint another worker owns (``fp % workers``) is marked seen locally (so it is
    sent once) and appended to ``outboxes[owner]`` as ``(state, fp, parent_fp, action)``.

    ``batch = (limit, flush)`` makes the compact store's loop: ``seen`` is then only this
    level's candidates, ``fp -> (state, parent_fp, action)``, and ``flush(seen)`` (called when it
    holds ``limit[0]`` entries, and by the caller at the end of the level) sorts out which are
    new (``limit`` is a one-element list so that ``flush`` can move it on).
    """
    features = {
        "ref": refmap is not None,
        "sym": canonical is not None,
        "bounds": within is not None,
        "inv": bool(invariants),
        "bounds_inv": within is not None and bool(invariants),
        "deadlock": deadlock,
        "progress": tick is not None,
        "parallel": partition is not None,
        "batch": batch is not None,
    }
    inv_names = [f"inv{i}" for i in range(len(invariants))]
    inv_expr = " and ".join(f"{n}(t)" for n in inv_names)
    n = len(succ_fns)
    blocks = "".join(_ACTION_BLOCK.replace("AI", str(i)) for i in range(n))
    zero = "; ".join(f"g_{i} = d_{i} = 0" for i in range(n)) or "pass"
    save = "; ".join(f"cov_g[{i}] += g_{i}; cov_d[{i}] += d_{i}" for i in range(n)) or "pass"
    generated_now = "(" + " + ".join(["generated"] + [f"g_{i}" for i in range(n)]) + ")"
    lines = []
    for line in _TEMPLATE.replace("ACTIONS\n", blocks).splitlines():
        code, tag, feature = line.partition("  #@")
        if tag:
            wanted = not feature.startswith("!")
            if features[feature.lstrip("!")] != wanted:
                continue
        code = code.replace("ZERO_COUNTERS", zero).replace("SAVE_COUNTERS", save)
        code = code.replace("GENERATED", generated_now)
        lines.append(code.replace("INVARIANTS", inv_expr))
    env: dict[str, Any] = {
        "Found": Found,
        "canonical": canonical,
        "within": within,
        "refmap": refmap,
        "spec_succ": spec_succ,
        "tick": tick,
        "check_state": check_state,
        "budget": budget,
        "PROGRESS_MASK": PROGRESS_MASK,
    }
    if partition is not None:
        env["W"], env["NW"], env["outbox"] = partition
    if batch is not None:
        env["BATCH_LIMIT"], env["flush"] = batch
    env.update(zip(inv_names, invariants))
    env.update((f"succ_{i}", fn) for i, fn in enumerate(succ_fns))
    source = "\n".join(lines)
    filename = _FILENAMES.setdefault(source, f"<checker expand loop {len(_FILENAMES)}>")
    _SOURCES[filename] = source.splitlines()
    exec(compile(source, filename, "exec"), env)
    expander: Expander = env["expand"]
    return expander


def locate(tb: TracebackType | None) -> tuple[Any, int, str] | None:
    """Where a model raised inside the loop: the state being expanded, the action index
    (-1 if not in an action) and the generated source line that was running."""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "expand" and frame.f_code.co_filename in _SOURCES:
            # The failing call is on this line, e.g. "succs = succ_3(s)" or "... inv0(t) ...".
            line = _source_line(frame.f_code, tb.tb_lineno).strip()
            return frame.f_locals.get("s"), _last_action(frame.f_code, tb.tb_lineno), line
        tb = tb.tb_next
    return None


def _last_action(code: Any, lineno: int) -> int:
    """The action whose block contains ``lineno`` (the nearest ``succ_N(s)`` at or above it)."""
    lines = _SOURCES.get(code.co_filename, [])
    for line in reversed(lines[:lineno]):
        if "= succ_" in line:
            return int(line.split("succ_", 1)[1].split("(", 1)[0])
    return -1

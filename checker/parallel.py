"""Parallel breadth-first search across processes, with the counts of one worker.

Each of ``n`` worker processes owns the fingerprints ``fp % n == worker``: it stores them, checks
their invariants and expands them. The search stays level-synchronous, as the sequential one:

1. every worker expands its share of level ``d`` with the same compiled loop as one worker
   (``expand.py``); a successor it owns is deduplicated on the spot, one another worker owns is
   marked seen locally (so it is sent at most once) and queued for its owner;
2. workers exchange those queues, and each owner keeps the candidates it has not seen;
3. the coordinator sums the counts and starts level ``d + 1``.

Since every reachable state is stored and expanded exactly once, by its owner, *distinct*,
*generated* and *depth* equal the sequential search's, and a violation is found at the same
(shortest) depth. Which violation of that depth is reported, and the per-action split of
*distinct* in coverage, may differ between runs, as with TLC's workers.

Workers are forked, so they inherit the model without pickling it (Linux/macOS ``fork``).
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .expand import Found
from .model import ModelError
from .result import INVARIANT, OK

if TYPE_CHECKING:
    from .explore import _Explorer


class ParallelSearch:
    """The coordinator: forks the workers, runs the levels, answers trace queries."""

    def __init__(self, explorer: _Explorer, workers: int) -> None:
        if workers < 2:
            raise ValueError("a parallel search needs at least two workers")
        if "fork" not in mp.get_all_start_methods():
            raise ModelError("--workers needs the 'fork' start method (Linux or macOS)")
        self.ex = explorer
        self.n = workers

    def search(self, t0: float) -> None:
        """Explore; fill in the explorer's result, or raise its ``_Stop`` on a violation."""
        from .explore import Progress, _Stop

        ex, n, res = self.ex, self.n, self.ex.result
        frontier, fps = ex.initial()
        initial_distinct = len(ex.seen)
        ctx = mp.get_context("fork")
        inboxes = [ctx.Queue() for _ in range(n)]
        pipes: list[Connection] = []
        procs = []
        for w in range(n):
            parent_end, child_end = ctx.Pipe()
            share = [(s, fp) for s, fp in zip(frontier, fps) if fp % n == w]
            p = ctx.Process(target=_worker, args=(ex, w, n, child_end, inboxes, share),
                            daemon=True)
            p.start()
            child_end.close()
            pipes.append(parent_end)
            procs.append(p)
        ex.parent_of = lambda fp: _ask(pipes[fp % n], ("parent", fp))
        try:
            levels = [len(frontier)]
            depth = 1 if frontier else 0
            generated = res.generated
            distinct = initial_distinct
            cov_d = [0] * len(ex.actions)
            cov_g = [0] * len(ex.actions)
            last = t0
            while True:
                for pipe in pipes:
                    pipe.send(("level",))
                replies = [_recv(pipe) for pipe in pipes]
                new = 0
                stop = None
                for r in replies:
                    generated += r["generated"]
                    new += r["new"]
                    for i in range(len(cov_d)):
                        cov_d[i] += r["cov_d"][i]
                        cov_g[i] += r["cov_g"][i]
                    if r["stop"] is not None and stop is None:
                        stop = r["stop"]
                distinct += new
                res.generated, res.distinct = generated, distinct
                ex.cov_distinct[:], ex.cov_generated[:] = cov_d, cov_g
                if stop is not None:
                    res.depth = depth
                    res.levels = levels
                    res.left_on_queue = sum(r["queued"] for r in replies)
                    kind, name, parent_fp, state, message = stop
                    raise _Stop(kind, name, parent_fp, state, message)
                if new == 0:
                    break
                depth += 1
                levels.append(new)
                now = time.perf_counter()
                if ex.progress is not None and now - last >= ex.progress_interval:
                    last = now
                    ex.progress(Progress(now - t0, depth, generated, distinct, new))
            res.depth = depth
            res.levels = levels
            res.left_on_queue = 0
            res.result = OK
        except _Stop as stop:
            # Rebuild the trace while the workers still hold the parent pointers.
            res.result = stop.kind
            res.violated = stop.name
            res.message = stop.message
            res.trace = ex._trace(stop.parent_fp, stop.state)
            res.distinct = distinct
            return
        finally:
            for pipe in pipes:
                try:
                    pipe.send(("stop",))
                except (BrokenPipeError, OSError):
                    pass
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()


def _ask(pipe: Connection, msg: tuple[Any, ...]) -> Any:
    pipe.send(msg)
    return _recv(pipe)


def _recv(pipe: Connection) -> Any:
    try:
        reply = pipe.recv()
    except EOFError:
        raise ModelError("a checker worker process died (out of memory, or killed)") from None
    if isinstance(reply, dict) and "error" in reply:
        raise ModelError(reply["error"])
    return reply


def _worker(ex: _Explorer, w: int, n: int, conn: Connection, inboxes: list[Any],
            share: list[tuple[Any, int]]) -> None:
    """A worker process: owns ``fp % n == w``; serves "level", "parent" and "stop"."""
    from .explore import _Stop

    seen = ex.seen
    seen.clear()
    frontier = [s for s, _fp in share]
    fps = [fp for _s, fp in share]
    for fp in fps:
        seen[fp] = None
    outbox: list[list[Any]] = [[] for _ in range(n)]
    expand = ex.make_expand(None, partition=(w, n, outbox))
    while True:
        msg = conn.recv()
        if msg[0] == "parent":
            conn.send(seen.get(msg[1]))
            continue
        if msg[0] == "stop":
            return
        cov_d = [0] * len(ex.actions)
        cov_g = [0] * len(ex.actions)
        nxt: list[Any] = []
        nxt_fps: list[int] = []
        stop: tuple[Any, ...] | None = None
        error: str | None = None
        generated = 0
        queued = 0
        try:
            generated = expand(frontier, fps, seen, 0, nxt, nxt_fps, cov_d, cov_g)
        except Found as found:
            generated = found.generated
            queued = len(frontier) - frontier.index(found.state) - 1 + found.queued_next
            s = ex._stop(found, queued)
            stop = (s.kind, s.name, s.parent_fp, s.state, s.message)
        except _Stop as s:
            stop = (s.kind, s.name, s.parent_fp, s.state, s.message)
        except Exception as exc:
            try:
                error = str(ex.located_error(exc))
            except Exception:
                error = f"worker {w}: {traceback.format_exc()}"
        # Exchange with every other worker, even after a violation, so that none waits forever.
        for o in range(n):
            if o != w:
                inboxes[o].put(outbox[o] if stop is None and error is None else [])
                # A fresh list: the queue pickles the old one in its feeder thread, later.
                outbox[o] = []
        local_new = len(nxt)
        for _ in range(n - 1):
            batch = inboxes[w].get()
            if stop is None and error is None:
                stop = accept_candidates(ex, batch, cov_d, nxt, nxt_fps)
        if error is not None:
            conn.send({"error": error})
            continue
        conn.send({"generated": generated, "new": len(nxt), "local_new": local_new,
                   "cov_d": cov_d, "cov_g": cov_g, "stop": stop, "queued": queued + len(nxt)})
        frontier, fps = nxt, nxt_fps


def accept_candidates(ex: _Explorer, batch: list[Any], cov_d: list[int], nxt: list[Any],
                      nxt_fps: list[int]) -> tuple[Any, ...] | None:
    """Keep the ``(state, fp, parent, action)`` candidates another worker sent that this one
    owns and has not seen: store, check and queue them. Returns the first violation found
    (as ``(kind, name, parent_fp, state, message)``), or ``None``."""
    seen = ex.seen
    bounded = ex.model.has_bounds()
    within = ex.model.within_bounds
    stop: tuple[Any, ...] | None = None
    for t, fp, parent, ai in batch:
        if fp in seen:
            continue
        in_model = not bounded or within(t)
        bad = next((name for name, inv in ex.invariants if not inv(t)), None)
        if bad and stop is None:
            stop = (INVARIANT, bad, parent, t, f"Invariant {bad} is violated.")
        if not in_model:
            continue
        seen[fp] = parent
        cov_d[ai] += 1
        nxt.append(t)
        nxt_fps.append(fp)
    return stop

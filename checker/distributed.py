"""Distributed search on Ray: the fingerprint-partitioned BFS of ``parallel.py`` across Ray
actors, which Ray can place on many machines.

Nothing here speaks a cluster protocol of its own: Ray starts the actors, ships the model to
them (cloudpickle), and moves the batches of successors through its object store. Each actor
owns the fingerprints ``fp % n == i`` and runs the same compiled loop as one worker; the
driver keeps the search level-synchronous, so distinct, generated and depth equal one
worker's, and violations are found at the shortest depth.

Local use starts a private Ray instance (``address=None``); for a cluster, start Ray on the
machines (``ray start --head`` and ``ray start --address=HEAD:6379``) and pass
``address="auto"`` (or the head's address): the project must be installed on every machine.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .expand import Found
from .model import Model, ModelError
from .result import OK

if TYPE_CHECKING:
    from .explore import _Explorer


class _Partition:
    """One Ray actor: the explorer state for the fingerprints it owns."""

    def __init__(self, model: Model[Any], options: dict[str, Any], w: int, n: int) -> None:
        from .explore import _Explorer

        self.ex = _Explorer(model, options["deadlock"], options["symmetry"],
                            options["refinement"], None, 5.0)
        if options["invariants"] is not None:
            available = dict(self.ex.invariants)
            self.ex.invariants = [(name, available[name]) for name in options["invariants"]]
        self.w, self.n = w, n
        self.outbox: list[list[Any]] = [[] for _ in range(n)]
        self.expand = self.ex.make_expand(None, partition=(w, n, self.outbox))
        self.frontier: list[Any] = []
        self.fps: list[int] = []
        self.nxt: list[Any] = []
        self.nxt_fps: list[int] = []

    def seed(self, share: list[tuple[Any, int]]) -> int:
        """Take this actor's initial states."""
        self.frontier = [s for s, _ in share]
        self.fps = [fp for _, fp in share]
        for fp in self.fps:
            self.ex.seen[fp] = None
        return len(share)

    def expand_level(self) -> dict[str, Any]:
        """Expand this actor's share of the level; return counts and the batches for others."""
        from .explore import _Stop

        ex = self.ex
        cov_d = [0] * len(ex.actions)
        cov_g = [0] * len(ex.actions)
        self.nxt, self.nxt_fps = [], []
        stop = None
        generated = 0
        try:
            generated = self.expand(self.frontier, self.fps, ex.seen, 0, self.nxt,
                                    self.nxt_fps, cov_d, cov_g)
        except Found as found:
            generated = found.generated
            s = ex._stop(found, 0)
            stop = (s.kind, s.name, s.parent_fp, s.state, s.message)
        except _Stop as s:
            stop = (s.kind, s.name, s.parent_fp, s.state, s.message)
        except ModelError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            return {"error": str(ex.located_error(exc))}
        batches = [[] if o == self.w else self.outbox[o] for o in range(self.n)]
        for o in range(self.n):
            self.outbox[o] = []
        return {"generated": generated, "cov_d": cov_d, "cov_g": cov_g, "stop": stop,
                "batches": batches}

    def receive(self, batches: list[list[Any]], cov_d: list[int]) -> dict[str, Any]:
        """Keep the candidates this actor owns and has not seen; start the next level."""
        from .parallel import accept_candidates

        stop = None
        for batch in batches:
            found = accept_candidates(self.ex, batch, cov_d, self.nxt, self.nxt_fps)
            stop = stop or found
        self.frontier, self.fps = self.nxt, self.nxt_fps
        return {"new": len(self.frontier), "cov_d": cov_d, "stop": stop}

    def parent(self, fp: int) -> int | None:
        """The parent of a stored fingerprint (for traces)."""
        return self.ex.seen.get(fp)


class RaySearch:
    """The driver: creates ``workers`` actors on Ray and runs the levels."""

    def __init__(self, explorer: _Explorer, workers: int, *, address: str | None = None,
                 invariants: list[str] | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ModelError("the distributed mode needs Ray: pip install 'wormspace[distributed]'"
                             ) from exc
        self.ray = ray
        self.ex = explorer
        self.n = workers
        self.address = address
        self.invariants = invariants

    def search(self, t0: float) -> None:
        """Explore on Ray; fill in the explorer's result, or raise its ``_Stop``."""
        from .explore import Progress

        ray, ex, n, res = self.ray, self.ex, self.n, self.ex.result
        frontier, fps = ex.initial()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, num_cpus=None if self.address else n,
                     include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            actor = ray.remote(_Partition)
            options = {"deadlock": ex.deadlock, "symmetry": ex.symmetry,
                       "refinement": ex.refinement is not None, "invariants": self.invariants}
            actors = [actor.remote(ex.model, options, w, n) for w in range(n)]
            ray.get([a.seed.remote([(s, fp) for s, fp in zip(frontier, fps) if fp % n == w])
                     for w, a in enumerate(actors)])
            ex.parent_of = lambda fp: ray.get(actors[fp % n].parent.remote(fp))
            levels, depth = [len(frontier)], (1 if frontier else 0)
            generated, distinct = res.generated, len(ex.seen)
            last = t0
            while True:
                outs = ray.get([a.expand_level.remote() for a in actors])
                for o in outs:
                    if "error" in o:
                        raise ModelError(o["error"])
                cov_d = [0] * len(ex.actions)
                for o in outs:
                    generated += o["generated"]
                    for i, g in enumerate(o["cov_g"]):
                        ex.cov_generated[i] += g
                        cov_d[i] += o["cov_d"][i]
                stop = next((o["stop"] for o in outs if o["stop"] is not None), None)
                ins = ray.get([a.receive.remote([o["batches"][w] for o in outs], [0] * len(cov_d))
                               for w, a in enumerate(actors)])
                new = sum(i["new"] for i in ins)
                for i_out in ins:
                    for i, d in enumerate(i_out["cov_d"]):
                        cov_d[i] += d
                for i, d in enumerate(cov_d):
                    ex.cov_distinct[i] += d
                stop = stop or next((i["stop"] for i in ins if i["stop"] is not None), None)
                distinct += new
                res.generated, res.distinct = generated, distinct
                if stop is not None:
                    # Rebuild the trace now, while the actors still hold the parent pointers.
                    res.depth, res.levels = depth, levels
                    kind, name, parent_fp, state, message = stop
                    res.result, res.violated, res.message = kind, name, message
                    res.trace = ex._trace(parent_fp, state)
                    return
                if new == 0:
                    break
                depth += 1
                levels.append(new)
                now = time.perf_counter()
                if ex.progress is not None and now - last >= ex.progress_interval:
                    last = now
                    ex.progress(Progress(now - t0, depth, generated, distinct, new))
            res.depth, res.levels, res.left_on_queue, res.result = depth, levels, 0, OK
        finally:
            if started_here:
                ray.shutdown()

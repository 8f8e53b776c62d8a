"""Breadth-first exploration: invariants, deadlocks, state constraints, symmetry, refinement.

The search follows TLC's conventions so that its numbers can be compared with TLC's:

* *generated* counts the initial states plus every successor computed, duplicates included;
* *distinct* counts states stored (one per symmetry orbit with ``symmetry=True``);
* *depth* is the number of BFS levels, the initial states being level 1;
* a *deadlock* is a state with no successor at all (a step back to the same state counts);
* a successor outside the state constraint is generated and checked against the invariants but
  neither stored nor expanded;
* refinement (TLC's implied action) is checked on every edge, including edges to states
  already seen.

Storage: a dict from fingerprint to the parent's fingerprint. States themselves live only in
the BFS frontier, so memory per distinct state is one dict entry; counterexample traces are
rebuilt by replaying the model along the fingerprint path, as TLC does.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .expand import Expander, Found, locate, make_expander
from .fingerprint import UnstableStateError, collision_probability, validate_state
from .model import Action, Model, ModelError, Refinement
from .result import DEADLOCK, INVARIANT, OK, REFINEMENT, CheckResult, TraceStep
from .traces import tla_value

#: How many of the first distinct states are validated for fingerprint stability.
VALIDATE_FIRST = 2000


@dataclass
class Progress:
    """A snapshot passed to a progress callback during a long search."""

    seconds: float
    depth: int
    generated: int
    distinct: int
    queue: int


ProgressFn = Callable[[Progress], None]


class _Stop(Exception):
    """Internal: a violation was found; carries the verdict."""

    def __init__(self, kind: str, name: str, parent_fp: int | None, state: Any, message: str):
        super().__init__(message)
        self.kind = kind
        self.name = name
        self.parent_fp = parent_fp
        self.state = state
        self.message = message


def check(
    model: Model[Any],
    *,
    deadlock: bool = True,
    symmetry: bool = False,
    refinement: bool = True,
    progress: ProgressFn | None = None,
    progress_interval: float = 5.0,
    invariants: Sequence[str] | None = None,
    workers: int = 1,
    disk: str | Path | None = None,
    checkpoint_minutes: float | None = None,
    recover: bool = False,
    ray_address: str | None = None,
) -> CheckResult:
    """Explore every reachable state of ``model`` breadth-first and check it.

    ``workers > 1`` explores with that many processes, each owning the fingerprints
    ``fp % workers``; the counts (distinct, generated, depth) are those of one worker.

    ``disk=DIR`` uses the compact store (8-byte fingerprints in memory; frontier and parent
    pointers in ``DIR``); ``checkpoint_minutes`` saves a checkpoint there at level boundaries,
    and ``recover=True`` resumes from it (see ``compact.py``).

    ``ray_address`` runs the partitioned search on Ray actors (``"local"`` starts a private
    Ray instance; otherwise a cluster address such as ``"auto"``), see ``distributed.py``.

    ``invariants`` selects which of the model's invariants to check (all by default), as the
    ``INVARIANT`` lines of a TLC configuration do.

    Returns a :class:`CheckResult`; a violation comes with a shortest trace. Raises
    :class:`ModelError` when the model itself misbehaves (an action raises, a state is not
    fingerprintable, a symmetry was asked of a model without one).
    """
    if symmetry and not model.has_symmetry():
        raise ModelError(f"model {model.name!r} defines no symmetry (canonical); drop --symmetry")
    explorer = _Explorer(model, deadlock, symmetry, refinement, progress, progress_interval)
    if invariants is not None:
        available = dict(explorer.invariants)
        unknown = [n for n in invariants if n not in available]
        if unknown:
            raise ModelError(f"model {model.name!r} has no invariant {', '.join(unknown)} "
                             f"(invariants: {', '.join(available) or 'none'})")
        explorer.invariants = [(n, available[n]) for n in invariants]
    # States are immutable, acyclic values, so the cyclic garbage collector has nothing to
    # find in them; left on, it re-traverses every stored tuple as the search allocates.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if disk is not None:
            if workers > 1:
                raise ModelError("the compact disk store runs with one worker")
            from .compact import CompactSearch

            compact = CompactSearch(explorer, Path(disk), checkpoint_minutes=checkpoint_minutes,
                                    recover=recover)
            return explorer.run(compact.search)
        if ray_address is not None:
            from .distributed import RaySearch

            ray_search = RaySearch(explorer, max(workers, 1),
                                   address=None if ray_address == "local" else ray_address,
                                   invariants=list(invariants) if invariants is not None else None)
            return explorer.run(ray_search.search)
        if checkpoint_minutes or recover:
            raise ModelError("checkpoints need the disk store (give a directory)")
        if workers > 1:
            from .parallel import ParallelSearch

            return explorer.run(ParallelSearch(explorer, workers).search)
        return explorer.run(explorer.search)
    finally:
        if gc_was_enabled:
            gc.enable()


class _Explorer:
    """One BFS run; the state of the search lives here, the hot loop in ``_search``."""

    def __init__(
        self,
        model: Model[Any],
        deadlock: bool,
        symmetry: bool,
        refinement: bool,
        progress: ProgressFn | None,
        progress_interval: float,
    ) -> None:
        self.model = model
        self.deadlock = deadlock
        self.symmetry = symmetry
        self.progress = progress
        self.progress_interval = progress_interval
        self.actions: Sequence[Action[Any]] = _call(model, "actions", model.actions)
        self.invariants = list(_call(model, "invariants", model.invariants).items())
        self.refinement: Refinement[Any, Any] | None = (
            _call(model, "refinement", model.refinement) if refinement else None
        )
        self.spec_succ_cache: dict[Any, frozenset[Any]] = {}
        self.result = CheckResult(
            model=model.name,
            params=dict(model.params),
            symmetry=symmetry,
            deadlock_check=deadlock,
            refinement_checked=self.refinement.spec.name if self.refinement else None,
        )
        self.cov_distinct = [0] * len(self.actions)
        self.cov_generated = [0] * len(self.actions)
        self.seen: dict[int, int | None] = {}
        #: How many more new states to validate for fingerprint stability.
        self.budget = [VALIDATE_FIRST]
        #: Where to find a stored state's parent (a parallel search asks the owning worker).
        self.parent_of: Callable[[int], int | None] = self.seen.__getitem__

    # -- fingerprints -------------------------------------------------------------------------

    def fp(self, s: Any) -> int:
        """Fingerprint of a state (of its orbit representative with symmetry)."""
        return hash(self.model.canonical(s)) if self.symmetry else hash(s)

    # -- the run ------------------------------------------------------------------------------

    def run(self, search: Callable[[float], None]) -> CheckResult:
        """Run ``search`` (which fills in the result or raises ``_Stop``) and finish the result."""
        res = self.result
        t0 = time.perf_counter()
        try:
            search(t0)
        except _Stop as stop:
            res.result = stop.kind
            res.violated = stop.name
            res.message = stop.message
            res.trace = self._trace(stop.parent_fp, stop.state)
        res.seconds = time.perf_counter() - t0
        if res.distinct == 0:
            res.distinct = len(self.seen)
        res.collision_probability = collision_probability(res.distinct, res.generated)
        res.coverage = {
            a.name: [self.cov_distinct[i], self.cov_generated[i]] for i, a in enumerate(self.actions)
        }
        return res

    def initial(self) -> tuple[list[Any], list[int]]:
        """Level 1: check the initial states; store and return those inside the constraint."""
        model, res, seen = self.model, self.result, self.seen
        bounded = model.has_bounds()
        within = model.within_bounds
        ref = self.refinement

        # Initial states: level 1.
        frontier: list[Any] = []
        frontier_fps: list[int] = []
        inits = list(_call(model, "init_states", model.init_states))
        if not inits:
            raise ModelError(f"model {model.name!r} has no initial state")
        res.generated = len(inits)
        spec_inits: frozenset[Any] | None = None
        if ref is not None:
            spec_inits = frozenset(_call(ref.spec, "init_states", ref.spec.init_states))
        for s in inits:
            try:
                self._validate(s, None)
                fp = self._fp_checked(s, None)
                if ref is not None and spec_inits is not None:
                    m = self._map(s)
                    if m not in spec_inits:
                        raise _Stop(REFINEMENT, "initial state", None, s,
                                    f"the initial state maps to {m!r}, not an initial state of "
                                    f"{ref.spec.name}")
                in_model = not bounded or within(s)
                if in_model:
                    if fp in seen:
                        continue
                    seen[fp] = None
                self._check_invariants(s, None)
                if in_model:
                    frontier.append(s)
                    frontier_fps.append(fp)
            except (ModelError, _Stop):
                raise
            except Exception as exc:
                raise ModelError(
                    f"model {model.name!r}: {type(exc).__name__}: {exc} while checking the "
                    f"initial state {s!r:.300}"
                ) from exc
        return frontier, frontier_fps

    def make_expand(self, tick: Callable[[int, int, int], None] | None,
                    partition: tuple[int, int, list[list[Any]]] | None = None,
                    batch: tuple[list[int], Callable[[dict[int, Any]], None]] | None = None,
                    ) -> Expander:
        """The hot loop compiled for this run's features (see ``expand.py``)."""
        ref = self.refinement
        return make_expander(
            succ_fns=[a.successors for a in self.actions],
            invariants=[inv for _name, inv in self.invariants],
            canonical=self.model.canonical if self.symmetry else None,
            within=self.model.within_bounds if self.model.has_bounds() else None,
            refmap=ref.mapping if ref is not None else None,
            spec_succ=self._spec_successors if ref is not None else None,
            deadlock=self.deadlock,
            tick=tick,
            check_state=lambda t, ai: self._validate(t, self.actions[ai]),
            budget=self.budget,
            partition=partition,
            batch=batch,
        )

    def search(self, t0: float) -> None:
        """The sequential breadth-first search, level by level."""
        res, seen = self.result, self.seen
        frontier, frontier_fps = self.initial()
        levels = [len(frontier)]
        depth = 1 if frontier else 0
        generated = res.generated
        clock = [t0]

        def tick(gen: int, distinct: int, queue: int) -> None:
            now = time.perf_counter()
            if self.progress is not None and now - clock[0] >= self.progress_interval:
                clock[0] = now
                self.progress(Progress(now - t0, depth, gen, distinct, queue))

        expand = self.make_expand(tick if self.progress is not None else None)
        while frontier:
            nxt: list[Any] = []
            nxt_fps: list[int] = []
            try:
                generated = expand(frontier, frontier_fps, seen, generated, nxt, nxt_fps,
                                   self.cov_distinct, self.cov_generated)
            except Found as found:
                res.generated = found.generated
                res.depth = depth
                res.levels = levels
                idx = frontier.index(found.state)  # frontier states are distinct
                raise self._stop(found, len(frontier) - idx - 1 + found.queued_next) from None
            except (ModelError, _Stop):
                raise
            except Exception as exc:  # the model misbehaved: name where
                raise self.located_error(exc) from exc
            if nxt:
                depth += 1
                levels.append(len(nxt))
            frontier, frontier_fps = nxt, nxt_fps
        res.generated = generated
        res.depth = depth
        res.levels = levels
        res.left_on_queue = 0
        res.result = OK

    def located_error(self, exc: Exception) -> ModelError:
        """A model exception from inside the loop, as a ModelError naming action and state."""
        where = locate(exc.__traceback__)
        state, ai, line = where if where is not None else (None, -1, "")
        return self._model_error(exc, state, ai, line)

    def _stop(self, found: Found, left_on_queue: int) -> _Stop:
        """Turn a violation found in the loop into a verdict with its trace's end."""
        self.result.left_on_queue = left_on_queue
        fs = found.state_fp
        if found.kind == DEADLOCK:
            return _Stop(DEADLOCK, "deadlock", self.parent_of(fs), found.state, "Deadlock reached.")
        name = self.actions[found.action].name
        if found.kind == REFINEMENT:
            ms, mt = found.extra
            return _Stop(REFINEMENT, name, fs, found.successor,
                         self._refinement_message(found.action, ms, mt))
        t = found.successor
        # The loop checks all invariants at once; find the first that fails.
        for inv_name, inv in self.invariants:
            if not inv(t):
                return _Stop(INVARIANT, inv_name, fs, t, f"Invariant {inv_name} is violated.")
        raise AssertionError("an invariant failed in the loop but holds on replay")

    # -- helpers (off the hot path) -----------------------------------------------------------

    def _fp_checked(self, s: Any, action: Action[Any] | None) -> int:
        try:
            return self.fp(s)
        except TypeError as exc:
            where = f"action {action.name}" if action else "init_states"
            raise ModelError(
                f"model {self.model.name!r}: {where} produced an unhashable state {s!r:.200}: {exc}"
            ) from exc

    def _validate(self, s: Any, action: Action[Any] | None) -> None:
        try:
            validate_state(s)
            if self.symmetry:
                validate_state(self.model.canonical(s), "canonical(state)")
        except UnstableStateError as exc:
            where = f"action {action.name}" if action else "init_states"
            raise ModelError(
                f"model {self.model.name!r}: {where} produced a state whose {exc}") from None

    def _check_invariants(self, s: Any, parent: int | None) -> None:
        for name, inv in self.invariants:
            try:
                ok = inv(s)
            except Exception as exc:
                raise ModelError(
                    f"model {self.model.name!r}: invariant {name} raised "
                    f"{type(exc).__name__}: {exc} on state {self._show(s)}"
                ) from exc
            if not ok:
                raise _Stop(INVARIANT, name, parent, s, f"Invariant {name} is violated.")

    def _map(self, s: Any) -> Any:
        assert self.refinement is not None
        try:
            return self.refinement.mapping(s)
        except Exception as exc:
            raise ModelError(
                f"model {self.model.name!r}: the refinement mapping raised "
                f"{type(exc).__name__}: {exc} on state {self._show(s)}"
            ) from exc

    def _refinement_message(self, ai: int, ms: Any, mt: Any) -> str:
        assert self.refinement is not None
        spec = self.refinement.spec
        try:
            before, after = dict(spec.variables(ms)), dict(spec.variables(mt))
            changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
            shown = "; ".join(f"{k}: {tla_value(a)} -> {tla_value(b)}" for k, (a, b) in changed.items())
        except Exception:
            shown = f"{ms!r} -> {mt!r}"
        return (f"step {self.actions[ai].name} maps to a step of {spec.name} ({shown}) that "
                f"{spec.name} does not allow")

    def _spec_successors(self, m: Any) -> frozenset[Any]:
        cached = self.spec_succ_cache.get(m)
        if cached is None:
            assert self.refinement is not None
            spec = self.refinement.spec
            out: list[Any] = []
            for a in spec.actions():
                try:
                    out.extend(t for _p, t in a.successors(m))
                except Exception as exc:
                    raise ModelError(
                        f"spec {spec.name!r}: action {a.name} raised {type(exc).__name__}: {exc} "
                        f"on the mapped state {m!r:.200}"
                    ) from exc
            cached = self.spec_succ_cache[m] = frozenset(out)
        return cached

    def _model_error(self, exc: Exception, s: Any, ai: int, line: str = "") -> ModelError:
        if isinstance(exc, ModelError):
            return exc
        name = self.actions[ai].name if 0 <= ai < len(self.actions) else None
        text = str(exc)
        if "inv" in line and "succ_" not in line:
            invs = ", ".join(n for n, _ in self.invariants)
            what = f"an invariant ({invs}) raised {type(exc).__name__}: {text} on a successor"
        elif "refmap" in line:
            what = f"the refinement mapping raised {type(exc).__name__}: {text}"
        elif "canonical" in line:
            what = f"canonical() raised {type(exc).__name__}: {text}"
        elif isinstance(exc, TypeError) and "unhashable" in text:
            what = f"action {name} produced an unhashable state ({text})"
        elif isinstance(exc, TypeError) and ("has no len" in text or "cannot unpack" in text
                                             or "not iterable" in text):
            what = (f"action {name} must return a list or tuple of (params, state) pairs "
                    f"({text})")
        else:
            what = f"action {name} raised {type(exc).__name__}: {text}"
        return ModelError(f"model {self.model.name!r}: {what}, in state {self._show(s)}")

    def _show(self, s: Any) -> str:
        try:
            return repr(dict(self.model.variables(s)))[:400]
        except Exception:
            return repr(s)[:400]

    # -- traces -------------------------------------------------------------------------------

    def _trace(self, parent_fp: int | None, last: Any) -> list[TraceStep]:
        """The shortest trace ending in ``last``, whose predecessor has ``parent_fp``."""
        path: list[int] = []
        fp = parent_fp
        while fp is not None:
            path.append(fp)
            fp = self.parent_of(fp)
        path.reverse()
        return replay(self.model, path, last, self.symmetry, self.refinement)


def replay(
    model: Model[Any],
    fps: list[int],
    last: Any,
    symmetry: bool,
    refinement: Refinement[Any, Any] | None,
) -> list[TraceStep]:
    """Rebuild a trace from its fingerprints by re-running the model, then step to ``last``."""
    canon: Callable[[Any], Any] = model.canonical if symmetry else (lambda x: x)
    actions = model.actions()
    steps: list[tuple[Action[Any] | None, tuple[Any, ...], Any]] = []
    if fps:
        cur = next((s for s in model.init_states() if hash(canon(s)) == fps[0]), None)
        if cur is None:
            raise ModelError(f"model {model.name!r}: initial states are not deterministic")
        steps.append((None, (), cur))
        for want in fps[1:]:

            def same_fp(t: Any, w: int = want) -> bool:
                return hash(canon(t)) == w

            cur_step = _find_step(actions, cur, same_fp)
            if cur_step is None:
                raise ModelError(f"model {model.name!r}: actions are not deterministic (replay)")
            steps.append(cur_step)
            cur = cur_step[2]
        last_step = _find_step(actions, cur, lambda t: t == last)
        steps.append(last_step if last_step is not None else (None, (), last))
    else:
        steps.append((None, (), last))
    out = []
    for act, params, st in steps:
        spec_vars = None
        if refinement is not None:
            try:
                spec_vars = dict(refinement.spec.variables(refinement.mapping(st)))
            except Exception:
                spec_vars = {"mapping": "<raised>"}
        out.append(
            TraceStep(
                action=act.name if act else None,
                params=act.params_dict(params) if act else {},
                label=act.describe(params) if act else "Initial predicate",
                state=st,
                variables=dict(model.variables(st)),
                spec_variables=spec_vars,
            )
        )
    return out


def _find_step(
    actions: Sequence[Action[Any]], s: Any, match: Callable[[Any], bool]
) -> tuple[Action[Any], tuple[Any, ...], Any] | None:
    for a in actions:
        for params, t in a.successors(s):
            if match(t):
                return a, params, t
    return None


def _call(model: Model[Any], what: str, fn: Callable[[], Any]) -> Any:
    try:
        out = fn()
        if what == "init_states":
            out = list(out)
        return out
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"model {getattr(model, 'name', model)!r}: {what}() raised {type(exc).__name__}: {exc}"
        ) from exc


def iter_successors(model: Model[Any], s: Any) -> Iterable[tuple[Action[Any], Any, Any]]:
    """Every step ``(action, params, t)`` out of ``s`` (for simulation and graphs)."""
    for a in model.actions():
        for params, t in a.successors(s):
            yield a, params, t

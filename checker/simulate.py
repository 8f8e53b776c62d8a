"""Random simulation: seeded random walks, for state spaces too large to exhaust.

Each behaviour starts in a random initial state and takes up to ``depth`` random steps; every
state is checked against the invariants, every step against the refinement, and a state with
no successor is a deadlock (when deadlock checking is on). The same seed gives the same walks.
Counts follow TLC's simulation mode: *generated* is every state computed, *distinct* the
number of different fingerprints met.
"""

from __future__ import annotations

import gc
import random
import time
from typing import Any

from .explore import Progress, ProgressFn
from .fingerprint import UnstableStateError, collision_probability, validate_state
from .model import Model, ModelError
from .result import DEADLOCK, INVARIANT, OK, REFINEMENT, CheckResult, TraceStep


def simulate(
    model: Model[Any],
    *,
    behaviours: int,
    depth: int,
    seed: int = 0,
    deadlock: bool = True,
    refinement: bool = True,
    progress: ProgressFn | None = None,
    progress_interval: float = 5.0,
) -> CheckResult:
    """Run ``behaviours`` random walks of at most ``depth`` steps each."""
    if behaviours < 1 or depth < 1:
        raise ValueError("simulation needs at least one behaviour (--simulate N) and --depth >= 1")
    rng = random.Random(seed)
    actions = list(model.actions())
    invariants = list(model.invariants().items())
    ref = model.refinement() if refinement else None
    res = CheckResult(model=model.name, params=dict(model.params), mode=f"simulate(seed={seed})",
                      deadlock_check=deadlock,
                      refinement_checked=ref.spec.name if ref else None)
    cov_d = [0] * len(actions)
    cov_g = [0] * len(actions)
    seen: set[int] = set()
    spec_cache: dict[Any, frozenset[Any]] = {}
    inits = list(model.init_states())
    if not inits:
        raise ModelError(f"model {model.name!r} has no initial state")
    spec_inits = frozenset(ref.spec.init_states()) if ref else frozenset()
    t0 = last = time.perf_counter()
    max_len = 0
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for b in range(behaviours):
            s = rng.choice(inits)
            res.generated += 1
            _validate(model, s)
            if hash(s) not in seen:
                seen.add(hash(s))
            path: list[tuple[str | None, dict[str, Any], str, Any]] = [(None, {}, "Initial predicate", s)]
            if ref and ref.mapping(s) not in spec_inits:
                return _finish(res, REFINEMENT, "initial state", path, model, ref, t0, seen,
                               actions, cov_d, cov_g, b + 1)
            bad = _violated(invariants, s)
            if bad:
                return _finish(res, INVARIANT, bad, path, model, ref, t0, seen, actions,
                               cov_d, cov_g, b + 1)
            for _ in range(depth):
                steps: list[tuple[int, Any, Any]] = []
                for ai, a in enumerate(actions):
                    try:
                        out = list(a.successors(s))
                    except Exception as exc:
                        raise ModelError(f"model {model.name!r}: action {a.name} raised "
                                         f"{type(exc).__name__}: {exc}, in state {s!r:.300}") from exc
                    cov_g[ai] += len(out)
                    steps.extend((ai, p, t) for p, t in out)
                res.generated += len(steps)
                if not steps:
                    if deadlock:
                        return _finish(res, DEADLOCK, "deadlock", path, model, ref, t0, seen,
                                       actions, cov_d, cov_g, b + 1)
                    break
                ai, params, t = rng.choice(steps)
                a = actions[ai]
                path.append((a.name, a.params_dict(params), a.describe(params), t))
                if ref:
                    ms, mt = ref.mapping(s), ref.mapping(t)
                    if mt != ms:
                        succ = spec_cache.get(ms)
                        if succ is None:
                            succ = spec_cache[ms] = frozenset(
                                x for sa in ref.spec.actions() for _p, x in sa.successors(ms))
                        if mt not in succ:
                            return _finish(res, REFINEMENT, a.name, path, model, ref, t0, seen,
                                           actions, cov_d, cov_g, b + 1)
                fp = hash(t)
                if fp not in seen:
                    seen.add(fp)
                    cov_d[ai] += 1
                bad = _violated(invariants, t)
                if bad:
                    return _finish(res, INVARIANT, bad, path, model, ref, t0, seen, actions,
                                   cov_d, cov_g, b + 1)
                s = t
            max_len = max(max_len, len(path))
            res.depth = max_len
            if progress is not None:
                now = time.perf_counter()
                if now - last >= progress_interval:
                    last = now
                    progress(Progress(now - t0, max_len, res.generated, len(seen), behaviours - b - 1))
        return _finish(res, OK, None, [], model, ref, t0, seen, actions, cov_d, cov_g, behaviours)
    finally:
        if gc_was:
            gc.enable()


def _validate(model: Model[Any], s: Any) -> None:
    try:
        validate_state(s)
    except UnstableStateError as exc:
        raise ModelError(f"model {model.name!r}: a state's {exc}") from exc


def _violated(invariants: list[tuple[str, Any]], s: Any) -> str | None:
    for name, inv in invariants:
        if not inv(s):
            return str(name)
    return None


def _finish(res: CheckResult, kind: str, name: str | None, path: list[Any], model: Model[Any],
            ref: Any, t0: float, seen: set[int], actions: list[Any], cov_d: list[int],
            cov_g: list[int], behaviours: int) -> CheckResult:
    res.result = kind
    res.violated = name
    res.message = {
        OK: "",
        INVARIANT: f"Invariant {name} is violated.",
        DEADLOCK: "Deadlock reached.",
        REFINEMENT: f"step {name} is not a step (or stutter) of {ref.spec.name if ref else ''}",
    }[kind]
    res.distinct = len(seen)
    res.behaviours = behaviours
    res.seconds = time.perf_counter() - t0
    res.collision_probability = collision_probability(res.distinct, res.generated)
    res.coverage = {a.name: [cov_d[i], cov_g[i]] for i, a in enumerate(actions)}
    res.depth = max(res.depth, len(path))
    res.trace = [
        TraceStep(action=an, params=pp, label=label, state=st,
                  variables=dict(model.variables(st)),
                  spec_variables=dict(ref.spec.variables(ref.mapping(st))) if ref else None)
        for an, pp, label, st in path
    ]
    return res

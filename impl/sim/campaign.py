"""Simulator campaigns: many seeded runs, each trace checked, a failing schedule shrunk and kept.

:func:`run_campaign` draws ``runs`` schedules from ``random.Random(seed)``, simulates each with
the planted ``bugs`` and hands its trace to ``check``, a function supplied by the caller (the
checks live in ``refinement_tests/sim_checks.py``: ``impl`` does not import the checker). On a
violation it shrinks the schedule (:func:`~.schedule.shrink`: fewer faults, fewer calls, a
quieter network, as long as a violation remains), writes the shrunk run's trace as NDJSON for
replay, and (by default) stops. The result carries the numbers ``wormspace refine`` prints:
runs, operations, faults injected per kind, events checked, events checked per second, and the
violations as readable dicts.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.bugs import NO_BUGS, Bugs
from ..trace import write
from .schedule import FAULT_KINDS, Schedule, ScheduleError, random_schedule, shrink
from .simulator import SimRun, simulate


@dataclass
class CheckOutcome:
    """What a trace checker returns: its violations (readable dicts), events checked, time."""

    violations: list[dict[str, Any]]
    events: int
    seconds: float


#: A trace checker: the events of one run -> its outcome.
Checker = Callable[[Sequence[Mapping[str, Any]]], CheckOutcome]


@dataclass
class CampaignResult:
    """The numbers of a campaign (``as_json`` is the ``--json`` document of ``refine``)."""

    layer: str
    protocol: str
    seed: int
    runs: int = 0
    operations: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    events: int = 0
    check_seconds: float = 0.0
    sim_seconds: float = 0.0
    seconds: float = 0.0
    violations: list[dict[str, Any]] = field(default_factory=list)
    trace_path: str | None = None
    schedule: str | None = None  # the failing (shrunk) schedule, described

    @property
    def events_per_second(self) -> float:
        """Trace events checked per second of checking."""
        return self.events / self.check_seconds if self.check_seconds > 0 else 0.0

    @property
    def schedules_per_second(self) -> float:
        """Runs simulated per second of simulation."""
        return self.runs / self.sim_seconds if self.sim_seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "protocol": self.protocol, "seed": self.seed,
                "runs": self.runs, "operations": self.operations,
                "faults": dict(sorted(self.faults.items())), "events": self.events,
                "events_per_second": round(self.events_per_second, 1),
                "schedules_per_second": round(self.schedules_per_second, 1),
                "seconds": round(self.seconds, 3), "violations": self.violations,
                "trace": self.trace_path, "schedule": self.schedule}


def run_campaign(*, check: Checker, layer: str = "wor", protocol: str = "paxos", nodes: int = 3,
                 clients: int = 2, ops: int = 6, faults: Sequence[str] = FAULT_KINDS,
                 seed: int = 0, runs: int = 100, bugs: Bugs = NO_BUGS,
                 keep_dir: str | Path | None = None, shrink: bool = True,
                 stop_at_first: bool = True, max_seconds: float | None = None) -> CampaignResult:
    """Run a simulator campaign (see the module docstring).

    ``nodes`` acceptors and ``clients`` clients run ``ops`` calls per schedule with the fault
    kinds ``faults`` (``kill``, ``pause``, ``partition``, ``loss``, ``dup``, ``reorder``,
    ``delay``). ``keep_dir``: where a failing trace is written (default: the current
    directory). ``max_seconds`` ends the campaign early (the runs done so far count).
    """
    if layer != "wor":
        raise ValueError(f"the simulator runs the WOR layer only, not {layer!r}: use the real "
                         "cluster campaign for wos and the applications")
    if protocol != "paxos":
        raise ValueError(f"the simulator runs Paxos-WOR only, not {protocol!r}")
    if nodes < 1 or clients < 1 or ops < 0 or runs < 0:
        raise ValueError("nodes and clients must be >= 1, ops and runs >= 0")
    unknown = sorted(set(faults) - set(FAULT_KINDS))
    if unknown:
        raise ScheduleError(f"unknown fault kind(s) {', '.join(unknown)} "
                            f"(known: {', '.join(FAULT_KINDS)})")
    out = CampaignResult(layer, protocol, seed)
    rng = random.Random(seed)
    t0 = time.perf_counter()
    for _ in range(runs):
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
        schedule = random_schedule(rng, acceptors=nodes, clients=clients, ops=ops,
                                   faults=frozenset(faults))
        run = simulate(schedule, bugs)
        verdict = _account(out, run, check)
        if verdict.violations:
            _keep(out, schedule, run, verdict, bugs, check, keep_dir, shrink)
            if stop_at_first:
                break
    out.seconds = time.perf_counter() - t0
    return out


def _account(out: CampaignResult, run: SimRun, check: Checker) -> CheckOutcome:
    out.runs += 1
    out.operations += run.operations
    out.faults.update({k: v for k, v in run.faults.items() if k in FAULT_KINDS})
    out.sim_seconds += run.seconds
    verdict = check(run.events)
    out.events += verdict.events
    out.check_seconds += verdict.seconds
    return verdict


def _keep(out: CampaignResult, schedule: Schedule, run: SimRun, verdict: CheckOutcome,
          bugs: Bugs, check: Checker, keep_dir: str | Path | None, do_shrink: bool) -> None:
    """Shrink the failing schedule, and keep the smallest failing run's trace and violations."""
    if do_shrink:
        small = shrink(schedule, lambda s: bool(check(simulate(s, bugs).events).violations))
        if small != schedule:
            run = simulate(small, bugs)
            verdict = check(run.events)
            schedule = small
    directory = Path(keep_dir) if keep_dir is not None else Path.cwd()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"sim-{out.layer}-{out.protocol}-seed{schedule.seed}.ndjson"
    write(path, run.events)
    out.trace_path = str(path)
    out.schedule = schedule.describe()
    for v in verdict.violations:
        out.violations.append({**v, "schedule": out.schedule, "trace": str(path)})

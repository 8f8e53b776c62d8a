"""What a check returns: counts, verdict, coverage and the counterexample trace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Verdicts, as written in ``--json`` output.
OK = "ok"
INVARIANT = "invariant"
DEADLOCK = "deadlock"
REFINEMENT = "refinement"
LIVENESS = "liveness"

#: Exit codes, as TLC's: 0 no error, 11 deadlock, 12 safety (invariant or refinement),
#: 13 liveness; 150 a bad model, 151 bad parameters; 2 bad usage (argparse).
EXIT_CODES = {OK: 0, DEADLOCK: 11, INVARIANT: 12, REFINEMENT: 12, LIVENESS: 13}
EXIT_BAD_MODEL = 150
EXIT_BAD_PARAMS = 151
EXIT_USAGE = 2


@dataclass(frozen=True)
class TraceStep:
    """One state of a trace and the step that reached it (``action`` is ``None`` for an
    initial state). ``state`` is the raw model state; ``variables`` its readable view;
    ``spec_variables`` the refinement mapping's view, where a refinement was checked."""

    action: str | None
    params: dict[str, Any]
    label: str
    state: Any
    variables: dict[str, Any]
    spec_variables: dict[str, Any] | None = None


@dataclass
class CheckResult:
    """The outcome of exploring a model (exhaustively or by simulation)."""

    model: str
    params: dict[str, Any]
    result: str = OK
    violated: str | None = None
    message: str = ""
    distinct: int = 0
    generated: int = 0
    depth: int = 0
    left_on_queue: int = 0
    seconds: float = 0.0
    collision_probability: float = 0.0
    coverage: dict[str, list[int]] = field(default_factory=dict)
    trace: list[TraceStep] = field(default_factory=list)
    #: Number of new distinct states per BFS level (level 1 = initial states).
    levels: list[int] = field(default_factory=list)
    mode: str = "bfs"
    symmetry: bool = False
    deadlock_check: bool = True
    refinement_checked: str | None = None
    #: Simulation only: number of behaviours (random walks) run.
    behaviours: int = 0
    outdegree: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """The process exit code for this verdict."""
        return EXIT_CODES[self.result]

    @property
    def ok(self) -> bool:
        """True when nothing was violated."""
        return self.result == OK

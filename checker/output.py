"""TLC-style console output: the lines TLA+ users (and their scripts) already read."""

from __future__ import annotations

import datetime as _dt
import sys
from typing import IO

from .explore import Progress
from .result import DEADLOCK, INVARIANT, OK, REFINEMENT, CheckResult
from .traces import format_trace


def timestamp() -> str:
    """The current local time, as TLC prints it."""
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds):02d}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes:02d}min {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}h {minutes:02d}min"


class ProgressPrinter:
    """Prints ``Progress(D) at ...`` lines, or one self-rewriting line on a terminal."""

    def __init__(self, out: IO[str] = sys.stdout) -> None:
        self.out = out
        self.tty = hasattr(out, "isatty") and out.isatty()
        self._drawn = False

    def __call__(self, p: Progress) -> None:
        rate = p.generated / p.seconds * 60 if p.seconds > 0 else 0.0
        line = (
            f"Progress({p.depth}) at {timestamp()}: {p.generated:,} states generated "
            f"({rate:,.0f} s/min), {p.distinct:,} distinct states found, "
            f"{p.queue:,} states left on queue."
        )
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
            self._drawn = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        """End the rewritten line, if one was drawn."""
        if self._drawn:
            self.out.write("\n")
            self._drawn = False


def print_header(out: IO[str], name: str, params: dict[str, object], options: list[str]) -> None:
    """The opening lines of a run."""
    shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    opts = f" ({', '.join(options)})" if options else ""
    out.write(f"Model {name} with {shown}{opts}\n")
    out.write(f"Starting... ({timestamp()})\n")


def print_coverage(out: IO[str], r: CheckResult) -> None:
    """TLC's coverage block: ``<Action>: distinct:generated`` per action, never-enabled flagged."""
    if not r.coverage:
        return
    out.write(f"The coverage statistics at {timestamp()}\n")
    for name, (d, g) in r.coverage.items():
        flag = "  (never enabled)" if g == 0 else ""
        out.write(f"<{name}>: {d}:{g}{flag}\n")
    out.write("End of statistics.\n")


def print_result(out: IO[str], r: CheckResult, *, coverage: bool = True) -> None:
    """The verdict, counterexample, counts, collision estimate and coverage, as TLC prints them."""
    spec_name = r.refinement_checked
    if r.result == OK:
        out.write("Model checking completed. No error has been found.\n")
    else:
        if r.result == INVARIANT:
            out.write(f"Error: Invariant {r.violated} is violated.\n")
        elif r.result == DEADLOCK:
            out.write("Error: Deadlock reached.\n")
        elif r.result == REFINEMENT:
            out.write(f"Error: Refinement of {spec_name} is violated: {r.message}\n")
        else:
            out.write(f"Error: {r.message}\n")
        out.write("Error: The behavior up to this point is:\n")
        out.write(format_trace(r.trace, spec_name=spec_name))
    out.write("  Estimates of the probability that TLC did not check all reachable states\n")
    out.write("  because two distinct states had the same fingerprint:\n")
    out.write(f"  calculated (optimistic):  val = {r.collision_probability:.1E}\n")
    if r.mode != "bfs":
        out.write(f"{r.behaviours} behaviours simulated ({r.mode}).\n")
    out.write(
        f"{r.generated} states generated, {r.distinct} distinct states found, "
        f"{r.left_on_queue} states left on queue.\n"
    )
    out.write(f"The depth of the complete state graph search is {r.depth}.\n")
    if coverage:
        print_coverage(out, r)
    rate = r.generated / r.seconds if r.seconds > 0 else 0.0
    out.write(f"Finished in {_duration(r.seconds)} ({r.seconds:.2f} s, {rate:,.0f} states/s) "
              f"at ({timestamp()})\n")

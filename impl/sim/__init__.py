"""A deterministic, seeded simulator of a Paxos-WOR cluster, for refinement tests.

One process, one random generator, one virtual clock: the real sans-IO cores (``impl/core``:
the acceptor, the client ops, the planted bugs) run unchanged between a simulated network
(loss, duplication, reordering, delay, partitions) and simulated crashes, pauses and restarts,
and every node records the ``impl/trace.py`` events a real cluster records. The same
:class:`Schedule` gives the same trace, so a failing schedule is a replayable bug report, and
thousands of small schedules run per second.

* :mod:`.schedule` -- what a run does (workload, faults, network), random and shrinking;
* :mod:`.network` -- the virtual-time loop and the links;
* :mod:`.acceptor_node`, :mod:`.client` -- servers and clients around the cores;
* :mod:`.simulator` -- :func:`simulate`, one run;
* :mod:`.campaign` -- :func:`run_campaign`, many runs checked by a caller-supplied checker.

The simulator does not check anything itself (``impl`` does not import the checker): the
checks live in ``refinement_tests/sim_checks.py``.
"""

from .campaign import CampaignResult, CheckOutcome, run_campaign
from .schedule import (
    FAULT_KINDS,
    OP_KINDS,
    FaultSpec,
    OpSpec,
    Schedule,
    ScheduleError,
    random_schedule,
    shrink,
)
from .simulator import SimRun, simulate

__all__ = [
    "FAULT_KINDS",
    "OP_KINDS",
    "CampaignResult",
    "CheckOutcome",
    "FaultSpec",
    "OpSpec",
    "Schedule",
    "ScheduleError",
    "SimRun",
    "random_schedule",
    "run_campaign",
    "shrink",
    "simulate",
]

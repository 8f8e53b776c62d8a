"""What one simulated run does: a workload, the faults, the network's misbehaviour, a seed.

A :class:`Schedule` is plain data, so it can be printed, stored, generated at random
(:func:`random_schedule`) or by Hypothesis, and shrunk (:func:`shrink`): the fewer ops and
faults a failing schedule keeps, the shorter the trace a person has to read.

* ``ops``: per client, the calls it makes one after another (the WormSpace client calls:
  ``write`` = capture then write, retried while preempted; ``capture`` then ``write_cid`` with
  that capture id; ``unsafe_write`` at ballot 0; ``read``; ``trim`` of a segment;
  ``write_range`` of two offsets). Two normalisations keep any list meaningful, so a shrunk
  list stays a valid workload: a ``write_cid`` whose client does not hold a capture of that
  address is a plain ``write``, and only the first ``unsafe_write`` of an address is unsafe (the
  unsafe write is correct only under the application's guarantee of one per register).
* ``faults``: acceptor crashes (``kill``, restarted after ``duration``), pauses (``pause``,
  SIGSTOP-like: requests queue up) and partitions (``partition``: the acceptor is cut off from
  every client) at virtual times.
* ``loss``, ``dup``, ``delay`` (probabilities per message) and ``reorder`` (random per-message
  latency, so messages overtake each other): the network. Every random choice of a run comes
  from ``random.Random(seed)``, so the same schedule gives the same trace.

Times are virtual microseconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

#: The client calls a workload may contain.
OP_KINDS = ("write", "capture", "write_cid", "unsafe_write", "read", "trim", "write_range")
#: Scheduled acceptor faults.
NODE_FAULTS = ("kill", "pause", "partition")
#: Network faults, drawn per message.
NET_FAULTS = ("loss", "dup", "reorder", "delay")
FAULT_KINDS = NODE_FAULTS + NET_FAULTS

#: Offsets per segment in the simulated address space; segment 1 is the one workloads trim.
SEGMENT_SIZE = 4


class ScheduleError(ValueError):
    """A schedule names a client, acceptor, address or kind that does not exist."""


@dataclass(frozen=True)
class OpSpec:
    """One client call: client ``client`` (1-based) waits ``pause`` µs, then calls ``kind`` on
    ``address`` (for ``trim``: the address's segment; for ``write_range``: ``address`` and the
    next offset)."""

    client: int
    kind: str
    address: int
    pause: int = 0

    def show(self) -> str:
        where = f"seg {self.address // SEGMENT_SIZE}" if self.kind == "trim" else f"@{self.address}"
        return f"c{self.client} {self.kind} {where}" + (f" after {self.pause}us" if self.pause else "")


@dataclass(frozen=True)
class FaultSpec:
    """Acceptor ``target`` (0-based) suffers ``kind`` at ``at`` µs for ``duration`` µs."""

    at: int
    kind: str
    target: int
    duration: int

    def show(self) -> str:
        return f"{self.kind} s{self.target} at {self.at}us for {self.duration}us"


@dataclass(frozen=True)
class Schedule:
    """One run: see the module docstring."""

    seed: int
    acceptors: int = 3
    clients: int = 2
    ops: tuple[OpSpec, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    loss: float = 0.0
    dup: float = 0.0
    delay: float = 0.0
    reorder: bool = True
    final_reads: bool = True

    def __post_init__(self) -> None:
        if self.acceptors < 1 or self.clients < 1:
            raise ScheduleError(f"need at least one acceptor and one client, got "
                                f"{self.acceptors} and {self.clients}")
        for p, name in ((self.loss, "loss"), (self.dup, "dup"), (self.delay, "delay")):
            if not 0.0 <= p < 1.0:
                raise ScheduleError(f"{name} must be a probability in [0, 1), got {p}")
        for o in self.ops:
            if o.kind not in OP_KINDS:
                raise ScheduleError(f"unknown op kind {o.kind!r} (known: {', '.join(OP_KINDS)})")
            if not 1 <= o.client <= self.clients:
                raise ScheduleError(f"op {o.show()!r}: no client c{o.client} "
                                    f"(clients are c1..c{self.clients})")
            if o.address < 0 or o.pause < 0:
                raise ScheduleError(f"op {o.show()!r}: address and pause must be >= 0")
            if o.kind == "write_range" and o.address % SEGMENT_SIZE == SEGMENT_SIZE - 1:
                raise ScheduleError(f"op {o.show()!r}: a two-offset range must fit in its segment")
        for f in self.faults:
            if f.kind not in NODE_FAULTS:
                raise ScheduleError(f"unknown fault {f.kind!r} (scheduled faults: "
                                    f"{', '.join(NODE_FAULTS)})")
            if not 0 <= f.target < self.acceptors:
                raise ScheduleError(f"fault {f.show()!r}: no acceptor s{f.target}")
            if f.at < 0 or f.duration <= 0:
                raise ScheduleError(f"fault {f.show()!r}: needs at >= 0 and duration > 0")

    def describe(self) -> str:
        """The schedule in a few readable lines."""
        net = [f"{k}={getattr(self, k):g}" for k in ("loss", "dup", "delay") if getattr(self, k)]
        lines = [f"seed {self.seed}: {self.acceptors} acceptors, {self.clients} clients"
                 + (f", {', '.join(net)}" if net else "") + (", reorder" if self.reorder else "")]
        lines += ["  op    " + o.show() for o in self.ops]
        lines += ["  fault " + f.show() for f in self.faults]
        return "\n".join(lines)


def random_schedule(rng: random.Random, *, acceptors: int = 3, clients: int = 2, ops: int = 6,
                    faults: frozenset[str] | set[str] = frozenset(FAULT_KINDS),
                    kinds: tuple[str, ...] = OP_KINDS, addresses: tuple[int, ...] = (0, 1, 4),
                    node_faults: int = 2) -> Schedule:
    """A random schedule of ``ops`` calls spread over ``clients``, with the fault kinds named
    in ``faults`` (see :data:`FAULT_KINDS`) enabled."""
    unknown = set(faults) - set(FAULT_KINDS)
    if unknown:
        raise ScheduleError(f"unknown fault kind(s) {sorted(unknown)} (known: {', '.join(FAULT_KINDS)})")
    bad = set(kinds) - set(OP_KINDS)
    if bad:
        raise ScheduleError(f"unknown op kind(s) {sorted(bad)} (known: {', '.join(OP_KINDS)})")
    out: list[OpSpec] = []
    for _ in range(ops):
        c = rng.randint(1, clients)
        kind = rng.choice(kinds)
        addr = rng.choice(addresses)
        if kind == "write_range" and addr % SEGMENT_SIZE == SEGMENT_SIZE - 1:
            addr -= 1
        out.append(OpSpec(c, kind, addr, rng.choice((0, 0, rng.randint(0, 3000)))))
        if kind == "capture" and rng.random() < 0.7:  # usually followed by its write
            out.append(OpSpec(c, "write_cid", addr, rng.randint(0, 500)))
    node = [k for k in NODE_FAULTS if k in faults]
    scheduled = [FaultSpec(rng.randint(0, 6000), rng.choice(node), rng.randrange(acceptors),
                           rng.randint(200, 8000))
                 for _ in range(rng.randint(0, node_faults) if node else 0)]
    return Schedule(
        seed=rng.getrandbits(32), acceptors=acceptors, clients=clients, ops=tuple(out),
        faults=tuple(sorted(scheduled, key=lambda f: f.at)),
        loss=rng.choice((0.0, 0.05, 0.15)) if "loss" in faults else 0.0,
        dup=rng.choice((0.0, 0.05, 0.15)) if "dup" in faults else 0.0,
        delay=rng.choice((0.0, 0.05)) if "delay" in faults else 0.0,
        reorder="reorder" in faults)


def shrink(schedule: Schedule, fails: Callable[[Schedule], bool], *, budget: int = 200) -> Schedule:
    """A smaller schedule that still ``fails``: drop faults, then ops, then network faults,
    one at a time while it keeps failing (greedy delta debugging, at most ``budget`` runs)."""
    best = schedule
    runs = 0

    def attempt(candidate: Schedule) -> bool:
        nonlocal best, runs
        if runs >= budget:
            return False
        runs += 1
        if fails(candidate):
            best = candidate
            return True
        return False

    progress = True
    while progress and runs < budget:
        progress = False
        for i in reversed(range(len(best.faults))):
            if i < len(best.faults):
                progress |= attempt(replace(best, faults=best.faults[:i] + best.faults[i + 1:]))
        for i in reversed(range(len(best.ops))):
            if i < len(best.ops):
                progress |= attempt(replace(best, ops=best.ops[:i] + best.ops[i + 1:]))
        if best.loss:
            progress |= attempt(replace(best, loss=0.0))
        if best.dup:
            progress |= attempt(replace(best, dup=0.0))
        if best.delay:
            progress |= attempt(replace(best, delay=0.0))
        if best.reorder:
            progress |= attempt(replace(best, reorder=False))
    return best

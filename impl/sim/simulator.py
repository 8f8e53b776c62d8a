"""One deterministic simulated run of a Paxos-WOR cluster: :func:`simulate`.

The run wires ``schedule.acceptors`` :class:`~.acceptor_node.AcceptorNode` servers (``s0``...)
and ``schedule.clients`` :class:`~.client.SimClient` clients (``c1``...) through one
:class:`~.network.Network`, injects the scheduled faults, runs every client's calls, then (with
``final_reads``) ends every fault and has ``c1`` read each address the workload touched, as
Jepsen's final reads do: a value lost or changed late shows up there.

Everything a run does comes from ``random.Random(schedule.seed)`` and the virtual clock, so the
same schedule and bugs give an identical trace. All nodes record into one list, in the order
things happened; events carry virtual nanoseconds (``impl/trace.py`` schema). Messages are
converted to their plain form once per message object (a request sent to three acceptors, and
received by them, shares one converted form).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..core.bugs import NO_BUGS, Bugs
from ..core.codec import TAGS
from ..core.messages import REPLY_TYPES, REQUEST_TYPES, Accepted, Promise, WorId
from ..trace import Recorder, message
from .acceptor_node import AcceptorNode
from .client import SimClient
from .network import Loop, Network
from .schedule import OpSpec, Schedule

#: A run that has not finished after this much virtual time is cut (µs): a liveness bug.
TIME_LIMIT = 120_000_000


@dataclass
class SimRun:
    """The outcome of one run: the trace and what happened in it."""

    schedule: Schedule
    bugs: Bugs
    events: list[dict[str, Any]]
    faults: Counter[str] = field(default_factory=Counter)
    operations: int = 0
    messages: int = 0
    virtual_us: int = 0
    finished: bool = True
    seconds: float = 0.0


class _Plain:
    """Plain (trace) form of messages, converted once per message object.

    The same form as :func:`wormspace.impl.trace.message` (a test compares them), built by a
    converter compiled per message class from its field types, as the codec reads them: about
    twice as fast as the codec's generic loop plus ``trace.plain``, and conversion is most of the
    cost of tracing a run.
    """

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Any, dict[str, Any]]] = {}

    def __call__(self, msg: Any) -> dict[str, Any]:
        hit = self._cache.get(id(msg))
        if hit is not None and hit[0] is msg:
            return hit[1]
        conv = _CONVERTERS.get(type(msg))
        out = conv(msg) if conv is not None else message(msg)
        self._cache[id(msg)] = (msg, out)  # keeps msg alive, so its id is not reused
        return out


def _skip(msg: Any) -> None:
    return None  # recording is off: the recorders ignore the message anyway


def _wor(w: WorId) -> list[Any]:
    return [w.segment, w.kind.value, w.offset]


_FIELD: dict[str, Callable[[Any], Any] | None] = {
    "int": None,
    "bytes": bytes.hex,
    "bytes | None": lambda v: None if v is None else v.hex(),
    "Ballot": list,
    "Ballot | None": lambda v: None if v is None else list(v),
    "WorId": _wor,
    "Status": lambda s: s.value,
    "tuple[bytes, ...]": lambda vs: [v.hex() for v in vs],
    "tuple[Promise, ...]": lambda rs: [_CONVERTERS[Promise](r) for r in rs],
    "tuple[Accepted, ...]": lambda rs: [_CONVERTERS[Accepted](r) for r in rs],
}


def _converter(cls: type) -> Callable[[Any], dict[str, Any]] | None:
    tag = TAGS[cls]
    try:
        conv = [(f.name, _FIELD[str(f.type)]) for f in fields(cls)]
    except KeyError:
        return None  # a field type this table does not know: the generic path

    def to_plain(msg: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"t": tag}
        for name, fn in conv:
            v = getattr(msg, name)
            out[name] = v if fn is None else fn(v)
        return out

    return to_plain


_CONVERTERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    cls: c for cls in (*REQUEST_TYPES, *REPLY_TYPES) if (c := _converter(cls)) is not None}


def simulate(schedule: Schedule, bugs: Bugs = NO_BUGS, *, record: bool = True) -> SimRun:
    """Run ``schedule`` with the planted ``bugs``; see the module docstring."""
    return Simulator(schedule, bugs, record=record).run()


class Simulator:
    """The wiring of one run (use :func:`simulate`)."""

    def __init__(self, schedule: Schedule, bugs: Bugs = NO_BUGS, *, record: bool = True) -> None:
        self.schedule, self.bugs = schedule, bugs
        self.rng = random.Random(schedule.seed)
        self.loop = Loop()
        self.events: list[dict[str, Any]] = []
        sink = self.events if record else None
        clock = self.loop.clock_ns
        self.counts: Counter[str] = Counter()
        self.fault_rec = Recorder("sim", sink, clock=clock)
        self.net = Network(self.loop, self.rng, self.fault_rec, self.counts, loss=schedule.loss,
                           dup=schedule.dup, delay=schedule.delay, reorder=schedule.reorder)
        plain: Callable[[Any], Any] = _Plain() if record else _skip
        self.acceptors = [
            AcceptorNode(i, loop=self.loop, net=self.net, rec=Recorder(f"s{i}", sink, clock=clock),
                         faults=self.fault_rec, counts=self.counts, bugs=bugs, plain=plain,
                         rng_int=self.rng.randint)
            for i in range(schedule.acceptors)]
        unsafe_used: set[int] = set()
        self.clients = [
            SimClient(c, [o for o in schedule.ops if o.client == c], loop=self.loop, net=self.net,
                      rec=Recorder(f"c{c}", sink, clock=clock), acceptors=self.acceptors,
                      rng=self.rng, bugs=bugs, plain=plain, unsafe_used=unsafe_used,
                      on_idle=self._on_idle)
            for c in range(1, schedule.clients + 1)]
        self._final = False
        self._started = False

    def run(self) -> SimRun:
        t0 = time.perf_counter()
        for f in self.schedule.faults:
            self.loop.at(f.at, self._fault_start, f.kind, f.target, f.duration)
        for c in self.clients:
            c.start()
        self._started = True
        self._on_idle(self.clients[0])
        finished = self.loop.run(TIME_LIMIT)
        return SimRun(self.schedule, self.bugs, self.events, self.counts,
                      operations=sum(c.completed for c in self.clients),
                      messages=self.net.messages, virtual_us=self.loop.now,
                      finished=finished and self.loop.stopped,
                      seconds=time.perf_counter() - t0)

    # -- faults -------------------------------------------------------------------------------

    def _fault_start(self, kind: str, target: int, duration: int) -> None:
        if self._final:
            return
        node = self.acceptors[target]
        if kind == "kill" and node.kill():
            self.loop.after(duration, self._fault_end, kind, target)
        elif kind == "pause" and node.pause():
            self.loop.after(duration, self._fault_end, kind, target)
        elif kind == "partition" and node.name not in self.net.cut:
            self.net.cut.add(node.name)
            self.counts["partition"] += 1
            self.fault_rec.fault("partition", node.name, side="all clients")
            self.loop.after(duration, self._fault_end, kind, target)

    def _fault_end(self, kind: str, target: int) -> None:
        node = self.acceptors[target]
        if kind == "kill":
            node.restart()
        elif kind == "pause":
            node.resume()
        elif node.name in self.net.cut:
            self.net.cut.discard(node.name)
            self.fault_rec.fault("heal", node.name)

    # -- the end of the workload ---------------------------------------------------------------

    def _on_idle(self, client: SimClient) -> None:
        if not self._started or any(c.busy for c in self.clients):
            return
        if self._final or not self.schedule.final_reads:
            self.loop.stop()
            return
        self._final = True
        for node in self.acceptors:  # every fault ends before the final reads
            self._fault_end("kill", node.index)
            self._fault_end("pause", node.index)
            self._fault_end("partition", node.index)
        touched = sorted({a for o in self.schedule.ops
                          for a in ((o.address, o.address + 1) if o.kind == "write_range"
                                    else () if o.kind == "trim" else (o.address,))})
        reads = [OpSpec(1, "read", a) for a in touched]
        if not reads:
            self.loop.stop()
            return
        self.clients[0].add(reads)


__all__ = ["SimRun", "Simulator", "simulate"]

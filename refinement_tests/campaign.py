"""Fault campaigns against a real local cluster, one per layer, and the checks of their traces.

A run starts a real cluster (``local_cluster``: server processes on loopback, fsync'd logs) with
tracing on, puts a :class:`~wormspace.impl.net.faultproxy.FaultProxy` in front of every server,
and drives a layer's workload from several concurrent clients in this process while a fault
injector works through seeded episodes of the faults asked for:

=============  ===========================================================================
fault          episode
=============  ===========================================================================
``kill``       ``kill -9`` a server, restart it a little later (its fsync'd state survives)
``tear``       ``kill -9``, leave a torn append at the tail of its log, restart (detected)
``pause``      SIGSTOP a server, SIGCONT it later
``partition``  cut one server off from the clients (frames dropped, or connections refused);
               now and then two of three, so calls time out with unknown outcomes
``split``      (``wor`` layer) scripted partitions around one fresh WOR: a write reaches one
               replica only and times out, then another write and a read go through two
               other majorities, in either order: the case for adoption and read repair
``loss``       ``dup``, ``reorder``, ``delay``: per-frame faults on every proxy for a while
``stall``      (``wormpaxos``, ``wormlog``) a leader or sequencer stalls for up to 80 ms
               before it captures a segment, half the time: between ``alloc`` and the
               capture of its own segment, a successor elected above may take it over
=============  ===========================================================================

After the workload the faults are healed (killed servers restarted, paused ones resumed), a
final phase reads back what the layer holds, the cluster stops, and the merged trace (servers,
clients, applications, injector) is checked. The checks are in :mod:`.trace_checks`.

:func:`run_campaign` runs a campaign and returns a :class:`CampaignResult`; :func:`check_trace`
checks a recorded trace (``wormspace trace-check``). A run's trace directory is kept when it
shows a violation (or when asked), and deleted otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wormspace.impl import trace
from wormspace.impl.core.bugs import Bugs
from wormspace.impl.net import local_cluster as lc
from wormspace.impl.net.client import ClientError, WormSpaceClient
from wormspace.impl.net.cluster import ClusterConfig
from wormspace.impl.net.faultproxy import FaultProxy, proxy_cluster
from wormspace.impl.net.server import bugs_from_names
from wormspace.impl.trace import Recorder

from .trace_checks import (
    MODELS,
    CampaignError,
    Violation,
    check_paxos_model,
    check_trace,
    read_trace_files,
)

LAYERS = ("wor", "wos", "wormpaxos", "wormlog", "wormtx")
FAULTS = ("kill", "tear", "pause", "partition", "split", "loss", "dup", "reorder", "delay",
          "stall")
#: Planted bugs that live in the servers (switched on with ``--bug``) and in the clients.
SERVER_BUGS = ("serve_trimmed", "ack_before_persist")
CLIENT_BUGS = ("arbitrary_adopt", "read_without_repair", "reuse_capture_id")


# -- results ---------------------------------------------------------------------------------------




@dataclass
class RunReport:
    """One run of a campaign: what it did and what its trace showed."""

    seed: int
    operations: int = 0
    stuck: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    events: int = 0
    check_seconds: float = 0.0
    seconds: float = 0.0
    violations: list[Violation] = field(default_factory=list)
    trace_dir: str | None = None


@dataclass
class CampaignResult:
    """A campaign's totals (``to_json`` has the keys of ``wormspace refine --json``)."""

    layer: str
    runs: int = 0
    operations: int = 0
    stuck: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    events: int = 0
    check_seconds: float = 0.0
    seconds: float = 0.0
    violations: list[tuple[RunReport, Violation]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        """Trace events checked per second of checking."""
        return self.events / self.check_seconds if self.check_seconds > 0 else 0.0

    def add(self, run: RunReport) -> None:
        """Count one run in."""
        self.runs += 1
        self.operations += run.operations
        self.stuck += run.stuck
        self.faults.update(run.faults)
        self.events += run.events
        self.check_seconds += run.check_seconds
        self.seconds += run.seconds
        self.violations += [(run, v) for v in run.violations]
        if run.trace_dir is not None:
            self.kept.append(run.trace_dir)

    def to_json(self) -> dict[str, Any]:
        """The result document."""
        return {
            "layer": self.layer, "runs": self.runs, "operations": self.operations,
            "stuck": self.stuck, "faults": dict(sorted(self.faults.items())),
            "events": self.events,
            "events_per_second": round(self.events_per_second, 1),
            "seconds": round(self.seconds, 2),
            "violations": [{"seed": r.seed, "check": v.check, "message": v.message,
                            "trace": r.trace_dir, "events": [dict(e) for e in v.events[:20]]}
                           for r, v in self.violations],
            "kept": self.kept,
        }


# -- options ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """A campaign: ``runs`` runs of about ``ops`` operations each, seeds ``seed``, ``seed+1``...

    ``faults``: names from :data:`FAULTS`; ``bugs``: planted bugs to switch on (servers' and
    clients'); ``keep``: keep every run's trace under this directory (else only failing runs'
    traces are kept, in a temporary directory that is printed); ``timeout``: the clients'
    per-attempt timeout in seconds.
    """

    layer: str = "wor"
    protocol: str = "paxos"
    nodes: int = 3
    ops: int = 150
    faults: tuple[str, ...] = ()
    seed: int = 0
    runs: int = 1
    clients: int = 3
    bugs: tuple[str, ...] = ()
    keep: str | None = None
    timeout: float = 0.15
    segment_size: int = 16

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise CampaignError(f"unknown layer {self.layer!r} (layers: {', '.join(LAYERS)})")
        if self.protocol not in ("paxos", "chain"):
            raise CampaignError(f"protocol must be paxos or chain, got {self.protocol!r}")
        bad = [f for f in self.faults if f not in FAULTS]
        if bad:
            raise CampaignError(f"unknown fault(s) {', '.join(bad)} (faults: {', '.join(FAULTS)})")
        bad = [b for b in self.bugs if b not in SERVER_BUGS + CLIENT_BUGS]
        if bad:
            raise CampaignError(f"unknown planted bug(s) {', '.join(bad)} "
                                f"(bugs: {', '.join(SERVER_BUGS + CLIENT_BUGS)})")
        for name, low in (("nodes", 1), ("ops", 1), ("runs", 1), ("clients", 1),
                          ("segment_size", 4)):
            if type(getattr(self, name)) is not int or getattr(self, name) < low:
                raise CampaignError(f"{name} must be an integer >= {low}, "
                                    f"got {getattr(self, name)!r}")
        if not self.timeout > 0:
            raise CampaignError(f"timeout must be positive, got {self.timeout!r}")

    @property
    def server_bugs(self) -> list[str]:
        return [b for b in self.bugs if b in SERVER_BUGS]

    @property
    def client_bugs(self) -> Bugs:
        return bugs_from_names(b for b in self.bugs if b in CLIENT_BUGS)


# -- running a campaign ----------------------------------------------------------------------------


def run_campaign(options: Options, *, progress: Callable[[RunReport], None] | None = None
                 ) -> CampaignResult:
    """Run ``options.runs`` runs (seeds ``seed, seed+1, ...``) and check each run's trace."""
    result = CampaignResult(options.layer)
    keep_root = Path(options.keep) if options.keep else None
    for r in range(options.runs):
        seed = options.seed + r
        work = Path(tempfile.mkdtemp(prefix=f"wormspace-refine-{options.layer}-{seed}-"))
        run = RunReport(seed)
        t0 = time.perf_counter()
        try:
            run.stuck = asyncio.run(_run(options, seed, work))
            _check_run(options, work / "trace", run)
        finally:
            run.seconds = time.perf_counter() - t0
        if keep_root is not None:
            dest = keep_root / f"run-{seed}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.move(str(work), dest)
            run.trace_dir = str(dest / "trace")
        elif run.violations:
            run.trace_dir = str(work / "trace")
        else:
            shutil.rmtree(work, ignore_errors=True)
        result.add(run)
        if progress is not None:
            progress(run)
    return result


def _check_run(options: Options, trace_dir: Path, run: RunReport) -> None:
    files = sorted(trace_dir.glob("*.ndjson"))
    # Servers killed mid-write may have left a torn last line: the restarted server cut it,
    # but a server killed last keeps it.
    events = trace.read_all(files, allow_torn_tail=True)
    t0 = time.perf_counter()
    run.violations = check_trace(events, options.layer, protocol=options.protocol,
                                 servers=options.nodes, segment_size=options.segment_size)
    if options.layer == "wor" and options.protocol == "paxos":
        run.violations += check_paxos_model(events)
    run.check_seconds = time.perf_counter() - t0
    run.events = len(events)
    run.operations = sum(1 for e in events if e["kind"] == "invoke")
    for ev in events:
        if ev["kind"] == "fault" and ev["fault"] not in ("heal", "resume", "restart"):
            run.faults[ev["fault"]] += 1
    _describe(options, run.seed, trace_dir, [str(v) for v in run.violations])


def _describe(options: Options, seed: int, trace_dir: Path, violations: list[str] | None) -> None:
    """``campaign.json`` beside the trace: what ``trace-check`` needs to check it again."""
    (trace_dir / "campaign.json").write_text(json.dumps({
        "layer": options.layer, "protocol": options.protocol, "nodes": options.nodes,
        "segment_size": options.segment_size, "seed": seed, "faults": list(options.faults),
        "bugs": list(options.bugs), "violations": violations}, indent=1) + "\n")


class _Run:
    """One run's cluster, proxies, fault injector and clients."""

    def __init__(self, options: Options, seed: int, work: Path) -> None:
        self.o, self.seed = options, seed
        self.rng = random.Random(seed)
        self.work, self.trace_dir = work, work / "trace"
        self.trace_dir.mkdir(parents=True)
        _describe(options, seed, self.trace_dir, None)
        self.rec = Recorder("campaign", self.trace_dir / "campaign.ndjson")
        self.config: ClusterConfig = lc.create(str(work / "cluster"), options.nodes,
                                               options.protocol,
                                               segment_size=options.segment_size)
        self.client_config: ClusterConfig = self.config
        self.proxies: dict[str, FaultProxy] = {}
        self.clients: list[WormSpaceClient] = []
        self.down: set[str] = set()  # killed, not yet restarted
        self.paused: set[str] = set()
        self._stop = asyncio.Event()
        self._injector: asyncio.Task[None] | None = None
        self.stuck = 0  # calls given up after CALL_DEADLINE
        self.fault_lock = asyncio.Lock()  # one fault episode (or scripted split) at a time

    async def faults_on(self) -> None:
        """Start the fault injector (workloads call this once their setup is done)."""
        if self._injector is None:
            self._injector = asyncio.get_running_loop().create_task(self.inject())

    def client(self, node: str, **options: Any) -> WormSpaceClient:
        """A traced client (through the proxies) named ``node``."""
        settings: dict[str, Any] = {"timeout": self.o.timeout, "retries": 3, **options}
        c = WormSpaceClient(self.client_config, client_id=self.rng.randrange(1, 2**62),
                            bugs=self.o.client_bugs,
                            recorder=Recorder(node, self.trace_dir / f"{node}.ndjson"),
                            node=node, **settings)
        self.clients.append(c)
        return c

    async def start(self) -> None:
        await asyncio.to_thread(lc.up, self.config, trace=str(self.trace_dir),
                                bugs=self.o.server_bugs)
        self.proxies, self.client_config = await proxy_cluster(
            self.config, rng=random.Random(self.rng.random()), recorder=self.rec)

    async def close(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):
                await c.close()
                c.rec.close()
        for p in self.proxies.values():
            await p.close()
        for sid in list(self.paused):
            with contextlib.suppress(lc.ClusterError):
                lc.resume(self.config, sid)
        await asyncio.to_thread(lc.down, self.config, 3.0)
        self.rec.close()

    # -- faults ----------------------------------------------------------------------------------

    async def inject(self) -> None:
        """Fault episodes until :meth:`quiesce`: one at a time, each healed before the next
        (``split`` and ``stall`` are the workloads' instead). The first begins at once: a
        short workload may be over before a pause of even 0.05 s, and would then have run
        with no fault at all."""
        kinds = [k for k in self.o.faults if k not in ("split", "stall")]
        if not kinds:
            return
        while not self._stop.is_set():
            kind = self.rng.choice(kinds)
            async with self.fault_lock:
                await self._episode(kind, self.rng.uniform(0.2, 0.6))
            if await self._sleep(self.rng.uniform(0.05, 0.25)):
                return

    async def _sleep(self, seconds: float) -> bool:
        """Sleep; True if the run is quiescing."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def _episode(self, kind: str, length: float) -> None:
        ids = list(self.config.servers)
        sid = self.rng.choice(ids)
        if kind in ("kill", "tear"):
            await asyncio.to_thread(lc.kill, self.config, sid)
            self.down.add(sid)
            self.rec.fault("kill", sid)
            await self._sleep(length)
            if kind == "tear":
                torn = lc.tear(self.config, sid, self.rng)
                self.rec.fault("tear", sid, **torn)
            await self._restart(sid)
        elif kind == "pause":
            lc.pause(self.config, sid)
            self.paused.add(sid)
            self.rec.fault("pause", sid)
            await self._sleep(length)
            lc.resume(self.config, sid)
            self.paused.discard(sid)
            self.rec.fault("resume", sid)
        elif kind == "partition":
            cut = [sid]
            if len(ids) >= 3 and self.rng.random() < 0.2:  # a majority: calls time out
                cut = self.rng.sample(ids, len(ids) // 2 + 1)
            mode = self.rng.choice(("drop", "refuse"))
            for s in cut:
                self.proxies[s].partition(mode)
            await self._sleep(min(length, 0.4) if len(cut) > 1 else length)
            for s in cut:
                self.proxies[s].heal()
        else:
            setting = {"loss": {"loss": 0.15}, "dup": {"dup": 0.25},
                       "reorder": {"reorder": 0.3, "delay": (0.0, 0.002)},
                       "delay": {"delay": (0.0, 0.03)}}[kind]
            for p in self.proxies.values():
                p.set_faults(**setting)  # type: ignore[arg-type]
            await self._sleep(length)
            for p in self.proxies.values():
                p.clear()

    async def _restart(self, sid: str) -> None:
        await asyncio.to_thread(lc.restart, self.config, sid, trace=str(self.trace_dir),
                                bugs=self.o.server_bugs)
        self.down.discard(sid)
        self.rec.fault("restart", sid)

    async def quiesce(self) -> None:
        """Stop injecting (the running episode heals what it did), then heal everything that
        is left: partitions, message faults, paused and killed servers."""
        self._stop.set()
        if self._injector is not None:
            await self._injector  # raises if an episode failed (a server that cannot restart)
        for p in self.proxies.values():
            p.clear()
            p.heal()
        for sid in list(self.paused):
            lc.resume(self.config, sid)
            self.paused.discard(sid)
            self.rec.fault("resume", sid)
        for sid in list(self.down):
            await self._restart(sid)


async def _run(options: Options, seed: int, work: Path) -> int:
    """One run: returns how many calls were given up as stuck."""
    run = _Run(options, seed, work)
    try:
        await run.start()
        await WORKLOADS[options.layer](run)
        await run.quiesce()
        return run.stuck
    finally:
        if run._injector is not None and not run._injector.done():
            run._injector.cancel()
        await run.close()


#: Seconds a workload call may take before the campaign gives up on it (it is then recorded
#: as TIMEOUT and counted as stuck: a liveness problem, not a safety violation).
CALL_DEADLINE = 10.0


async def _call(run: _Run, call: Awaitable[Any]) -> Any:
    """Run a client call whose failure is part of the campaign (it is in the trace already);
    returns the result or the exception."""
    try:
        return await asyncio.wait_for(call, CALL_DEADLINE)
    except TimeoutError as exc:
        run.stuck += 1
        return exc
    except Exception as exc:  # ClientError and the applications' (NotLeader, TxError...)
        return exc


@contextlib.contextmanager
def _stalls(run: _Run, module: Any) -> Iterator[None]:
    """The ``stall`` fault: while the block runs, ``module.capture_offsets`` (the application's
    segment capture) waits 5-80 ms first, half the time, and records it as a fault. That opens
    the window between a leader's (or sequencer's) ``alloc`` and its capture, in which a
    successor elected above may take the segment over. Without ``stall``, nothing changes."""
    if "stall" not in run.o.faults:
        yield
        return
    real = module.capture_offsets
    rng = random.Random(run.rng.random())

    async def stalling(client: WormSpaceClient, segment: int, lo: int, hi: int) -> Any:
        if rng.random() < 0.5:
            pause = rng.uniform(0.005, 0.08)
            run.rec.fault("stall", client.node, segment=segment, offsets=[lo, hi],
                          seconds=round(pause, 4))
            await asyncio.sleep(pause)
        return await real(client, segment, lo, hi)

    module.capture_offsets = stalling
    try:
        yield
    finally:
        module.capture_offsets = real


async def _spread(names: Sequence[str], one: Callable[[int, str], Awaitable[None]]) -> None:
    """Run ``one(i, name)`` concurrently for every name."""
    await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))


# -- workloads -------------------------------------------------------------------------------------


async def _wor_workload(run: _Run) -> None:
    """The WORs of one segment, raced for in rounds: at the start of each round every client
    turns to the round's fresh WOR (a barrier) and makes a few calls on it, now and then on the
    previous one: concurrent captures, writes with and without capture id, and reads while the
    value is being chosen, when half-written replicas, adoption and read repair matter."""
    o, size, seg = run.o, run.o.segment_size, 1
    admin = run.client("c0")
    await _retry(lambda: admin.alloc(seg, b"campaign"))
    names = [f"c{i}" for i in range(o.clients)]
    clients = [admin] + [run.client(n) for n in names[1:]]
    rounds = max(1, o.ops // (2 * o.clients))
    barrier = asyncio.Barrier(o.clients)
    splitters = ([run.client(f"x{i}", timeout=0.05, retries=1) for i in range(3)]
                 if "split" in o.faults else [])
    final = run.client("final")
    # Each client learns the segment is allocated by a call of its own, so no later call
    # checks it inside (a trace then shows one call at a time per client, as the model has).
    for c in [*clients, *splitters, final]:
        await _retry(lambda c=c: c.check(seg))  # type: ignore[misc]
    await run.faults_on()

    async def one(i: int, name: str) -> None:
        c, rng = clients[i], random.Random(run.rng.random())
        caps: dict[int, Any] = {}
        for r in range(rounds):
            if await barrier.wait() == 0 and splitters and r % 2 == 0:
                await _split(run, seg * size + r % size, splitters, f"{r}")
                await barrier.wait()  # the others wait until the split is done
            elif splitters and r % 2 == 0:
                await barrier.wait()
            await asyncio.sleep(rng.uniform(0, 0.02))  # staggered: phases of rivals overlap
            for k in range(rng.choice((1, 2, 3))):
                a = seg * size + (r - (k > 0 and rng.random() < 0.25)) % size
                pick = rng.random()
                value = f"{name}-{r}.{k}".encode()
                # A write with a capture id uses the client's preceding capture of that WOR
                # (as in the WOR contract): any other call on the WOR drops the one held.
                held = caps.pop(a, None)
                if pick < 0.2:
                    cap = await _call(run, c.capture(a))
                    if not isinstance(cap, BaseException):
                        caps[a] = cap
                elif pick < 0.4 and held is not None:
                    await _call(run, c.write(a, value, held))
                elif pick < 0.7:
                    await _call(run, c.write(a, value))
                else:
                    await _call(run, c.read(a))

    await _spread(names, one)
    await run.quiesce()
    for off in range(min(size, rounds)):
        await _call(run, final.read(seg * size + off))


async def _split(run: _Run, a: int, clients: list[WormSpaceClient], tag: str) -> None:
    """A scripted split on the fresh WOR ``a`` (``split`` in the module docstring).

    ``x0`` captures ``a``, then writes while only one replica, ``lone``, gets its frames: the
    write reaches ``lone`` alone and times out. Then, in a random order, ``x1`` writes through
    the majority without ``lone``, and ``x2`` reads through a majority that includes ``lone``.
    A correct WOR answers the read and the write consistently whichever way it goes."""
    ids = sorted(run.proxies)
    if len(ids) < 3:
        return
    rng = run.rng
    lone = rng.choice(ids)
    others = [s for s in ids if s != lone]
    majority = len(ids) // 2 + 1
    x0, x1, x2 = clients
    read_first = rng.random() < 0.5

    def cut(sids: Iterable[str]) -> None:
        for p in run.proxies.values():
            p.heal()
        for sid in sids:
            run.proxies[sid].partition("drop")

    if run.fault_lock.locked():
        return  # a fault episode is running: skip this split rather than stall the round
    async with run.fault_lock:
        run.rec.fault("split", lone, address=a, read_first=read_first)
        try:
            cap = await _call(run, x0.capture(a))
            if isinstance(cap, BaseException):
                return
            cut(others)
            await _call(run, x0.write(a, f"x0-{tag}".encode(), cap))
            for step in ("read", "write") if read_first else ("write", "read"):
                if step == "read":
                    keep = rng.sample(others, majority - 1)
                    cut([s for s in others if s not in keep])
                    await _call(run, x2.read(a))
                else:
                    cut([lone])
                    await _call(run, x1.write(a, f"x1-{tag}".encode()))
        finally:
            cut([])


async def _wos_workload(run: _Run) -> None:
    """Segments allocated in races, data calls single and ranged, and trims late in the run."""
    o, size = run.o, run.o.segment_size
    segs = [2, 3, 4]
    names = [f"c{i}" for i in range(o.clients)]
    clients = [run.client(n) for n in names]
    per = max(1, o.ops // o.clients)
    await run.faults_on()

    async def one(i: int, name: str) -> None:
        c, rng = clients[i], random.Random(run.rng.random())
        caps: dict[int, Any] = {}
        for k in range(per):
            seg = rng.choice(segs)
            a = seg * size + rng.randrange(4)
            value = f"{name}-{k}".encode()
            pick = rng.random()
            if pick < 0.1 or k == 0:
                await _call(run, c.alloc(seg, f"meta-{name}-{k}".encode()))
            elif pick < 0.18:
                await _call(run, c.check(seg))
            elif pick < 0.21 and k > per // 2:
                await _call(run, c.trim(seg))
            elif pick < 0.33:
                cap = await _call(run, c.capture(a))
                if not isinstance(cap, BaseException):
                    caps[a] = cap
            elif pick < 0.43 and a in caps:
                await _call(run, c.write(a, value, caps.pop(a)))
            elif pick < 0.55:
                await _call(run, c.write(a, value))
            elif pick < 0.65:
                lo = rng.randrange(4)
                rcaps = await _call(run, c.capture_range(seg, lo, lo + 2))
                if not isinstance(rcaps, BaseException):
                    await _call(run, c.write_range(seg, lo, [value + b"a", value + b"b"], rcaps))
            else:
                await _call(run, c.read(a))

    await _spread(names, one)
    await run.quiesce()
    final = run.client("final")
    for seg in segs:
        await _call(run, final.check(seg))
        for off in range(4):
            await _call(run, final.read(seg * size + off))


async def _wormpaxos_workload(run: _Run) -> None:
    """Three replicas of a KV store; most puts through r0 (a sticky leader), some through the
    others (elections and takeovers); gets everywhere; at the end every replica syncs. Calls
    come in bursts of 1 to 6 concurrent ones per replica, and at most 2 writes are in flight
    per leader, so batch entries form (and meet the faults)."""
    from wormspace.impl.apps.wormpaxos import KVStore

    o = run.o
    names = [f"r{i}" for i in range(max(2, o.clients))]
    stores = [KVStore(run.client(n), n, base=1, max_attempts=4, max_inflight=2) for n in names]
    per = max(1, o.ops // len(names))
    keys = ["x", "y", "z"]
    await run.faults_on()

    async def one(i: int, name: str) -> None:
        kv, rng = stores[i], random.Random(run.rng.random())

        async def call(k: int) -> None:
            key = rng.choice(keys)
            if rng.random() < (0.6 if i == 0 else 0.15):
                await _call(run, kv.put(key, f"{name}-{k}".encode()))
            else:
                await _call(run, kv.get(key))

        k = 0
        while k < per:
            burst = min(per - k, rng.randint(1, 6))
            await asyncio.gather(*(call(j) for j in range(k, k + burst)))
            k += burst

    from wormspace.impl.apps import wormpaxos

    with _stalls(run, wormpaxos):
        await _spread(names, one)
    await run.quiesce()
    for kv in stores:
        for key in keys:
            await _call(run, kv.get(key))


async def _wormlog_workload(run: _Run) -> None:
    """A sequencer (in this process, its WormSpace calls through the proxies) and clients that
    append, read, fill holes, check the tail and trim."""
    from wormspace.impl.apps.sequencer import Sequencer, SequencerServer
    from wormspace.impl.apps.wormlog import WormLog

    o = run.o
    seq_client = run.client("seq")
    seq = Sequencer(seq_client, "seq", base=1)
    server = SequencerServer(seq, seq_client.key)
    host, port = await server.listen("127.0.0.1", 0)
    seq.address = f"{host}:{port}"
    await _retry(seq.start)
    names = [f"c{i}" for i in range(o.clients)]
    logs = [WormLog(run.client(n), sequencer=seq.address, base=1, timeout=0.5) for n in names]
    per = max(1, o.ops // o.clients)
    base = 1 * o.segment_size
    await run.faults_on()
    try:
        async def one(i: int, name: str) -> None:
            log, rng = logs[i], random.Random(run.rng.random())
            mine: list[int] = []
            for k in range(per):
                pick = rng.random()
                if pick < 0.5:
                    a = await _call(run, log.append(f"{name}-{k}".encode()))
                    if type(a) is int:
                        mine.append(a)
                elif pick < 0.75:
                    a = rng.choice(mine) if mine and rng.random() < 0.7 else \
                        base + rng.randrange(max(1, seq.tail() - base + 2))
                    await _call(run, log.read(a))
                elif pick < 0.85:
                    await _call(run, log.check_tail())
                elif pick < 0.97:
                    await _call(run, log.fill(base + rng.randrange(max(1, seq.tail() - base + 2))))
                elif k > per // 2:
                    await _call(run, log.trim(base + o.segment_size))

        from wormspace.impl.apps import sequencer

        with _stalls(run, sequencer):
            await _spread(names, one)
        await run.quiesce()
        tail = await _call(run, logs[0].check_tail())
        if type(tail) is int:
            for a in range(base, tail):
                await _call(run, logs[0].read(a))
    finally:
        for log in logs:
            await log.close()
        await server.close()


async def _wormtx_workload(run: _Run) -> None:
    """Three resource managers, each with its own client; two runners start transactions over
    random subsets of them (E3 and A8), on few keys, so locks conflict."""
    from wormspace.impl.apps.wormtx import Ops, ResourceManager, WormTX

    o = run.o
    rms = {f"rm{i}": ResourceManager(f"rm{i}", run.client(f"rm{i}"), None, durable=False,
                                     vote_timeout=0.3) for i in range(3)}
    tx = WormTX(run.client("tm"), rms, base=1, vote_timeout=0.3, max_attempts=2)
    per = max(1, o.ops // 8)  # a transaction is several calls
    await run.faults_on()

    async def one(i: int, name: str) -> None:
        rng = random.Random(run.rng.random())
        for k in range(per):
            chosen = rng.sample(sorted(rms), rng.choice((2, 3)))
            ops = {rm: Ops({rng.choice("abc"): f"{name}-{k}".encode()}) for rm in chosen}
            await _call(run, tx.run(ops, variant=rng.choice(("e3", "a8"))))

    await _spread(["t0", "t1"], one)
    await run.quiesce()


async def _retry(call: Callable[[], Awaitable[Any]], attempts: int = 20) -> Any:
    """A setup call (before faults begin): retried while the cluster settles."""
    last: BaseException | None = None
    for _ in range(attempts):
        try:
            return await call()
        except ClientError as exc:
            last = exc
            await asyncio.sleep(0.1)
    raise RuntimeError(f"campaign setup failed: {last}")


WORKLOADS: dict[str, Callable[[_Run], Awaitable[None]]] = {
    "wor": _wor_workload,
    "wos": _wos_workload,
    "wormpaxos": _wormpaxos_workload,
    "wormlog": _wormlog_workload,
    "wormtx": _wormtx_workload,
}



__all__ = [
    "CLIENT_BUGS", "FAULTS", "LAYERS", "MODELS", "SERVER_BUGS", "CampaignError",
    "CampaignResult", "Options", "RunReport", "Violation", "check_trace", "read_trace_files",
    "run_campaign",
]

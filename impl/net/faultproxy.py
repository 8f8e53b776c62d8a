"""A fault-injecting TCP proxy in front of a server: loss, duplication, reordering, delay and
partitions of whole frames, on loopback only.

Each :class:`FaultProxy` listens on a loopback port and forwards every connection to one server.
It cuts the byte stream into frames by their length prefix (:mod:`.framing`; the proxy holds no
key and checks no tag, so it can only drop, copy, hold back or delay *whole* frames, never corrupt
one: an HMAC-authenticated protocol sees exactly the faults of a lossy, reordering network).
Faults are set programmatically per direction (``up``: client to server, ``down``: server to
client) and take effect on the next frame:

* ``loss``, ``dup``, ``reorder``: per-frame probabilities (a reordered frame is held back and
  sent after the next frame of its connection, or after ``hold`` seconds if none follows);
* ``delay``: a ``(low, high)`` range of seconds drawn per frame; delays keep a connection's frame
  order (a frame leaves no earlier than the one before it), so reordering is only ever what
  ``reorder`` asks for;
* :meth:`FaultProxy.partition`: ``"drop"`` black-holes every frame of every connection (clients
  time out), ``"refuse"`` cuts every connection and refuses new ones (clients see the server as
  down); :meth:`FaultProxy.heal` ends it.

Every injected fault is recorded as a ``fault`` event (schema: :mod:`wormspace.impl.trace`):
``loss``, ``dup``, ``reorder`` per frame (``detail``: direction and frame size), ``delay`` when
the delay setting changes, ``partition`` and ``heal``. Randomness comes from the ``rng`` given,
so a campaign's choices follow its seed (the timing of a real network does not).

:func:`proxy_cluster` puts one proxy in front of each server of a cluster and returns the cluster
configuration clients should use (the servers' addresses replaced by the proxies'); servers keep
talking to each other directly (chain forwarding is not proxied).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from ..trace import OFF, Recorder
from .cluster import ClusterConfig, ServerSpec
from .framing import HEADER, MAX_FRAME, TAG_SIZE

LOOPBACK = ("127.0.0.1", "::1", "localhost")
DIRECTIONS = ("up", "down")
PARTITION_MODES = ("drop", "refuse")


class ProxyError(ValueError):
    """A proxy was asked for something it does not do (a non-loopback address, a bad setting)."""


@dataclass(frozen=True)
class LinkFaults:
    """Fault settings of one direction of a proxy (probabilities per frame; delay in seconds)."""

    loss: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("loss", "dup", "reorder"):
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ProxyError(f"{name} must be a probability in [0, 1], got {p!r}")
        lo, hi = self.delay
        if not 0.0 <= lo <= hi:
            raise ProxyError(f"delay must be a range 0 <= low <= high seconds, got {self.delay!r}")


NO_FAULTS = LinkFaults()


class _Pipe:
    """One direction of one proxied connection: cuts frames, applies faults, writes them."""

    def __init__(self, link: _Link, direction: str) -> None:
        self.link, self.direction = link, direction
        self.buf = bytearray()
        self.passthrough = False  # the stream is not framed as we expect: forward it untouched
        self.held: bytes | None = None
        self.held_timer: asyncio.TimerHandle | None = None
        self.last_release = 0.0  # loop time the last delayed frame leaves at
        self.delayed: deque[tuple[float, bytes]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.out: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # frames waiting for the outgoing side to connect

    def feed(self, data: bytes) -> None:
        if self.passthrough:
            self.write(data)
            return
        self.buf += data
        proxy = self.link.proxy
        while len(self.buf) >= HEADER.size:
            (length,) = HEADER.unpack_from(self.buf)
            if length < TAG_SIZE or length > proxy.max_frame:
                # Not a frame we could cut: pass the rest through and let the endpoint reject it.
                self.passthrough = True
                rest, self.buf = bytes(self.buf), bytearray()
                self.write(rest)
                return
            end = HEADER.size + length
            if len(self.buf) < end:
                return
            frame = bytes(self.buf[:end])
            del self.buf[:end]
            proxy._route(self, frame)

    def emit(self, frame: bytes, delay: float) -> None:
        """Send ``frame`` after ``delay`` seconds, never before the frames emitted earlier."""
        if delay <= 0 and not self.delayed:
            self.write(frame)
            return
        loop = asyncio.get_running_loop()
        at = max(loop.time() + delay, self.last_release)
        self.last_release = at
        self.delayed.append((at, frame))  # release times never decrease: a FIFO queue
        if self.timer is None:
            self.timer = loop.call_at(at, self._release)

    def _release(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self.delayed and self.delayed[0][0] <= now:
            self.write(self.delayed.popleft()[1])
        if self.delayed:
            self.timer = loop.call_at(self.delayed[0][0], self._release)

    def write(self, data: bytes) -> None:
        if self.out is None:
            self.pending.append(data)
        elif not self.out.is_closing():
            self.out.write(data)

    def attach(self, transport: asyncio.Transport) -> None:
        self.out = transport
        pending, self.pending = self.pending, []
        for data in pending:
            self.write(data)

    def release_held(self) -> None:
        if self.held_timer is not None:
            self.held_timer.cancel()
            self.held_timer = None
        held, self.held = self.held, None
        if held is not None:
            self.emit(held, 0.0)


class _Link:
    """One proxied connection: the client's side, the server's side and a pipe each way."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.up = _Pipe(self, "up")
        self.down = _Pipe(self, "down")
        self.client: asyncio.Transport | None = None
        self.server: asyncio.Transport | None = None
        self.closed = False

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.links.discard(self)
        for pipe in (self.up, self.down):
            for timer in (pipe.timer, pipe.held_timer):
                if timer is not None:
                    timer.cancel()
        for t in (self.client, self.server):
            if t is None or t.is_closing():
                continue
            if abort:
                t.abort()
            else:
                t.close()


class _ClientSide(asyncio.Protocol):
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.link = _Link(proxy)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop transports are not subclasses
        proxy, link = self.proxy, self.link
        link.client = transport
        if proxy.partitioned == "refuse":
            proxy.stats["refused"] += 1
            transport.abort()
            link.closed = True
            return
        proxy.links.add(link)
        link.down.attach(transport)
        task = asyncio.get_running_loop().create_task(self._connect())
        proxy._tasks.add(task)
        task.add_done_callback(proxy._tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.proxy.target
        try:
            transport, _ = await loop.create_connection(lambda: _ServerSide(self.link), host, port)
        except OSError:
            self.link.close(abort=True)  # the server is down: so is the proxied connection
            return
        if self.link.closed:
            transport.abort()
            return
        self.link.server = transport
        self.link.up.attach(transport)

    def data_received(self, data: bytes) -> None:
        if not self.link.closed:
            self.link.up.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()


class _ServerSide(asyncio.Protocol):
    def __init__(self, link: _Link) -> None:
        self.link = link

    def data_received(self, data: bytes) -> None:
        if not self.link.closed:
            self.link.down.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()


class FaultProxy:
    """A proxy named ``name`` (the server's id, in fault events) forwarding to ``target``.

    ``rng`` draws every fault; ``recorder`` gets the fault events; ``hold``: seconds a reordered
    frame waits for a successor before it is sent anyway.
    """

    def __init__(self, name: str, target: tuple[str, int], *, rng: random.Random | None = None,
                 recorder: Recorder = OFF, host: str = "127.0.0.1", max_frame: int = MAX_FRAME,
                 hold: float = 0.02) -> None:
        if host not in LOOPBACK or target[0] not in LOOPBACK:
            raise ProxyError(f"the fault proxy runs on loopback only (got {host} -> {target[0]})")
        self.name, self.target, self.host = name, target, host
        self.rng = rng or random.Random()
        self.rec = recorder
        self.max_frame, self.hold = max_frame, hold
        self.faults = {d: NO_FAULTS for d in DIRECTIONS}
        self.partitioned: str | None = None
        self.links: set[_Link] = set()
        self.stats: Counter[str] = Counter()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> int:
        """Listen (port 0: any free port); returns the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ClientSide(self), self.host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return self.host, self.port

    async def close(self) -> None:
        """Stop listening and close every proxied connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.close(abort=True)
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- control ---------------------------------------------------------------------------------

    def set_faults(self, *, loss: float = 0.0, dup: float = 0.0, reorder: float = 0.0,
                   delay: tuple[float, float] = (0.0, 0.0),
                   directions: Iterable[str] = DIRECTIONS) -> None:
        """Apply these settings to ``directions`` from the next frame on."""
        f = LinkFaults(loss, dup, reorder, (float(delay[0]), float(delay[1])))
        for d in directions:
            if d not in DIRECTIONS:
                raise ProxyError(f"direction must be one of {DIRECTIONS}, got {d!r}")
            if f.delay != self.faults[d].delay and f.delay[1] > 0:
                self.rec.fault("delay", self.name, dir=d, low=f.delay[0], high=f.delay[1])
            self.faults[d] = f

    def clear(self) -> None:
        """No more loss, duplication, reordering or delay (a partition stays until heal)."""
        self.faults = {d: NO_FAULTS for d in DIRECTIONS}
        for link in list(self.links):
            link.up.release_held()
            link.down.release_held()

    def partition(self, mode: str = "drop") -> None:
        """Cut the server off from its clients: ``drop`` every frame, or ``refuse`` (close
        every connection and refuse new ones)."""
        if mode not in PARTITION_MODES:
            raise ProxyError(f"partition mode must be one of {PARTITION_MODES}, got {mode!r}")
        self.partitioned = mode
        self.rec.fault("partition", self.name, mode=mode)
        self.stats["partitions"] += 1
        if mode == "refuse":
            for link in list(self.links):
                link.close(abort=True)

    def heal(self) -> None:
        """End a partition."""
        if self.partitioned is not None:
            self.partitioned = None
            self.rec.fault("heal", self.name)

    # -- the frame path --------------------------------------------------------------------------

    def _route(self, pipe: _Pipe, frame: bytes) -> None:
        stats, rng = self.stats, self.rng
        stats["frames"] += 1
        if self.partitioned is not None:
            stats["partition_dropped"] += 1
            return
        f = self.faults[pipe.direction]
        if f is NO_FAULTS:
            if pipe.held is not None:
                pipe.emit(frame, 0.0)
                pipe.release_held()
            else:
                pipe.emit(frame, 0.0)
            return
        if f.loss and rng.random() < f.loss:
            stats["loss"] += 1
            self.rec.fault("loss", self.name, dir=pipe.direction, bytes=len(frame))
            return
        copies = 1
        if f.dup and rng.random() < f.dup:
            stats["dup"] += 1
            self.rec.fault("dup", self.name, dir=pipe.direction, bytes=len(frame))
            copies = 2
        delay = rng.uniform(*f.delay) if f.delay[1] > 0 else 0.0
        if pipe.held is None and f.reorder and rng.random() < f.reorder:
            stats["reorder"] += 1
            self.rec.fault("reorder", self.name, dir=pipe.direction, bytes=len(frame))
            pipe.held = frame
            pipe.held_timer = asyncio.get_running_loop().call_later(self.hold, pipe.release_held)
            copies -= 1
            if copies == 0:
                return
        for _ in range(copies):
            pipe.emit(frame, delay)
        if pipe.held is not None and pipe.held is not frame:
            pipe.release_held()  # the held frame goes after this one: the two are swapped


async def proxy_cluster(config: ClusterConfig, *, rng: random.Random | None = None,
                        recorder: Recorder = OFF) -> tuple[dict[str, FaultProxy], ClusterConfig]:
    """Start a proxy in front of every server; returns them and the clients' configuration."""
    rng = rng or random.Random()
    proxies: dict[str, FaultProxy] = {}
    try:
        for sid, spec in config.servers.items():
            p = FaultProxy(sid, (spec.host, spec.port), rng=random.Random(rng.random()),
                           recorder=recorder)
            await p.start()
            proxies[sid] = p
    except BaseException:
        for p in proxies.values():
            await p.close()
        raise
    servers = {sid: ServerSpec(sid, p.host, p.port, config.servers[sid].data)
               for sid, p in proxies.items()}
    return proxies, dataclasses.replace(config, servers=servers)

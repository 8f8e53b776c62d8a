"""The WormLog sequencer: hands out ``(address, capture id)`` pairs from pre-captured segments.

A sequencer is soft state (WORMSPACE.md section 3, WormLog): everything it knows can be rebuilt
from WormSpace, so it can die at any time and another one takes its place.

* **Terms.** A sequencer's term is a run of consecutive segments it allocated, each with
  metadata ``{app, seq, addr, start, from}``: its id, its listen address (for discovery),
  the first segment of its term, and the first segment it had to take over.
* **Failover** = ``alloc`` of the segment after the last allocated one. The new sequencer then
  takes over the segments its predecessors may have left unfinished: it captures every offset
  (preempting capture ids the old sequencer handed out), writes back every value the capture
  reveals (a chosen value survives) and JUNK everywhere else (two round trips per segment).
  Which segments: those of the previous term, ``[start, last]``, if the previous sequencer
  finished its own takeover -- it records that by writing a MARK at offset 0 of its first
  segment before handing out anything -- else also that term's takeover range, from ``from``.
* **Pre-capture.** The sequencer captures each of its segments with one ``capture_range`` and
  allocates and captures the next one in the background when the current one runs low, so an
  append is two round trips (sequencer, then write) whatever the replica count.

:class:`SequencerServer` serves a :class:`Sequencer` over TCP with the cluster's framing (HMAC
with the cluster key): control calls ``ping``, ``next`` (``n`` grants; ``stale``: an address
whose write was preempted, which makes the sequencer check whether it was deposed), ``tail``
(answered only after the same check: a deposed sequencer's tail would miss newer appends).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

import msgpack

from ..core.ops import Outcome
from ..net import wire
from ..net.client import Capture, Trimmed, WormSpaceClient
from ..net.framing import FrameDecoder, FrameError, MalformedPayload, encode_frame, envelopes
from . import LOG_BASE
from .space import (
    app_meta,
    capture_offsets,
    is_allocated,
    last_allocated,
    member_of,
    write_offsets,
)

log = logging.getLogger("wormspace.sequencer")

#: Entries of the log region: data is ``DATA_TAG + payload``; anything else reads as JUNK.
DATA_TAG = b"\x01"
JUNK = b"\x00junk"
MARK = b"\x00mark"  # "this term's takeover is complete" (reads as JUNK to log readers)
DEPOSED = "deposed"


class Deposed(Exception):
    """A newer sequencer allocated a segment after ours: this one must stop handing out."""


@dataclass(frozen=True)
class TermMeta:
    """The metadata of a sequencer's segment."""

    seq: str
    addr: str
    start: int
    frm: int
    nonce: int = 0  # unique per sequencer instance: equal metadata would let two allocs "win"
    base: int | None = None  # the log's first segment (tells its segments from another log's)

    def encode(self) -> bytes:
        """As stored in the segment's metadata WOR."""
        return app_meta("wormlog", {"seq": self.seq, "addr": self.addr, "start": self.start,
                                    "from": self.frm, "nonce": self.nonce}, self.base)

    @classmethod
    def decode(cls, meta: bytes | None) -> TermMeta | None:
        """The metadata, or None if the segment was not allocated by a WormLog sequencer."""
        try:
            m = msgpack.unpackb(meta) if meta else None
            if isinstance(m, dict) and m.get("app") == "wormlog":
                base = m.get("base")
                return cls(str(m["seq"]), str(m["addr"]), int(m["start"]), int(m["from"]),
                           int(m.get("nonce", 0)), None if base is None else int(base))
        except Exception:
            pass
        return None


class Sequencer:
    """The sequencer's logic (in-process; :class:`SequencerServer` puts it on the network).

    ``address`` is where clients can reach it (recorded in the segment metadata; empty for a
    sequencer that serves only its own process, as a client's fallback does).
    """

    def __init__(self, client: WormSpaceClient, seq_id: str, address: str = "", *,
                 base: int = LOG_BASE, max_attempts: int = 6) -> None:
        self.client, self.seq_id, self.address = client, seq_id, address
        self.base, self.size = base, client.space.size
        self.max_attempts = max_attempts
        self.term: TermMeta | None = None
        self.took_over: list[int] = []  # segments filled at failover
        self.kept = 0  # values a takeover capture revealed and kept
        self.granted = 0
        self.deposed = False
        self._segs: deque[tuple[int, list[Capture]]] = deque()  # current first, then next
        self._off = 0  # next offset of the current segment to hand out
        self._last_seg = -1  # the last segment we allocated
        self._preparing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- failover --------------------------------------------------------------------------------

    async def start(self) -> TermMeta:
        """Become the sequencer: allocate the next segment, take over, pre-capture."""
        for _ in range(self.max_attempts):
            last = await last_allocated(self.client, self.base,
                                        ours=member_of("wormlog", self.base))
            frm = await self._takeover_from(last)
            target = self.base if last is None else last + 1
            term = TermMeta(self.seq_id, self.address, target, frm, self.client.client_id,
                            self.base)
            if not await self.client.alloc(target, term.encode()):
                continue  # a concurrent contender took it: try above it
            self.term, self._last_seg = term, target
            for seg in range(frm, target):
                await self._fill_segment(seg)
            caps = await capture_offsets(self.client, target, 0, self.size)
            if not any(c.adopted is not None for c in caps):
                break
            # Our fresh segment holds values: a successor, elected above it while we stalled
            # between alloc and capture, has filled it already. Its offsets are JUNK to the log
            # (handing them out would fail every append): start again above the successor.
            log.warning("sequencer %s: segment %d was taken over before we captured it",
                        self.seq_id, target)
        else:
            raise Deposed(f"sequencer {self.seq_id}: lost {self.max_attempts} allocations")
        # MARK first: from here on a successor need not redo our takeover range.
        out = await self.client.write(self.client.space.address(target, 0), MARK, caps[0])
        if out is Outcome.PREEMPTED:
            raise Deposed(f"sequencer {self.seq_id}: preempted at start")
        self._segs.append((target, caps))
        self._off = 1
        log.info("sequencer %s: segment %d (filled %s)", self.seq_id, target, self.took_over)
        return term

    async def _takeover_from(self, last: int | None) -> int:
        """The first segment the new term must fill (see the module docstring)."""
        if last is None:
            return self.base
        try:
            prev = TermMeta.decode(await self.client.check(last))
        except Trimmed:
            return last + 1
        if prev is None:  # not a sequencer's segment (a foreign alloc): fill just that one
            return last
        try:
            mark = await self.client.read(self.client.space.address(prev.start, 0))
        except Trimmed:
            mark = MARK  # trimmed: nothing left to fill there
        return prev.start if mark == MARK else min(prev.frm, prev.start)

    async def _fill_segment(self, seg: int) -> None:
        """Capture every offset of ``seg``; write back revealed values, JUNK elsewhere."""
        try:
            caps = await capture_offsets(self.client, seg, 0, self.size)
        except Trimmed:
            return
        values = [c.adopted if c.adopted is not None else JUNK for c in caps]
        self.kept += sum(1 for c in caps if c.adopted is not None)
        try:
            outs = await write_offsets(self.client, seg, 0, values, caps)
        except Trimmed:
            return
        if any(o is Outcome.PREEMPTED for o in outs):
            raise Deposed(f"sequencer {self.seq_id}: preempted while filling segment {seg}")
        self.took_over.append(seg)

    # -- handing out -----------------------------------------------------------------------------

    def tail(self) -> int:
        """The next address this sequencer will hand out (every append so far is below it)."""
        if not self._segs:
            return self.base * self.size
        return self.client.space.address(self._segs[0][0], self._off)

    async def grant(self, n: int = 1) -> list[tuple[int, Capture]]:
        """``n`` fresh addresses with their capture ids."""
        if self.deposed:
            raise Deposed(f"sequencer {self.seq_id} was deposed")
        if not self._segs:
            raise RuntimeError(f"sequencer {self.seq_id} is still starting")
        out: list[tuple[int, Capture]] = []
        while len(out) < n:
            if self._off >= self.size:
                await self._next_segment()
            _seg, caps = self._segs[0]
            take = min(n - len(out), self.size - self._off)
            out += [(caps[i].address, caps[i]) for i in range(self._off, self._off + take)]
            self._off += take
            if self.size - self._off < max(1, self.size // 4) and len(self._segs) == 1 \
                    and self._preparing is None:
                self._preparing = asyncio.ensure_future(self._prepare_next())
        self.granted += n
        return out

    async def _next_segment(self) -> None:
        async with self._lock:
            if self._off < self.size:
                return
            if len(self._segs) == 1:
                if self._preparing is None:
                    self._preparing = asyncio.ensure_future(self._prepare_next())
                await asyncio.shield(self._preparing)
            if self.deposed or len(self._segs) < 2:
                raise Deposed(f"sequencer {self.seq_id} was deposed")
            self._segs.popleft()
            self._off = 0

    async def _prepare_next(self) -> None:
        """Allocate and capture the segment after our last one (in the background)."""
        try:
            nxt = self._last_seg + 1
            assert self.term is not None
            if not await self.client.alloc(nxt, self.term.encode()):
                self.deposed = True
                log.warning("sequencer %s: segment %d taken by another: deposed",
                            self.seq_id, nxt)
                return
            self._last_seg = nxt
            caps = await capture_offsets(self.client, nxt, 0, self.size)
            if any(c.adopted is not None for c in caps):
                # A successor took this segment over between our alloc and our capture (as in
                # start()): its offsets are JUNK, and we are deposed.
                self.deposed = True
                log.warning("sequencer %s: segment %d was taken over before we captured it: "
                            "deposed", self.seq_id, nxt)
                return
            self._segs.append((nxt, caps))
        except Exception as exc:
            log.warning("sequencer %s: preparing the next segment failed: %s", self.seq_id, exc)
        finally:
            self._preparing = None

    async def stale(self, address: int) -> bool:
        """A client's write at ``address`` was preempted (or a tail is asked for: -1): check
        whether we were deposed."""
        if not self.deposed and await is_allocated(self.client, self._last_seg + 1):
            meta = TermMeta.decode(await self.client.check(self._last_seg + 1))
            if meta is None or meta.nonce != self.client.client_id:
                self.deposed = True
                log.warning("sequencer %s: deposed (segment %d allocated by %s)", self.seq_id,
                            self._last_seg + 1, meta.seq if meta else "another")
        return self.deposed


# -- over TCP -------------------------------------------------------------------------------------


class _SeqConnection(asyncio.Protocol):
    def __init__(self, server: SequencerServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(server.key)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop transports are not subclasses
        self.transport = transport
        self.server.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            objs = self.decoder.feed(data)
        except FrameError as exc:
            self.send({"i": 0, "e": wire.BAD_FRAME, "d": str(exc)})
            if self.transport is not None:
                self.transport.close()
            return
        for frame in objs:
            try:  # a client connection batches the calls of one event-loop turn
                items = envelopes(frame)
            except MalformedPayload as exc:
                self.send({"i": 0, "e": wire.MALFORMED, "d": str(exc)})
                continue
            for obj in items:
                # Keep a reference: the loop holds tasks weakly, and a grant may await WormSpace.
                task = asyncio.ensure_future(self.server.handle(self, obj))
                self.server.tasks.add(task)
                task.add_done_callback(self.server.tasks.discard)

    def send(self, obj: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(self.server.key, obj))


class SequencerServer:
    """Serves a started :class:`Sequencer` on ``host:port`` (loopback in tests and the demo)."""

    def __init__(self, sequencer: Sequencer, key: bytes) -> None:
        self.seq, self.key = sequencer, key
        self._server: asyncio.Server | None = None
        self.conns: set[_SeqConnection] = set()
        self.tasks: set[asyncio.Future[None]] = set()

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Start listening (port 0: any free port); returns the bound address."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _SeqConnection(self), host, port)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def close(self) -> None:
        """Stop listening and close the connections."""
        if self._server is not None:
            self._server.close()
            for c in list(self.conns):
                if c.transport is not None:
                    c.transport.close()
            await self._server.wait_closed()

    async def handle(self, conn: _SeqConnection, obj: object) -> None:
        """Answer one control call."""
        try:
            rid, _msg, call, args = wire.parse_request(obj, ())
        except Exception as exc:
            rid = obj.get("i", 0) if isinstance(obj, dict) and type(obj.get("i")) is int else 0
            conn.send({"i": rid, "e": wire.MALFORMED, "d": str(exc)[:200]})
            return
        try:
            if call == "ping":
                result: Any = {"seq": self.seq.seq_id, "tail": self.seq.tail(),
                               "deposed": self.seq.deposed}
            elif call == "tail":
                if await self.seq.stale(-1):  # deposed: its tail may miss newer appends
                    raise Deposed(f"sequencer {self.seq.seq_id} was deposed")
                result = {"tail": self.seq.tail()}
            elif call == "next":
                n, stale = args.get("n", 1), args.get("stale")
                if type(n) is not int or not 1 <= n <= 4096:
                    raise ValueError("n must be an int in [1, 4096]")
                if type(stale) is int and await self.seq.stale(stale):
                    raise Deposed(f"sequencer {self.seq.seq_id} was deposed")
                grants = await self.seq.grant(n)
                result = {"grants": [[a, c.ballot[0], c.ballot[1], c.adopted]
                                     for a, c in grants]}
            else:
                conn.send({"i": rid, "e": wire.UNKNOWN_CALL, "d": f"unknown call {call!r:.40}"})
                return
        except Deposed as exc:
            conn.send({"i": rid, "e": DEPOSED, "d": str(exc)})
            return
        except ValueError as exc:
            conn.send({"i": rid, "e": wire.MALFORMED, "d": str(exc)})
            return
        except Exception as exc:  # WormSpace unreachable etc.: the client falls back
            log.warning("sequencer call %s failed: %s", call, exc)
            conn.send({"i": rid, "e": wire.UNAVAILABLE, "d": str(exc)[:200]})
            return
        conn.send({"i": rid, "r": result})


async def run_sequencer(config_path: str, seq_id: str, host: str, port: int, *,
                        base: int = LOG_BASE, ready: Any = None) -> int:
    """``wormspace log sequencer``: start, take over, serve until SIGTERM/SIGINT."""
    import signal

    client = WormSpaceClient.from_file(config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        # Bind first so the address in the metadata is the real one (port 0 = any free port).
        placeholder = Sequencer(client, seq_id, base=base)
        server = SequencerServer(placeholder, client.key)
        h, p = await server.listen(host, port)
        placeholder.address = f"{h}:{p}"
        term = await placeholder.start()
        if ready is not None:
            ready(f"{h}:{p}", term, placeholder)
        await stop.wait()
        await server.close()
        return 0
    finally:
        await client.close()

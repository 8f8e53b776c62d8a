"""WormLog: a CORFU/Tango-style shared log over WormSpace (WORMSPACE.md section 3).

``append(v) -> address`` asks the sequencer (:mod:`.sequencer`) for an address and its capture
id, then writes the WOR with that capture id: two round trips, whatever the replica count.
``read(a)`` returns the entry (DATA, JUNK after a fill, EMPTY, or TRIMMED); ``check_tail()``
the sequencer's next address; ``fill(a)`` captures and writes JUNK (a chosen value survives:
the capture reveals it and the fill finishes it instead); ``trim(prefix)`` trims every segment
entirely below ``prefix``.

Sequencer failure: the client finds the current sequencer in the metadata of the last allocated
segment (each sequencer records its address there). If none answers, the client *becomes* a
sequencer in its own process (failover = ``alloc`` of the next segment) unless ``fallback`` is
off; a real sequencer started later takes over from it the same way. An append whose write is
preempted (its sequencer was deposed) or finds its address filled is retried at a new address,
and the old sequencer is told (``stale``) so it checks whether it was deposed.

Tracing (the client's recorder, or ``recorder=``): ``append``, ``read``, ``fill``, ``trim`` and
``check_tail`` as ``invoke``/``response``; an entry is shown as its payload (hex) for DATA, else
``JUNK``, ``EMPTY`` or ``TRIMMED``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..core.ops import Outcome
from ..net.client import Capture, NotAllocated, Trimmed, WormSpaceClient, traced
from ..net.cluster import ServerSpec, parse_address
from ..net.connection import ClientError, Connection, ServerError
from ..net.segments import BadAddress
from ..trace import Recorder
from . import LOG_BASE
from .sequencer import DATA_TAG, DEPOSED, JUNK, Sequencer, TermMeta
from .space import is_allocated, last_allocated, member_of

log = logging.getLogger("wormspace.wormlog")


class EntryStatus(StrEnum):
    """What a log address holds."""

    DATA = "data"
    JUNK = "junk"  # filled (hole filling, or the rest of a dead sequencer's segment)
    EMPTY = "empty"
    TRIMMED = "trimmed"


@dataclass(frozen=True)
class Entry:
    """The result of a read: ``value`` is set for DATA only."""

    address: int
    status: EntryStatus
    value: bytes | None = None


class NoSequencer(Exception):
    """No sequencer answered and falling back to an in-process one is disabled."""


class WormLog:
    """A shared-log client. ``sequencer``: ``HOST:PORT`` (default: found in segment metadata)."""

    def __init__(self, client: WormSpaceClient, *, sequencer: str | None = None,
                 base: int = LOG_BASE, timeout: float = 1.0, fallback: bool = True,
                 max_attempts: int = 8, recorder: Recorder | None = None) -> None:
        self.client, self.base, self.size = client, base, client.space.size
        self.rec = recorder if recorder is not None else client.rec
        self.timeout, self.fallback, self.max_attempts = timeout, fallback, max_attempts
        self._seq_addr = sequencer
        self._conn: Connection | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self.local: Sequencer | None = None  # our own sequencer after a fallback
        self.fallbacks = 0
        self.retries = 0

    async def close(self) -> None:
        """Close the sequencer connection (not the WormSpace client)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    # -- the sequencer ---------------------------------------------------------------------------

    async def _discover(self) -> str | None:
        """The address recorded by the sequencer of the last allocated segment."""
        last = await last_allocated(self.client, self.base,
                                    ours=member_of("wormlog", self.base))
        if last is None:
            return None
        try:
            meta = TermMeta.decode(await self.client.check(last))
        except Trimmed:
            return None
        return meta.addr if meta is not None and meta.addr else None

    def _connect(self, address: str) -> Connection:
        if self._conn is not None and self._seq_addr == address:
            return self._conn
        if self._conn is not None:
            old = asyncio.ensure_future(self._conn.close())
            self._closing.add(old)  # keep a reference until it is done
            old.add_done_callback(self._closing.discard)
        host, port = parse_address(address, "sequencer")
        self._seq_addr = address
        self._conn = Connection(ServerSpec("sequencer", host, port), self.client.key,
                                connect_timeout=self.timeout, backoff=(0.01, 0.2))
        return self._conn

    async def _call(self, name: str, **args: object) -> dict[str, object]:
        """A call to the remote sequencer; after a failure, rediscover once, then fall back."""
        tried: set[str] = set()
        last_error = "no sequencer is recorded in the log's segments"
        for _ in range(2):
            address = self._seq_addr if self._seq_addr not in tried else None
            address = address or await self._discover()
            if address is None or address in tried:
                break
            tried.add(address)
            try:
                r = await asyncio.wait_for(self._connect(address).call(name, **args),
                                           self.timeout)
                return dict(r)
            except (ClientError, TimeoutError) as exc:
                last_error = f"sequencer at {address}: {exc or 'timeout'}"
                if isinstance(exc, ServerError) and exc.code == DEPOSED:
                    args.pop("stale", None)
                self._seq_addr = None
        raise NoSequencer(last_error)

    async def _fall_back(self, why: str) -> Sequencer:
        if self.local is None or self.local.deposed:
            if not self.fallback:
                raise NoSequencer(why)
            log.warning("no sequencer (%s): starting one in this process", why)
            self.fallbacks += 1
            seq = Sequencer(self.client, f"client-{self.client.client_id}", base=self.base)
            await seq.start()
            self.local = seq
        return self.local

    async def _grant(self, stale: int | None) -> tuple[int, Capture]:
        if self.local is not None and not self.local.deposed:
            if stale is not None:
                await self.local.stale(stale)
            if not self.local.deposed:
                return (await self.local.grant(1))[0]
        try:
            r = await self._call("next", n=1, **({} if stale is None else {"stale": stale}))
        except NoSequencer as exc:
            return (await (await self._fall_back(str(exc))).grant(1))[0]
        a, rnd, cid, adopted = r["grants"][0]  # type: ignore[index]
        return a, Capture(a, (rnd, cid), adopted)

    # -- the API ---------------------------------------------------------------------------------

    async def _traced(self, op: str, args: dict[str, object], call: Any,
                      show: Callable[[Any], object]) -> Any:
        return await traced(self.rec, op, dict(args), call, show)

    async def append(self, value: bytes) -> int:
        """Append ``value``; returns its address."""
        address: int = await self._traced("append", {"value": value}, self._append(value), int)
        return address

    async def _append(self, value: bytes) -> int:
        entry = DATA_TAG + value
        stale: int | None = None
        for _ in range(self.max_attempts):
            address, cap = await self._grant(stale)
            out = await self.client.write(address, entry, cap)
            if out is Outcome.OK:
                return address
            # PREEMPTED: a new sequencer took the segment over. ALREADY_WRITTEN: the address
            # was filled (or holds another value): either way, get a fresh address.
            self.retries += 1
            stale = address
        raise NoSequencer(f"append failed {self.max_attempts} times (sequencers keep changing)")

    def _check(self, address: int) -> None:
        if type(address) is not int or address < self.base * self.size:
            raise BadAddress(f"log addresses start at {self.base * self.size} (segment "
                             f"{self.base}), got {address!r:.40}")

    async def read(self, address: int) -> Entry:
        """The entry at ``address``: DATA (with value), JUNK, EMPTY or TRIMMED."""
        entry: Entry = await self._traced("read", {"address": address}, self._read(address),
                                          _show_entry)
        return entry

    async def _read(self, address: int) -> Entry:
        self._check(address)
        try:
            v = await self.client.read(address)
        except Trimmed:
            return Entry(address, EntryStatus.TRIMMED)
        except NotAllocated:
            return Entry(address, EntryStatus.EMPTY)  # beyond every allocated segment
        if v is None:
            return Entry(address, EntryStatus.EMPTY)
        if v.startswith(DATA_TAG):
            return Entry(address, EntryStatus.DATA, v[len(DATA_TAG):])
        return Entry(address, EntryStatus.JUNK)

    async def read_range(self, lo: int, hi: int) -> list[Entry]:
        """Entries ``[lo, hi)`` (reads run concurrently)."""
        return list(await asyncio.gather(*(self.read(a) for a in range(lo, hi))))

    async def check_tail(self) -> int:
        """The next address to be handed out: every completed append is below it.

        Asks the sequencer; without one, scans the last allocated segment for its highest
        written address (slower, and an upper bound of the appends rather than the exact tail).
        """
        tail: int = await self._traced("check_tail", {}, self._check_tail(), int)
        return tail

    async def _check_tail(self) -> int:
        # A sequencer can be deposed without knowing it yet; its tail then misses the appends
        # its successor placed above it. So it first checks (one read) that no segment was
        # allocated after its own; the remote sequencer does the same (``tail`` call).
        if self.local is not None and not self.local.deposed \
                and not await self.local.stale(-1):
            return self.local.tail()
        try:
            tail = (await self._call("tail"))["tail"]
            if type(tail) is int:
                return tail
        except NoSequencer:
            pass
        last = await last_allocated(self.client, self.base,
                                    ours=member_of("wormlog", self.base))
        if last is None:
            return self.base * self.size
        top = -1
        for lo in range(0, self.size, 64):
            addrs = [self.client.space.address(last, o) for o in range(lo, min(self.size, lo + 64))]
            try:
                vals = await asyncio.gather(*(self.client.read(a) for a in addrs))
            except Trimmed:
                return (last + 1) * self.size
            top = max([top] + [o for o, v in zip(range(lo, lo + 64), vals) if v is not None])
        return self.client.space.address(last, top + 1)

    async def fill(self, address: int) -> Entry:
        """Hole filling: capture ``address`` and write JUNK; a chosen value survives.

        Returns what the address holds afterwards (JUNK, or the DATA that was already chosen).
        """
        entry: Entry = await self._traced("fill", {"address": address}, self._fill(address),
                                          _show_entry)
        return entry

    async def _fill(self, address: int) -> Entry:
        self._check(address)
        try:
            await self.client.write(address, JUNK, None)
        except Trimmed:
            return Entry(address, EntryStatus.TRIMMED)
        except NotAllocated:
            raise BadAddress(f"address {address} is beyond the log (segment not allocated)") \
                from None
        return await self._read(address)

    async def trim(self, prefix: int) -> list[int]:
        """Trim every segment entirely below address ``prefix``; returns those segments (idempotent).

        ``prefix`` may not be beyond the tail (that would trim addresses not yet appended).
        """
        segments: list[int] = await self._traced("trim", {"prefix": prefix}, self._trim(prefix),
                                                 list)
        return segments

    async def _trim(self, prefix: int) -> list[int]:
        tail = await self._check_tail()
        if prefix > tail:
            raise BadAddress(f"trim prefix {prefix} is beyond the tail {tail}")
        done = []
        for seg in range(self.base, prefix // self.size):
            if not await is_allocated(self.client, seg):
                break
            try:
                await self.client.trim(seg)
                done.append(seg)
            except Trimmed:
                pass
        return done


def _show_entry(e: Entry) -> str:
    """An entry in a trace: the payload (hex) for DATA, else ``JUNK``, ``EMPTY``, ``TRIMMED``."""
    if e.status is EntryStatus.DATA:
        assert e.value is not None
        return e.value.hex()
    return e.status.name

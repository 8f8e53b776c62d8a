"""The WormSpace client library: :class:`WormSpaceClient` (asyncio) and :class:`SyncClient`.

Calls follow WORMSPACE.md: ``capture``, ``write``, ``read`` on addresses; ``alloc``, ``check``,
``trim``, ``capture_range``, ``write_range``, ``listen`` on segments; ``seal`` for
reconfiguration. Each call runs a core op (``impl/core``) for the protocol the cluster file names
(Paxos-WOR or Chain-WOR) against the replica set of the address's segment.

Return codes: ``write`` returns an :class:`Outcome` (OK, PREEMPTED, ALREADY_WRITTEN); ``read``
returns the value or None (EMPTY). Conditions that end every call on a segment or cluster are
exceptions: :class:`Trimmed`, :class:`NotAllocated`, :class:`Sealed`, :class:`Unavailable`
(no quorum within timeout and retries), :class:`WrongKey`, :class:`ServerError`. A call that
meets a trimmed replica completes the trim at a majority before raising :class:`Trimmed`, so
every later call meets it too (a trim is final).

Connections are opened on first use and reused; requests are pipelined and the ones issued in
the same event-loop turn leave in one write (see :mod:`.connection`).

Tracing: a client built with a :class:`~wormspace.impl.trace.Recorder` (or, without one, with
``$WORMSPACE_TRACE_DIR`` set: ``DIR/<node>.ndjson``) records a ``send`` per protocol request
(peer: the server id), and an ``invoke`` and a ``response`` per public call (capture, write,
read, alloc, check, trim, capture_range, write_range); calls made inside another call (the
allocation check before a write) are not recorded as calls, so the calls of a trace are what
the caller saw. Results are in the layer's words: ``OK``, ``PREEMPTED``, ``ALREADY_WRITTEN``,
``EMPTY`` or the value (hex), ``NOT_ALLOCATED``, ``TRIMMED``, ``SEALED``, ``CONTENTION``, and
``TIMEOUT`` when the outcome is unknown (no quorum answered, or the call was cancelled). Off
(the default), a call pays one attribute test.

Planted bugs (``bugs=``, :mod:`wormspace.impl.core.bugs`) reach the client's ballots and Paxos
ops: ``arbitrary_adopt``, ``read_without_repair``, ``reuse_capture_id``. Refinement tests only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..core.ballots import BallotCounter
from ..core.bugs import NO_BUGS, Bugs
from ..core.chain import (
    ChainCaptureOp,
    ChainCaptureWriteOp,
    ChainReadOp,
    ChainWriteOp,
)
from ..core.messages import MAX_RANGE, ZERO_BALLOT, Ballot, WorId
from ..core.ops import (
    CaptureOp,
    CaptureWriteOp,
    OpResult,
    Outcome,
    ReadOp,
    SealOp,
    TrimOp,
    WriteOp,
)
from ..core.range_ops import CaptureRangeOp, WriteRangeOp
from ..trace import OFF, Recorder, plain
from . import cluster as cluster_file
from .chain_ops import ChainSealOp, ChainTrimOp
from .cluster import ClusterConfig
from .connection import ClientError, Connection, ServerError, ServerUnreachable, WrongKey
from .driver import Hedge, SansIOOp, Unavailable, run_op
from .segments import AddressSpace, BadAddress

log = logging.getLogger("wormspace.client")

T = TypeVar("T")

#: ``write(a, v, cid=UNSAFE)``: the unsafe write (ballot 0, one round trip, single writer only).
UNSAFE = 0
TRIM_MARK = b"trimmed"
#: Environment variable naming a trace directory: clients and servers record there when set.
TRACE_ENV = "WORMSPACE_TRACE_DIR"


def recorder_for(node: str, directory: str | os.PathLike[str] | None = None) -> Recorder:
    """A recorder writing ``directory/<node>.ndjson`` (default ``$WORMSPACE_TRACE_DIR``), or
    the switched-off recorder when there is no directory."""
    d = directory if directory is not None else os.environ.get(TRACE_ENV) or None
    return OFF if not d else Recorder(node, os.path.join(d, f"{node}.ndjson"))


class WormSpaceError(ClientError):
    """A call ended with a WormSpace condition rather than a result (``code`` names it)."""

    code = "ERROR"


class Trimmed(WormSpaceError):
    """The segment was trimmed: its state is gone."""

    code = "TRIMMED"


class NotAllocated(WormSpaceError):
    """The segment has not been allocated (``alloc``) yet."""

    code = "NOT_ALLOCATED"


class Sealed(WormSpaceError):
    """The client's configuration epoch is sealed: re-read the cluster file."""

    code = "SEALED"


class Contention(WormSpaceError):
    """Still preempted by rival captures after the client's retries."""

    code = "CONTENTION"


@dataclass(frozen=True)
class Capture:
    """A capture id for ``address``: the ballot, and the value the capture revealed (if any),
    which a write with this capture id must finish. Transferable: any client may write with it.
    """

    address: int
    ballot: Ballot
    adopted: bytes | None = None

    def token(self) -> str:
        """Text form ``round:client[:hex-of-adopted]`` (for the command line)."""
        base = f"{self.ballot[0]}:{self.ballot[1]}"
        return base if self.adopted is None else f"{base}:{self.adopted.hex()}"

    @classmethod
    def from_token(cls, address: int, token: str) -> Capture:
        """Inverse of :meth:`token`."""
        parts = token.split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            ballot = (int(parts[0]), int(parts[1]))
            adopted = bytes.fromhex(parts[2]) if len(parts) == 3 else None
        except ValueError:
            raise BadAddress(f"bad capture id {token!r}: expected ROUND:CLIENT[:HEX]") from None
        if ballot[0] < 1 or ballot[1] < 1:
            raise BadAddress(f"bad capture id {token!r}: round and client are positive")
        return cls(address, ballot, adopted)


class Listener:
    """A ``listen`` subscription: ``callback(address, value)`` once per chosen write.

    A value is delivered when enough servers report it accepted at the same ballot to make it
    chosen (a majority for Paxos-WOR; the tail for Chain-WOR). Writes made while the listener
    was not connected are not replayed: read the segment to catch up. A write made by a
    thrifty client reaches exactly a majority, so all of those servers must reach the
    listener; by default the third usually reports it too.
    """

    def __init__(self, client: WormSpaceClient, segment: int, callback: Callable[[int, bytes],
                 Any], servers: tuple[str, ...], needed: int) -> None:
        self.client, self.segment, self.callback = client, segment, callback
        self.servers, self.needed = servers, needed
        self._votes: dict[int, dict[tuple[Ballot, bytes], set[str]]] = {}
        self.delivered: set[int] = set()

    def on_notify(self, server: str, offset: int, ballot: Ballot, value: bytes) -> None:
        """Count one server's report of an accepted write."""
        if server not in self.servers or offset in self.delivered:
            return
        voters = self._votes.setdefault(offset, {}).setdefault((ballot, value), set())
        voters.add(server)
        if len(voters) >= self.needed:
            self.delivered.add(offset)
            del self._votes[offset]
            try:
                self.callback(self.client.space.address(self.segment, offset), value)
            except Exception:
                log.exception("listen callback for segment %d failed", self.segment)

    async def close(self) -> None:
        """Stop listening."""
        await self.client._unlisten(self)


class WormSpaceClient:
    """An asyncio client of the cluster described by ``config``.

    ``timeout``: seconds before an op resends to the servers that have not answered;
    ``retries``: resends before :class:`Unavailable`; ``max_preempt``: fresh ballots tried when
    rival captures preempt a capture, a write without capture id, or a read's repair.
    ``recorder``: where to trace the calls (default: ``$WORMSPACE_TRACE_DIR/<node>.ndjson``
    if set, else off); ``node`` names the client in traces (default ``c<client_id>``).
    ``thrifty`` (Paxos-WOR, off by default): each phase of a capture, write or read goes to a
    majority first (chosen per segment), the rest only if one fails, refuses or is slower than
    ``hedge`` seconds (default: four times the recent op latency, 2 ms to ``timeout / 4``; see
    :class:`.driver.Hedge`); trim and seal always go to every server. It
    saves about a fifth to a third of the cluster's CPU per operation (``bench/RESULTS.md``),
    at a price in redundancy: an acknowledged write is then on exactly a majority, which is
    what Paxos-WOR guarantees (any ``f`` of ``2f+1`` servers may fail) and no more, whereas by
    default the others usually get it too, so a second failure often loses nothing. See
    :mod:`.driver`.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        timeout: float = 0.5,
        retries: int = 6,
        max_preempt: int = 20,
        client_id: int | None = None,
        bugs: Bugs = NO_BUGS,
        recorder: Recorder | None = None,
        node: str | None = None,
        thrifty: bool = False,
        hedge: float | None = None,
    ) -> None:
        self.config = config
        self.key = config.key()
        self.space = AddressSpace(config.segment_size, len(config.replica_sets))
        self.chain = config.protocol == "chain"
        self.epoch = config.epoch
        self.timeout, self.retries, self.max_preempt = timeout, retries, max_preempt
        self.thrifty = thrifty and not self.chain
        self.hedge: float | Hedge = (
            hedge if hedge is not None else Hedge(ceiling=max(0.002, timeout / 4)))
        self.client_id = client_id if client_id is not None else secrets.randbelow(2**62) + 1
        self.bugs = bugs
        self.ballots = BallotCounter(self.client_id, bugs=bugs)
        self.node = node or f"c{self.client_id}"
        self._owns_rec = recorder is None
        self.rec = recorder if recorder is not None else recorder_for(self.node)
        self._conns: dict[str, Connection] = {}
        self._allocated: set[int] = set()
        self._checking: dict[int, asyncio.Future[bytes | None]] = {}
        self._listeners: dict[int, list[Listener]] = {}

    @classmethod
    def from_file(cls, path: str, **options: Any) -> WormSpaceClient:
        """A client for the cluster file at ``path``."""
        return cls(cluster_file.load(path), **options)

    async def __aenter__(self) -> WormSpaceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection (and the trace file this client opened)."""
        for c in self._conns.values():
            await c.close()
        self._conns.clear()
        if self._owns_rec:
            self.rec.close()
        else:
            self.rec.flush()

    # -- tracing ---------------------------------------------------------------------------------

    def _where(self, address: int) -> dict[str, Any]:
        """``address`` and, if it is valid, its ``segment`` (trace arguments of data calls)."""
        size = self.space.size
        return ({"address": address, "segment": address // size}
                if type(address) is int and address >= 0 else {"address": address})

    async def _traced(self, op: str, args: dict[str, Any], call: Coroutine[Any, Any, T],
                      show: Callable[[T], Any]) -> T:
        """Run ``call`` between an ``invoke`` and a ``response`` event (``show`` the result)."""
        return await traced(self.rec, op, args, call, show)

    # -- plumbing --------------------------------------------------------------------------------

    def _conn(self, server_id: str) -> Connection:
        c = self._conns.get(server_id)
        if c is None:
            c = self._conns[server_id] = Connection(
                self.config.servers[server_id], self.key, connect_timeout=self.timeout,
                on_notify=self._on_notify)
        return c

    def _servers(self, segment: int) -> tuple[str, ...]:
        return self.config.replica_set(segment)

    async def _run(self, op: SansIOOp, segment: int, servers: Sequence[str] | None = None) -> OpResult:
        conns = [self._conn(s) for s in (servers or self._servers(segment))]
        # Trim and seal go to every server: a trim reclaims storage, a seal fences an epoch.
        prefer = segment if self.thrifty and not isinstance(op, (TrimOp, SealOp)) else None
        res = await run_op(op, conns, self.timeout, self.retries, self.rec, prefer=prefer,
                           hedge=self.hedge)
        if res.outcome is Outcome.TRIMMED:
            if not isinstance(op, (TrimOp, ChainTrimOp)):
                # One acceptor's TRIMMED means the trim was decided, but it may be applied at a
                # minority only (its client gave up; our op's own Trim messages may be lost).
                # Complete it at a majority before answering, so that every later call meets
                # it: a trim is final (WOS). If that fails the outcome is unknown (Unavailable).
                await run_op(self._trim_op(segment), conns, self.timeout, self.retries,
                             self.rec)
            raise Trimmed(f"segment {segment} is trimmed")
        if res.outcome is Outcome.SEALED:
            raise Sealed(f"epoch {self.epoch} is sealed: the cluster was reconfigured; "
                         "re-read the cluster file")
        return res

    async def _preemptible(self, make: Callable[[Ballot], SansIOOp], segment: int) -> OpResult:
        """Run ``make(ballot)`` until it is not PREEMPTED, with fresh ballots and back-off."""
        rival: Ballot | None = None
        res = OpResult(Outcome.PREEMPTED)
        for k in range(self.max_preempt):
            res = await self._run(make(self.ballots.next(above=rival)), segment)
            if res.outcome is not Outcome.PREEMPTED:
                return res
            rival = res.ballot
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**k)))
        return res

    def _n(self, segment: int) -> int:
        return len(self._servers(segment))

    async def _require_allocated(self, segment: int) -> None:
        if segment in self._allocated:
            return
        # Concurrent first uses of a segment share one check of its metadata WOR.
        pending = self._checking.get(segment)
        if pending is None:
            pending = self._checking[segment] = asyncio.ensure_future(self._check(segment))
            pending.add_done_callback(lambda f: self._checking.pop(segment, None))
        if await asyncio.shield(pending) is None:
            raise NotAllocated(f"segment {segment} is not allocated (alloc it first)")

    # -- segments --------------------------------------------------------------------------------

    async def alloc(self, segment: int, meta: bytes) -> bool:
        """Write ``meta`` into the segment's metadata WOR; True if ours won (first writer)."""
        if not self.rec.enabled:
            return await self._alloc(segment, meta)
        return await self._traced("alloc", {"segment": segment, "meta": meta},
                                  self._alloc(segment, meta), bool)

    async def _alloc(self, segment: int, meta: bytes) -> bool:
        wor = self.space.meta_wor(segment)
        _check_value(meta)
        res = await self._preemptible(lambda b: self._capture_write_op(wor, meta, b), segment)
        if res.outcome is Outcome.PREEMPTED:
            raise Contention(f"alloc({segment}): preempted {self.max_preempt} times")
        self._allocated.add(segment)
        return res.outcome is Outcome.OK

    async def check(self, segment: int) -> bytes | None:
        """The segment's metadata, or None if it is not allocated."""
        if not self.rec.enabled:
            return await self._check(segment)
        return await self._traced("check", {"segment": segment}, self._check(segment),
                                  lambda v: "NOT_ALLOCATED" if v is None else v.hex())

    async def _check(self, segment: int) -> bytes | None:
        value = await self._read_wor(self.space.meta_wor(segment))
        if value is not None:
            self._allocated.add(segment)
        return value

    async def trim(self, segment: int) -> None:
        """Decide (trim WOR) and apply the trim of ``segment``; later calls raise Trimmed."""
        if not self.rec.enabled:
            return await self._trim(segment)
        return await self._traced("trim", {"segment": segment}, self._trim(segment),
                                  lambda _: "OK")

    async def _trim(self, segment: int) -> None:
        await self._require_allocated(segment)
        wor = self.space.trim_wor(segment)
        try:
            await self._preemptible(lambda b: self._capture_write_op(wor, TRIM_MARK, b), segment)
        except Trimmed:
            return
        # Any value in the trim WOR means "trim": apply it at the servers.
        try:
            await self._run(self._trim_op(segment), segment)
        except Trimmed:
            pass  # TrimOp ends TRIMMED once a majority dropped the segment: that is success

    def _trim_op(self, segment: int) -> SansIOOp:
        n = self._n(segment)
        return (ChainTrimOp(segment, n, self.client_id, self.epoch) if self.chain
                else TrimOp(segment, n, self.epoch))

    async def seal(self, epoch: int) -> None:
        """Seal every epoch below ``epoch`` at every replica set (reconfiguration step 1)."""
        for i, rs in enumerate(self.config.replica_sets):
            op: SansIOOp = (ChainSealOp(epoch, len(rs), self.client_id) if self.chain
                            else SealOp(epoch, len(rs)))
            await self._run(op, i, rs)

    # -- single WORs -----------------------------------------------------------------------------

    def _capture_write_op(self, wor: WorId, value: bytes, ballot: Ballot) -> SansIOOp:
        n = self._n(wor.segment)
        if self.chain:
            return ChainCaptureWriteOp(wor, value, ballot, n, self.client_id, self.epoch)
        return CaptureWriteOp(wor, value, ballot, n, self.epoch, bugs=self.bugs)

    async def _read_wor(self, wor: WorId) -> bytes | None:
        n = self._n(wor.segment)
        if self.chain:
            res = await self._run(ChainReadOp(wor, n, self.client_id, self.epoch), wor.segment)
        else:
            res = await self._preemptible(lambda b: ReadOp(wor, b, n, self.epoch, bugs=self.bugs),
                                          wor.segment)
            if res.outcome is Outcome.PREEMPTED:
                raise Contention(f"read of {wor}: repair preempted {self.max_preempt} times")
        return res.value if res.outcome is Outcome.OK else None

    async def capture(self, address: int) -> Capture:
        """Capture the WOR at ``address``; the Capture is the (transferable) capture id."""
        if not self.rec.enabled:
            return await self._capture(address)
        return await self._traced("capture", self._where(address), self._capture(address),
                                  _show_capture)

    async def _capture(self, address: int) -> Capture:
        wor = self.space.data_wor(address)
        await self._require_allocated(wor.segment)
        n = self._n(wor.segment)
        if self.chain:
            res = await self._preemptible(
                lambda b: ChainCaptureOp(wor, b, n, self.client_id, self.epoch), wor.segment)
        else:
            res = await self._preemptible(lambda b: CaptureOp(wor, b, n, self.epoch, bugs=self.bugs),
                                          wor.segment)
        if res.outcome is not Outcome.OK or res.ballot is None:
            raise Contention(f"capture({address}): preempted {self.max_preempt} times")
        return Capture(address, res.ballot, res.adopted)

    async def write(self, address: int, value: bytes, cid: Capture | int | None = None) -> Outcome:
        """Write ``value`` at ``address``: OK, PREEMPTED or ALREADY_WRITTEN.

        ``cid``: a :class:`Capture` (one round trip; PREEMPTED if captured since), ``UNSAFE``
        (0: ballot 0, no capture, single writer only), or None (capture, then write, retrying
        with fresh ballots while preempted).
        """
        if not self.rec.enabled:
            return await self._write(address, value, cid)
        return await self._traced("write", {**self._where(address), "value": value,
                                            "cid": _show_cid(cid)},
                                  self._write(address, value, cid), _show_outcome)

    async def _write(self, address: int, value: bytes, cid: Capture | int | None = None
                     ) -> Outcome:
        wor = self.space.data_wor(address)
        _check_value(value)
        ballot, adopted = ZERO_BALLOT, None
        if isinstance(cid, Capture):
            if cid.address != address:
                raise BadAddress(f"capture id is for address {cid.address}, not {address}")
            ballot, adopted = cid.ballot, cid.adopted
        elif cid is not None and not (cid == UNSAFE and type(cid) is int):
            raise BadAddress(f"cid must be a Capture, UNSAFE (0) or None, got {cid!r:.40}")
        await self._require_allocated(wor.segment)
        n = self._n(wor.segment)
        if cid is None:
            res = await self._preemptible(lambda b: self._capture_write_op(wor, value, b),
                                          wor.segment)
            return res.outcome
        op: SansIOOp = (
            ChainWriteOp(wor, value, ballot, n, self.client_id, self.epoch, adopted=adopted)
            if self.chain else WriteOp(wor, value, ballot, n, self.epoch, adopted=adopted)
        )
        return (await self._run(op, wor.segment)).outcome

    async def read(self, address: int) -> bytes | None:
        """The value written at ``address``, or None if it is EMPTY (linearizable)."""
        if not self.rec.enabled:
            return await self._read(address)
        return await self._traced("read", self._where(address), self._read(address),
                                  lambda v: "EMPTY" if v is None else v.hex())

    async def _read(self, address: int) -> bytes | None:
        wor = self.space.data_wor(address)
        await self._require_allocated(wor.segment)
        return await self._read_wor(wor)

    # -- ranges ----------------------------------------------------------------------------------

    async def capture_range(self, segment: int, lo: int, hi: int) -> list[Capture]:
        """Capture offsets ``[lo, hi)`` of ``segment`` (one round trip with Paxos-WOR)."""
        if not self.rec.enabled:
            return await self._capture_range(segment, lo, hi)
        return await self._traced("capture_range", {"segment": segment, "lo": lo, "hi": hi,
                                                    "address": segment * self.space.size + lo},
                                  self._capture_range(segment, lo, hi),
                                  lambda cs: [_show_capture(c) for c in cs])

    async def _capture_range(self, segment: int, lo: int, hi: int) -> list[Capture]:
        self.space.check_range(segment, lo, hi)
        if hi - lo > MAX_RANGE:
            raise BadAddress(f"a range covers at most {MAX_RANGE} offsets")
        await self._require_allocated(segment)
        if self.chain:  # ranges are not chained (yet): one capture per offset, concurrently
            return list(await _gather(
                [self._capture(self.space.address(segment, o)) for o in range(lo, hi)]))
        n = self._n(segment)
        rival: Ballot | None = None
        for k in range(self.max_preempt):
            op = CaptureRangeOp(segment, lo, hi, self.ballots.next(above=rival), n, self.epoch,
                                bugs=self.bugs)
            res = await self._run(op, segment)
            per = op.range_result.per_offset if op.range_result is not None else ()
            lost = [r.ballot for r in per if r.outcome is Outcome.PREEMPTED and r.ballot]
            if res.outcome is Outcome.PREEMPTED and res.ballot is not None:
                lost.append(res.ballot)  # the driver gave up waiting (see driver.run_op)
            if not lost:
                return [Capture(self.space.address(segment, lo + i), op.ballot, r.adopted)
                        for i, r in enumerate(per)]
            rival = max(lost)
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**k)))
        raise Contention(f"capture_range({segment}, {lo}, {hi}): preempted "
                         f"{self.max_preempt} times")

    async def write_range(
        self, segment: int, lo: int, values: Sequence[bytes],
        captures: Sequence[Capture] | None = None,
    ) -> list[Outcome]:
        """Write ``values[i]`` at offset ``lo + i``; per-offset OK, PREEMPTED, ALREADY_WRITTEN.

        With ``captures`` (from :meth:`capture_range`) this is one round trip; without, the
        range is captured first.
        """
        if not self.rec.enabled:
            return await self._write_range(segment, lo, values, captures)
        args = {"segment": segment, "lo": lo, "address": segment * self.space.size + lo,
                "values": list(values),
                "cids": None if captures is None else [_show_cid(c) for c in captures]}
        return await self._traced("write_range", args,
                                  self._write_range(segment, lo, values, captures),
                                  lambda outs: [_show_outcome(o) for o in outs])

    async def _write_range(
        self, segment: int, lo: int, values: Sequence[bytes],
        captures: Sequence[Capture] | None = None,
    ) -> list[Outcome]:
        hi = lo + len(values)
        self.space.check_range(segment, lo, hi)
        for v in values:
            _check_value(v)
        if captures is None:
            captures = await self._capture_range(segment, lo, hi)
        addrs = [self.space.address(segment, o) for o in range(lo, hi)]
        if [c.address for c in captures] != addrs:
            raise BadAddress("captures must be one per offset of the range, in order")
        ballots = {c.ballot for c in captures}
        if self.chain or len(ballots) != 1 or hi - lo > MAX_RANGE:
            return list(await _gather([self._write(a, v, c)
                                       for a, v, c in zip(addrs, values, captures)]))
        op = WriteRangeOp(segment, lo, tuple(values), ballots.pop(), self._n(segment), self.epoch,
                          adopted=tuple(c.adopted for c in captures))
        await self._run(op, segment)
        if op.range_result is None:  # ended early as PREEMPTED: offsets not decided lost
            return [sub.result.outcome if sub.result is not None else Outcome.PREEMPTED
                    for sub in op.subs]
        return [r.outcome for r in op.range_result.per_offset]

    # -- listen ----------------------------------------------------------------------------------

    async def listen(self, segment: int, callback: Callable[[int, bytes], Any]) -> Listener:
        """Call ``callback(address, value)`` for each write chosen in ``segment`` from now on."""
        self.space.check_segment(segment)
        servers = self._servers(segment)
        if self.chain:
            servers, needed = servers[-1:], 1  # the tail holds only chosen values
        else:
            needed = len(servers) // 2 + 1
        listener = Listener(self, segment, callback, servers, needed)
        self._listeners.setdefault(segment, []).append(listener)
        futs = []
        for s in servers:
            c = self._conn(s)
            c.subscriptions.add(segment)
            futs.append(c.call("listen", segment=segment))
        results = await asyncio.gather(*(asyncio.wait_for(f, self.timeout * (self.retries + 1))
                                         for f in futs), return_exceptions=True)
        bad = [r for r in results if isinstance(r, BaseException)]
        fatal = [r for r in bad if isinstance(r, (WrongKey, ServerError))]
        if fatal:
            await listener.close()
            raise fatal[0]
        if len(results) - len(bad) < needed:
            await listener.close()
            raise Unavailable(f"listen({segment}): only {len(results) - len(bad)} of "
                              f"{len(servers)} servers subscribed ({bad[0]})")
        return listener

    async def _unlisten(self, listener: Listener) -> None:
        seg = listener.segment
        ls = self._listeners.get(seg, [])
        if listener in ls:
            ls.remove(listener)
        if ls:
            return
        for s in listener.servers:
            c = self._conn(s)
            c.subscriptions.discard(seg)
            fut = c.call("unlisten", segment=seg)
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _on_notify(self, server: str, segment: int, offset: int, ballot: Ballot,
                   value: bytes) -> None:
        for listener in self._listeners.get(segment, ()):
            listener.on_notify(server, offset, ballot, value)

    # -- cluster ---------------------------------------------------------------------------------

    async def status(self) -> dict[str, dict[str, Any]]:
        """Each server's status report (or ``{"error": ...}`` if it does not answer)."""

        async def one(sid: str) -> dict[str, Any]:
            try:
                r = await asyncio.wait_for(self._conn(sid).call("status"), self.timeout * 2)
                return dict(r)
            except (ClientError, TimeoutError) as exc:
                return {"error": str(exc) or "timeout"}

        ids = list(self.config.servers)
        return dict(zip(ids, await asyncio.gather(*(one(s) for s in ids))))


class SyncClient:
    """A blocking wrapper: a :class:`WormSpaceClient` on an event loop in a background thread.

    Same calls and errors, without ``await``; ``listen`` callbacks run on that thread. Use as a
    context manager or call :meth:`close`.
    """

    def __init__(self, cluster: str | ClusterConfig, **options: Any) -> None:
        config = cluster if isinstance(cluster, ClusterConfig) else cluster_file.load(cluster)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wormspace-client",
                                        daemon=True)
        self._thread.start()
        self.client = WormSpaceClient(config, **options)
        self.space = self.client.space

    def _call(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    def capture(self, address: int) -> Capture:
        """See :meth:`WormSpaceClient.capture`."""
        return self._call(self.client.capture(address))

    def write(self, address: int, value: bytes, cid: Capture | int | None = None) -> Outcome:
        """See :meth:`WormSpaceClient.write`."""
        return self._call(self.client.write(address, value, cid))

    def read(self, address: int) -> bytes | None:
        """See :meth:`WormSpaceClient.read`."""
        return self._call(self.client.read(address))

    def alloc(self, segment: int, meta: bytes) -> bool:
        """See :meth:`WormSpaceClient.alloc`."""
        return self._call(self.client.alloc(segment, meta))

    def check(self, segment: int) -> bytes | None:
        """See :meth:`WormSpaceClient.check`."""
        return self._call(self.client.check(segment))

    def trim(self, segment: int) -> None:
        """See :meth:`WormSpaceClient.trim`."""
        self._call(self.client.trim(segment))

    def seal(self, epoch: int) -> None:
        """See :meth:`WormSpaceClient.seal`."""
        self._call(self.client.seal(epoch))

    def capture_range(self, segment: int, lo: int, hi: int) -> list[Capture]:
        """See :meth:`WormSpaceClient.capture_range`."""
        return self._call(self.client.capture_range(segment, lo, hi))

    def write_range(self, segment: int, lo: int, values: Sequence[bytes],
                    captures: Sequence[Capture] | None = None) -> list[Outcome]:
        """See :meth:`WormSpaceClient.write_range`."""
        return self._call(self.client.write_range(segment, lo, values, captures))

    def listen(self, segment: int, callback: Callable[[int, bytes], Any]) -> Listener:
        """See :meth:`WormSpaceClient.listen` (``callback`` runs on the client's thread)."""
        return self._call(self.client.listen(segment, callback))

    def unlisten(self, listener: Listener) -> None:
        """Stop a listener."""
        self._call(listener.close())

    def status(self) -> dict[str, dict[str, Any]]:
        """See :meth:`WormSpaceClient.status`."""
        return self._call(self.client.status())

    def close(self) -> None:
        """Close the connections and stop the background thread."""
        if self._loop.is_closed():
            return
        self._call(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _gather(coros: Sequence[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*coros))


def _show_capture(c: Capture) -> dict[str, Any]:
    return {"ballot": list(c.ballot), "adopted": None if c.adopted is None else c.adopted.hex()}


def _show_cid(cid: Capture | int | None) -> Any:
    """A write's capture id in a trace: ``[round, client]``, 0 (unsafe) or None (none)."""
    return list(cid.ballot) if isinstance(cid, Capture) else plain(cid)


def _show_outcome(o: Outcome) -> str:
    return o.name  # OK, PREEMPTED, ALREADY_WRITTEN (the layer's response codes)


async def traced(rec: Recorder, op: str, args: dict[str, Any], call: Awaitable[T],
                 show: Callable[[T], Any]) -> T:
    """Await ``call`` between an ``invoke`` and a ``response`` event of ``rec`` (the result shown
    by ``show``, an exception by :func:`error_result`); just ``call`` when ``rec`` is off.
    Shared by the client library and the applications."""
    if not rec.enabled:
        return await call
    i = rec.invoke(op, **args)
    try:
        result = await call
    except BaseException as exc:
        rec.respond(i, op, error_result(exc))
        raise
    rec.respond(i, op, show(result))
    return result


def error_result(exc: BaseException) -> Any:
    """The ``response`` result of a call that raised ``exc``: ``TIMEOUT`` when its outcome is
    unknown, the WormSpace condition's code, else the error itself."""
    if isinstance(exc, (Unavailable, ServerUnreachable, TimeoutError, asyncio.CancelledError)):
        return "TIMEOUT"
    if isinstance(exc, WormSpaceError):
        return exc.code
    return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _check_value(value: object) -> None:
    if type(value) is not bytes:
        raise TypeError(f"values are bytes, got {type(value).__name__}")


__all__ = [
    "UNSAFE", "Capture", "ClientError", "Contention", "Listener", "NotAllocated", "Sealed",
    "ServerError", "ServerUnreachable", "SyncClient", "Trimmed", "Unavailable", "WormSpaceClient",
    "WormSpaceError", "WrongKey",
]

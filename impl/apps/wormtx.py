"""WormTX: non-blocking atomic commit over vote WORs (WORMSPACE.md section 3), variants E3 and A8.

One transaction = one segment, allocated by whoever starts it (``alloc`` makes the transaction
id unique); its metadata names the resource managers (RMs) and the variant. Offset ``i`` is the
vote WOR of ``rms[i]``; offset ``len(rms)`` is the decision WOR (A8 only). The starter captures
all of them in one ``capture_range`` and hands each RM the capture id of its vote WOR
(capture ids are transferable), so a vote is a one-round-trip write.

* An RM votes YES only after taking its local locks (no-wait: a lock held by another
  transaction means an immediate NO, and the transaction is restarted -- no deadlock can form)
  and writing a ``prepare`` record to its write-ahead log with fsync.
* The decision is COMMIT iff every *chosen* vote is YES: deterministic from the WORs, so every
  RM that learns it learns the same one.
* **E3** (no transaction manager): the initiating RM starts the transaction and contacts the
  others directly; every RM listens to the segment's vote WORs. An RM that times out on a
  stalled peer captures that peer's vote WOR and writes NO. First write wins: if the peer's YES
  was chosen first, the capture reveals it and the write finishes YES instead, so a chosen YES
  is never overturned; a stalled peer that writes later is preempted, reads the NO and aborts.
* **A8** (the baseline): a TM collects the votes (forcing NO on a timed-out RM the same way),
  writes the decision WOR, and tells the RMs; WORs are a black box to it.

RMs are in-process objects here (one per RM, each with its own client, WAL directory and lock
table); the protocol does not depend on that. A restarted RM replays its WAL, re-takes the
locks of prepared transactions and resolves them from the WORs (:meth:`ResourceManager.recover`).

Tracing (the RM client's recorder, or ``recorder=``): each RM records its vote as
``invoke``/``response`` (op ``vote``: ``tx``, ``rms``, ``rm``; result the *chosen* vote, hex)
and its outcome as one ``decide`` event (``tx``, ``decision``, ``rm``) when it first learns it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ..core.ops import Outcome
from ..net.client import Capture, Listener, WormSpaceClient, error_result
from ..storage.log import LogError, RecordLog
from ..trace import OFF, Recorder, plain
from . import TX_BASE
from .space import app_meta, last_allocated, member_of

log = logging.getLogger("wormspace.wormtx")

YES = b"yes"
NO_LOCKED = b"no:locked"  # a lock is held by another transaction (restart the transaction)
NO_EXPECT = b"no:expect"  # a precondition failed (a real abort)
NO_TIMEOUT = b"no:timeout"  # written by a peer (or the TM) that timed out on this RM
COMMIT = "commit"
ABORT = "abort"
VARIANTS = ("e3", "a8")


def is_yes(vote: bytes | None) -> bool:
    """Votes other than exactly YES count as NO (including any foreign value)."""
    return vote == YES


class TxError(Exception):
    """A transaction could not be run (bad arguments, an RM in use, no cluster)."""


@dataclass(frozen=True)
class TxInfo:
    """A transaction: its segment (the id), the RMs in vote order, and the variant."""

    tx: int
    rms: tuple[str, ...]
    variant: str

    def encode(self, nonce: int = 0, base: int | None = None) -> bytes:
        """As stored in the segment's metadata WOR (``nonce`` makes it unique per begin;
        ``base``: the first segment of the transactions' run, see :func:`.space.member_of`)."""
        return app_meta("wormtx", {"rms": list(self.rms), "variant": self.variant,
                                   "nonce": nonce}, base)

    @classmethod
    def decode(cls, tx: int, meta: bytes | None) -> TxInfo | None:
        """From a segment's metadata (None if not a WormTX transaction)."""
        try:
            m = msgpack.unpackb(meta) if meta else None
            if isinstance(m, dict) and m.get("app") == "wormtx":
                return cls(tx, tuple(m["rms"]), m["variant"])
        except Exception:
            pass
        return None


@dataclass
class Ops:
    """What a transaction does at one RM: ``writes`` to apply, ``expect``ed current values
    (None: absent) that must hold for the RM to vote YES."""

    writes: dict[str, bytes] = field(default_factory=dict)
    expect: dict[str, bytes | None] = field(default_factory=dict)

    def keys(self) -> set[str]:
        """Every key the transaction locks at this RM."""
        return set(self.writes) | set(self.expect)


@dataclass
class TxResult:
    """How a transaction ended: the chosen vote of each RM, the decision, and each RM's own
    outcome (all equal: atomicity), plus which votes were forced NO by a timed-out peer."""

    tx: int
    variant: str
    decision: str
    votes: dict[str, bytes]
    outcomes: dict[str, str]
    forced: list[str]
    attempts: int = 1


class _Votes:
    """The chosen votes of one transaction as an RM (or the TM) learns them."""

    def __init__(self, info: TxInfo, base_address: int) -> None:
        self.info, self.base = info, base_address
        self.votes: dict[int, bytes] = {}
        self.changed = asyncio.Event()

    def on_write(self, address: int, value: bytes) -> None:
        i = address - self.base
        if 0 <= i < len(self.info.rms) and i not in self.votes:
            self.votes[i] = value
            self.changed.set()

    def decided(self) -> str | None:
        if any(not is_yes(v) for v in self.votes.values()):
            return ABORT
        return COMMIT if len(self.votes) == len(self.info.rms) else None


async def force_vote(client: WormSpaceClient, address: int) -> tuple[bytes, bool]:
    """Capture a stalled vote WOR and write NO; returns ``(chosen vote, whether ours won)``.

    First write wins: if a vote was already chosen (or is half-written), the capture reveals
    it and the write finishes that value instead of NO.
    """
    out = await client.write(address, NO_TIMEOUT, None)
    if out is Outcome.OK:
        return NO_TIMEOUT, True
    chosen = await client.read(address)
    assert chosen is not None, "a write ended ALREADY_WRITTEN but the WOR reads EMPTY"
    return chosen, False


async def collect_votes(client: WormSpaceClient, info: TxInfo, votes: _Votes, timeout: float,
                        forced: list[str]) -> str:
    """Wait for the decision to follow from the chosen votes; after ``timeout``, read the
    missing votes (a write made before we listened is not notified) and force NO on those
    still EMPTY."""
    space = client.space
    try:
        while votes.decided() is None:
            votes.changed.clear()
            await asyncio.wait_for(votes.changed.wait(), timeout)
    except TimeoutError:
        missing = [i for i in range(len(info.rms)) if i not in votes.votes]
        addrs = [space.address(info.tx, i) for i in missing]
        for i, v in zip(missing, await asyncio.gather(*(client.read(a) for a in addrs))):
            if v is not None:
                votes.votes.setdefault(i, v)
        for i in [i for i in missing if i not in votes.votes]:
            chosen, ours = await force_vote(client, space.address(info.tx, i))
            votes.votes.setdefault(i, chosen)
            if ours and info.rms[i] not in forced:  # several peers may force the same NO
                forced.append(info.rms[i])
    decision = votes.decided()
    assert decision is not None
    return decision


class ResourceManager:
    """One RM: a local key-value store, a lock table and a write-ahead log in ``wal_dir``.

    ``durable=False`` keeps the WAL in memory (NOT durable; for benchmarks). ``stall``: seconds
    to stall after preparing and before voting (to demonstrate a stalled RM).
    """

    def __init__(self, name: str, client: WormSpaceClient, wal_dir: str | None, *,
                 durable: bool = True, vote_timeout: float = 0.5,
                 recorder: Recorder | None = None) -> None:
        self.name, self.client = name, client
        # (``tx show`` builds RMs without a client, to read their WALs)
        self.rec = recorder if recorder is not None else getattr(client, "rec", OFF)
        self.vote_timeout = vote_timeout
        self.store: dict[str, bytes] = {}
        self.locks: dict[str, int] = {}
        self.prepared: dict[int, tuple[TxInfo, Ops]] = {}  # prepared, outcome not yet known
        self.outcomes: dict[int, str] = {}
        self.last_tx: int | None = None
        self.stall = 0.0
        self.fsyncs = 0
        self._wal: RecordLog | None = None
        self._wal_lock = asyncio.Lock()
        if durable:
            if not wal_dir:
                raise TxError(f"RM {name}: a durable RM needs a WAL directory")
            os.makedirs(wal_dir, exist_ok=True)
            try:
                self._wal, records, rec = RecordLog.open(os.path.join(wal_dir, "wal.log"))
            except LogError as exc:
                raise TxError(f"RM {name}: cannot open its WAL: {exc}") from None
            if rec.dropped is not None:
                log.warning("RM %s: WAL tail dropped: %s", name, rec.dropped.reason)
            for r in records:
                self._replay(r)

    def close(self) -> None:
        """Close the WAL (releases its lock so another process may open this RM)."""
        if self._wal is not None:
            self._wal.close()
            self._wal = None

    # -- the WAL ---------------------------------------------------------------------------------

    def _replay(self, r: Any) -> None:
        kind, tx = r[0], r[1]
        self.last_tx = tx if self.last_tx is None else max(self.last_tx, tx)
        if kind == "prepare":
            info = TxInfo(tx, tuple(r[2]), r[3])
            ops = Ops(dict(r[4]), dict(r[5]))
            self.prepared[tx] = (info, ops)
            for k in ops.keys():
                self.locks[k] = tx
        elif kind in (COMMIT, ABORT):
            self._apply_outcome(tx, kind)

    async def _log(self, record: list[Any]) -> None:
        if self._wal is None:
            return
        async with self._wal_lock:  # one writer at a time; fsync off the event loop
            await asyncio.to_thread(self._wal.commit, [record])
        self.fsyncs += 1

    def _apply_outcome(self, tx: int, outcome: str) -> None:
        entry = self.prepared.pop(tx, None)
        self.outcomes[tx] = outcome
        if entry is None:
            return
        _info, ops = entry
        if outcome == COMMIT:
            self.store.update(ops.writes)
        for k in ops.keys():
            if self.locks.get(k) == tx:
                del self.locks[k]

    # -- voting ----------------------------------------------------------------------------------

    async def prepare(self, info: TxInfo, ops: Ops, cap: Capture | None) -> bytes:
        """Vote on ``info``: lock, log, then write the vote WOR; returns the *chosen* vote.

        A chosen NO (ours, or forced by a peer) aborts the transaction here at once.
        """
        if not self.rec.enabled:
            return await self._prepare(info, ops, cap)
        i = self.rec.invoke("vote", tx=info.tx, rms=list(info.rms), rm=self.name)
        try:
            vote = await self._prepare(info, ops, cap)
        except BaseException as exc:
            self.rec.respond(i, "vote", error_result(exc))
            raise
        self.rec.respond(i, "vote", plain(vote))
        return vote

    async def _prepare(self, info: TxInfo, ops: Ops, cap: Capture | None) -> bytes:
        tx = info.tx
        self.last_tx = tx if self.last_tx is None else max(self.last_tx, tx)
        keys = ops.keys()
        if any(self.locks.get(k, tx) != tx for k in keys):
            vote = NO_LOCKED  # no-wait locking: never wait for a lock, so no deadlock
        elif any(self.store.get(k) != v for k, v in ops.expect.items()):
            vote = NO_EXPECT
        else:
            for k in keys:
                self.locks[k] = tx
            self.prepared[tx] = (info, ops)
            await self._log(["prepare", tx, list(info.rms), info.variant, ops.writes, ops.expect])
            vote = YES
        if self.stall:
            await asyncio.sleep(self.stall)  # a stalled RM: peers will time out on it
        address = self.client.space.address(tx, info.rms.index(self.name))
        out = await self.client.write(address, vote, cap)
        if out is Outcome.PREEMPTED:
            # A peer that timed out captured our vote WOR; it may not have written NO yet.
            # Race it with a capture+write of our own: the first write wins either way.
            out = await self.client.write(address, vote, None)
        if out is not Outcome.OK:  # ALREADY_WRITTEN: the peer's NO (or a value it finished)
            chosen = await self.client.read(address)
            assert chosen is not None, "ALREADY_WRITTEN but the vote WOR reads EMPTY"
            vote = chosen
        if not is_yes(vote):
            await self.finish(tx, ABORT)
        return vote

    async def finish(self, tx: int, outcome: str) -> None:
        """Record and apply the outcome of ``tx`` (idempotent)."""
        if tx in self.outcomes:
            assert self.outcomes[tx] == outcome, f"RM {self.name}: tx {tx} outcome changed"
            return
        if tx in self.prepared:  # only a prepared tx has anything to undo or redo
            await self._log([outcome, tx])
        before = self.outcomes.get(tx)  # a concurrent finish may have decided while we logged
        self._apply_outcome(tx, outcome)
        if self.rec.enabled and before != outcome:
            self.rec.emit("decide", tx=tx, decision=outcome, rm=self.name)

    async def watch(self, info: TxInfo) -> tuple[_Votes, Listener]:
        """E3, step 1: listen to the transaction's vote WORs (before anyone can vote)."""
        votes = _Votes(info, self.client.space.address(info.tx, 0))
        return votes, await self.client.listen(info.tx, votes.on_write)

    async def participate_e3(self, info: TxInfo, ops: Ops, cap: Capture | None,
                             watch: tuple[_Votes, Listener], forced: list[str]) -> str:
        """E3, step 2: vote, then decide from the chosen votes (forcing NO on stalled RMs)."""
        votes, listener = watch
        try:
            mine = await self.prepare(info, ops, cap)
            votes.on_write(votes.base + info.rms.index(self.name), mine)
            decision = await collect_votes(self.client, info, votes, self.vote_timeout, forced)
        finally:
            await listener.close()
        await self.finish(info.tx, decision)
        return decision

    async def recover(self) -> dict[int, str]:
        """Resolve every prepared transaction whose outcome the WAL lacks (after a restart)."""
        done = {}
        for tx, (info, _ops) in list(self.prepared.items()):
            if info.variant == "a8":
                decision = await _read_or_force_decision(self.client, info)
            else:
                votes = _Votes(info, self.client.space.address(tx, 0))
                decision = await collect_votes(self.client, info, votes, 0.0, [])
            await self.finish(tx, decision)
            done[tx] = decision
        return done


async def _read_or_force_decision(client: WormSpaceClient, info: TxInfo) -> str:
    """A8 recovery: the decision WOR, or ABORT written into it if it is still EMPTY."""
    address = client.space.address(info.tx, len(info.rms))
    value = await client.read(address)
    if value is None:
        if await client.write(address, ABORT.encode(), None) is not Outcome.OK:
            value = await client.read(address)
        else:
            value = ABORT.encode()
    return COMMIT if value == COMMIT.encode() else ABORT


class WormTX:
    """Runs transactions across in-process RMs. ``client`` is the TM's (A8); in E3 the
    initiating RM's own client starts the transaction."""

    def __init__(self, client: WormSpaceClient, rms: dict[str, ResourceManager], *,
                 base: int = TX_BASE, vote_timeout: float = 0.5, max_attempts: int = 5) -> None:
        self.client, self.rms, self.base = client, rms, base
        self.vote_timeout, self.max_attempts = vote_timeout, max_attempts
        hints = [rm.last_tx + 1 for rm in rms.values() if rm.last_tx is not None]
        self._next: int | None = max(hints) if hints else None

    async def _first_free(self, client: WormSpaceClient) -> int:
        """A segment at or above every used one: the one after the run of allocated segments
        from the base (:func:`.space.last_allocated`, a galloping search), so a fresh process
        needs O(log n) checks."""
        last = await last_allocated(client, self.base, ours=member_of("wormtx", self.base))
        return self.base if last is None else last + 1

    async def begin(self, rms: list[str], variant: str, client: WormSpaceClient) -> TxInfo:
        """Allocate a fresh transaction segment (alloc: the id is unique)."""
        if self._next is None:
            first = await self._first_free(client)
            if self._next is None:  # a concurrent begin() may have set it meanwhile
                self._next = first
        for _ in range(64):
            tx, self._next = self._next, self._next + 1
            info = TxInfo(tx, tuple(rms), variant)
            # The nonce makes each attempt's metadata unique: alloc reports "ours won" when
            # the chosen value equals ours, so two identical allocs would both "win".
            if await client.alloc(tx, info.encode(nonce=secrets.randbits(63), base=self.base)):
                return info
        raise TxError("could not allocate a transaction segment in 64 tries")

    async def run(self, ops: dict[str, Ops], *, variant: str = "e3",
                  initiator: str | None = None) -> TxResult:
        """Run one transaction (restarted while an RM votes NO for a held lock)."""
        if variant not in VARIANTS:
            raise TxError(f"variant must be one of {VARIANTS}, got {variant!r}")
        unknown = sorted(set(ops) - set(self.rms))
        if unknown or not ops:
            raise TxError(f"unknown RMs {unknown} (known: {sorted(self.rms)})" if unknown
                          else "a transaction needs at least one RM")
        result: TxResult | None = None
        for attempt in range(1, self.max_attempts + 1):
            result = await self._attempt(ops, variant, initiator)
            result.attempts = attempt
            if result.decision == COMMIT or not all(
                    v == NO_LOCKED for v in result.votes.values() if not is_yes(v)):
                return result
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # immediate restart
        assert result is not None
        return result

    async def _attempt(self, ops: dict[str, Ops], variant: str,
                       initiator: str | None) -> TxResult:
        names = sorted(ops)
        starter = self.client if variant == "a8" else self.rms[initiator or names[0]].client
        info = await self.begin(names, variant, starter)
        n = len(names)
        forced: list[str] = []
        if variant == "e3":
            # The initiator contacts the RMs: they subscribe to the vote WORs while it captures
            # them (one round trip for both), so no vote can be chosen before they listen.
            caps, watches = await asyncio.gather(
                starter.capture_range(info.tx, 0, n),
                asyncio.gather(*(self.rms[r].watch(info) for r in names)))
            outcomes = await asyncio.gather(*(
                self.rms[r].participate_e3(info, ops[r], caps[i], watches[i], forced)
                for i, r in enumerate(names)))
            decision, votes = outcomes[0], watches[0][0].votes
        else:
            caps = await starter.capture_range(info.tx, 0, n + 1)  # votes + decision WORs
            decision, outcomes, votes = await self._tm(info, ops, caps, forced)
        return TxResult(info.tx, variant, decision,
                        {r: votes.get(i, b"") for i, r in enumerate(names)},
                        dict(zip(names, outcomes)), forced)

    async def _tm(self, info: TxInfo, ops: dict[str, Ops], caps: list[Capture],
                  forced: list[str]) -> tuple[str, list[str], dict[int, bytes]]:
        """A8: the TM collects the votes, writes the decision WOR, and tells the RMs."""
        names = info.rms
        votes = _Votes(info, self.client.space.address(info.tx, 0))
        tasks = [asyncio.ensure_future(self.rms[r].prepare(info, ops[r], caps[i]))
                 for i, r in enumerate(names)]

        def on_vote(i: int, f: asyncio.Future[bytes]) -> None:
            if not f.cancelled() and f.exception() is None:
                votes.on_write(votes.base + i, f.result())

        for i, t in enumerate(tasks):
            t.add_done_callback(functools.partial(on_vote, i))
        decision = await collect_votes(self.client, info, votes, self.vote_timeout, forced)
        address = self.client.space.address(info.tx, len(names))
        if await self.client.write(address, decision.encode(), caps[-1]) is not Outcome.OK:
            chosen = await self.client.read(address)  # an RM's recovery decided first
            decision = COMMIT if chosen == COMMIT.encode() else ABORT
        # Tell the RMs; a stalled RM learns ABORT from its own (forced) vote when it wakes.
        await asyncio.gather(*(self.rms[r].finish(info.tx, decision)
                               for r, t in zip(names, tasks) if t.done()))
        await asyncio.gather(*tasks)
        for r in names:
            await self.rms[r].finish(info.tx, decision)
        return decision, [self.rms[r].outcomes[info.tx] for r in names], votes.votes

"""WormPaxos: Multi-Paxos state-machine replication over WormSpace, and a KV store on it.

The replicated log is the address space from ``base`` on (WORMSPACE.md section 3):

* ``propose(cmd)`` writes the next free address; ``learn`` reads addresses in order and applies
  them. There is no commit broadcast: learners learn by (linearizable) reads.
* **Leader election** = ``alloc`` of the next segment with the leader's id in its metadata; only
  one contender wins a segment. A leader term owns exactly the segments it allocated.
* **Sticky leader**: the leader batch-captures its whole segment (``capture_range``, one round
  trip), so each command is then a one-round-trip write with a pre-taken capture id. When the
  segment is full, the leader allocates the next one itself.
* **Takeover** (our choice; the paper does not describe hole filling): a new leader captures
  every not-yet-learned address of its predecessors' segments. The capture preempts the old
  leader and reveals every chosen value (Paxos keeps it); the new leader rewrites those,
  fills the holes below the highest one with NO-OP, and writes an END marker after it. The
  rest of the segment stays captured and empty; learners skip from END to the next segment.
  Entries after the first END of a segment are ignored by every learner, so they are
  harmless even if a deposed leader's accept lands there at a minority.
* Commands carry ``(proposer, seq)``; the state machine applies each id once, so a proposal
  retried after a leader change (it may have been chosen in the old slot too) is not applied
  twice, and the retry returns the first result.

Linearizable reads (our choice: learn to the tail, no read marker): a proposal is acknowledged
only after the leader applied every address below it, so all those are chosen. A read
(``sync``) reads from its next unapplied address until the first EMPTY; every acknowledged
command lies before that EMPTY, so the state it returns includes every command acknowledged
before the read began. It costs one round trip on an up-to-date replica.

Tracing (the client's recorder, or ``recorder=``): ``propose`` as ``invoke``/``response``
(``pid``, ``payload``), each command a replica's state machine applies as ``apply`` (``index``:
its log address, ``value``: the log entry; a command found again at a later address, a retry,
is not applied again and not recorded), and the KV calls as ``invoke``/``response`` (``put``,
``get``, ``delete``, ``cas``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ..core.ops import Outcome
from ..net.client import Capture, WormSpaceClient, error_result, traced
from ..trace import Recorder, plain
from . import KV_BASE
from .space import capture_offsets, is_allocated, last_allocated, write_offsets

log = logging.getLogger("wormspace.wormpaxos")

NOOP = msgpack.packb(["noop"])
END = msgpack.packb(["end"])
ProposalId = tuple[int, int]


class NotLeader(Exception):
    """This replica lost (or could not win) the leadership while proposing."""


def encode_command(pid: ProposalId, payload: bytes) -> bytes:
    """A log entry carrying ``payload`` proposed as ``pid`` = (proposer, seq)."""
    out: bytes = msgpack.packb(["cmd", pid[0], pid[1], payload])
    return out


def decode_entry(value: bytes) -> tuple[str, ProposalId | None, bytes | None]:
    """``(kind, pid, payload)`` of a log entry; kind is ``cmd``, ``noop`` or ``end``.

    Anything else (a value written into the log's region by someone else) reads as a NO-OP:
    every replica decodes it the same way, so they stay in agreement.
    """
    try:
        e = msgpack.unpackb(value)
    except Exception:
        return "noop", None, None
    if e == ["end"]:
        return "end", None, None
    if (type(e) is list and len(e) == 4 and e[0] == "cmd" and type(e[1]) is int
            and type(e[2]) is int and type(e[3]) is bytes):
        return "cmd", (e[1], e[2]), e[3]
    return "noop", None, None


def leader_meta(node_id: str, nonce: int) -> bytes:
    """The metadata a leader writes into the segment it allocates. ``nonce`` (the proposer id,
    random per client) keeps it unique: ``alloc`` reports "ours won" whenever the chosen value
    equals ours, so two contenders with the same name must not write equal metadata."""
    out: bytes = msgpack.packb({"app": "wormpaxos", "leader": node_id, "nonce": nonce})
    return out


def leader_of(meta: bytes | None) -> str | None:
    """The leader named in a segment's metadata (None if absent or not WormPaxos')."""
    try:
        m = msgpack.unpackb(meta) if meta else None
    except Exception:
        return None
    return m.get("leader") if isinstance(m, dict) else None


@dataclass
class PaxosStats:
    """What this replica did (for the demo and tests)."""

    proposed: int = 0
    applied: int = 0
    duplicates: int = 0
    elections: int = 0
    lost_elections: int = 0
    step_downs: int = 0
    noops_written: int = 0
    values_kept: int = 0
    ends_written: int = 0
    takeovers: list[tuple[int, int, int]] = field(default_factory=list)  # (seg, kept, noops)


class WormPaxos:
    """One replica of a replicated state machine.

    ``apply(payload) -> result`` is the deterministic state machine; it runs on this replica's
    event loop, once per chosen command, in log order. Any replica can propose: one that is not
    the leader elects itself (allocating the next segment), so for a sticky leader send the
    proposals through one replica; safety never depends on that.
    """

    def __init__(self, client: WormSpaceClient, node_id: str, apply: Callable[[bytes], Any], *,
                 base: int = KV_BASE, read_batch: int = 32, max_attempts: int = 6,
                 recorder: Recorder | None = None) -> None:
        self.client, self.node_id, self._sm = client, node_id, apply
        self.rec = recorder if recorder is not None else client.rec
        self.base, self.size = base, client.space.size
        self.read_batch, self.max_attempts = read_batch, max_attempts
        self.proposer = client.client_id
        self.stats = PaxosStats()
        #: The next log address to apply; everything below it is applied.
        self.next_apply = base * self.size
        self._known: dict[int, bytes] = {}  # chosen values not yet applied (out of order)
        self._results: dict[ProposalId, Any] = {}  # applied proposals -> result (dedup)
        self._waiters: dict[int, tuple[ProposalId, asyncio.Future[Any]]] = {}
        self._seq = 0
        # Leader state: our segment, its capture ids, and the next free offset in it.
        self.segment: int | None = None
        self._caps: list[Capture] = []
        self._next_off = 0
        self._lock = asyncio.Lock()  # elections and segment changes, one at a time

    @property
    def is_leader(self) -> bool:
        """Whether this replica holds a leader segment (it may have been deposed since)."""
        return self.segment is not None

    # -- proposing -------------------------------------------------------------------------------

    async def propose(self, payload: bytes) -> Any:
        """Replicate ``payload``; return the state machine's result for it.

        Returns after the command is chosen and applied here (in log order). Raises
        :class:`NotLeader` if leadership could not be kept for ``max_attempts`` tries, and the
        client's errors (Unavailable...) if the cluster cannot be reached: then the command may
        or may not have been chosen.
        """
        self._seq += 1
        pid = (self.proposer, self._seq)
        if not self.rec.enabled:
            return await self._propose(pid, payload)
        i = self.rec.invoke("propose", pid=list(pid), payload=payload)
        try:
            result = await self._propose(pid, payload)
        except BaseException as exc:
            self.rec.respond(i, "propose", error_result(exc))
            raise
        self.rec.respond(i, "propose", plain(result))
        return result

    async def _propose(self, pid: ProposalId, payload: bytes) -> Any:
        entry = encode_command(pid, payload)
        self.stats.proposed += 1
        for _attempt in range(self.max_attempts):
            if pid in self._results:  # chosen by an earlier attempt (learned meanwhile)
                return self._results[pid]
            try:
                address, cap = await self._take_slot()
            except NotLeader:
                continue
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters[address] = (pid, fut)
            try:
                outcome = await self.client.write(address, entry, cap)
            except BaseException as exc:
                self._drop_waiter(address, fut)
                # The slot may stay a hole that only a takeover fills: a later proposal of
                # ours, chosen above it, would wait forever to be applied. Step down, so the
                # next proposal elects again and the takeover fills (or keeps) this slot.
                self._step_down(f"write at {address} failed: {type(exc).__name__}")
                raise
            if outcome is Outcome.OK:
                self._known[address] = entry
                self._advance()
            elif outcome is Outcome.PREEMPTED:
                # A new leader captured our slot: we are deposed. The slot is theirs to fill.
                self._drop_waiter(address, fut)
                self._step_down(f"write at {address} preempted")
                continue
            else:  # ALREADY_WRITTEN: cannot happen with our own fresh captures; learn it
                value = await self.client.read(address)
                if value is not None:
                    self._known[address] = value
                    self._advance()
            try:
                return await fut
            except NotLeader:
                continue
        if pid in self._results:
            return self._results[pid]
        raise NotLeader(f"{self.node_id}: could not keep the leadership in "
                        f"{self.max_attempts} attempts")

    def _drop_waiter(self, address: int, fut: asyncio.Future[Any]) -> None:
        w = self._waiters.get(address)
        if w is not None and w[1] is fut:
            del self._waiters[address]
        if not fut.done():
            fut.cancel()

    async def _take_slot(self) -> tuple[int, Capture]:
        """The next address of our segment and its capture id (electing or extending first)."""
        if self.segment is None or self._next_off >= self.size:
            async with self._lock:
                if self.segment is None:
                    await self._elect()
                elif self._next_off >= self.size:
                    await self._extend()
        assert self.segment is not None
        off = self._next_off
        self._next_off += 1
        return self.segment * self.size + off, self._caps[off]

    async def elect(self) -> bool:
        """Become the leader (allocating the next segment); False if another contender won."""
        async with self._lock:
            if self.segment is not None:
                return True
            try:
                await self._elect()
            except NotLeader:
                return False
            return True

    async def _elect(self) -> None:
        await self.sync()
        self.stats.elections += 1
        first = self.next_apply // self.size
        for _ in range(self.max_attempts):
            last = await last_allocated(self.client, first)
            target = first if last is None else last + 1
            if await self.client.alloc(target, leader_meta(self.node_id, self.proposer)):
                break
            self.stats.lost_elections += 1  # a concurrent contender took it: try above it
        else:
            raise NotLeader(f"{self.node_id}: lost {self.max_attempts} elections in a row")
        log.info("%s: leader of segment %d", self.node_id, target)
        await self._takeover(target)
        await self._own(target)

    async def _extend(self) -> None:
        """Our segment is full: allocate the next one; losing it means we were deposed."""
        assert self.segment is not None
        nxt = self.segment + 1
        if not await self.client.alloc(nxt, leader_meta(self.node_id, self.proposer)):
            self._step_down(f"segment {nxt} was allocated by another leader")
            raise NotLeader(f"{self.node_id}: deposed")
        await self._own(nxt)

    async def _own(self, segment: int) -> None:
        """Batch-capture our new segment: from now on a command is one write."""
        caps = await capture_offsets(self.client, segment, 0, self.size)
        start = 0
        revealed = [i for i, c in enumerate(caps) if c.adopted is not None]
        if revealed:
            # Someone wrote into our segment (a later leader that we then preempted?): finish
            # those values (Paxos rule) and propose after them.
            start = revealed[-1] + 1
            values = [c.adopted if c.adopted is not None else NOOP for c in caps[:start]]
            await self._write_takeover(segment, 0, values, caps[:start])
        self.segment, self._caps, self._next_off = segment, caps, start

    async def _takeover(self, target: int) -> None:
        """Capture the unlearned addresses of segments below ``target``, keep every value a
        capture reveals, fill the holes below it with NO-OP and end the segment with END."""
        while self.next_apply // self.size < target:
            seg, lo = divmod(self.next_apply, self.size)
            caps = await capture_offsets(self.client, seg, lo, self.size)
            adopted = [c.adopted for c in caps]
            kept = [i for i, a in enumerate(adopted) if a is not None]
            h = kept[-1] if kept else -1
            values = [a if a is not None else NOOP for a in adopted[:h + 1]]
            if h + 1 < len(caps) and not (h >= 0 and decode_entry(values[h])[0] == "end"):
                values.append(END)
                self.stats.ends_written += 1
            noops = sum(1 for a in adopted[:h + 1] if a is None)
            self.stats.noops_written += noops
            self.stats.values_kept += len(kept)
            self.stats.takeovers.append((seg, len(kept), noops))
            await self._write_takeover(seg, lo, values, caps[:len(values)])
            if self.next_apply // self.size == seg:
                # Only possible if the segment ended with our END (or a full segment): move on.
                self.next_apply = (seg + 1) * self.size

    async def _write_takeover(self, seg: int, lo: int, values: list[bytes],
                              caps: list[Capture]) -> None:
        if not values:
            return
        outs = await write_offsets(self.client, seg, lo, values, caps)
        if any(o is Outcome.PREEMPTED for o in outs):
            raise NotLeader(f"{self.node_id}: preempted while taking over segment {seg}")
        # OK or ALREADY_WRITTEN: either way the chosen value is values[i] (we wrote the
        # revealed value where there was one), so the learner may use them without reading.
        for i, v in enumerate(values):
            self._known[seg * self.size + lo + i] = v
        self._advance()

    def _step_down(self, why: str) -> None:
        if self.segment is None:
            return
        log.info("%s: no longer leader (%s)", self.node_id, why)
        self.stats.step_downs += 1
        self.segment, self._caps = None, []
        waiters, self._waiters = self._waiters, {}
        for _pid, fut in waiters.values():
            if not fut.done():
                fut.set_exception(NotLeader(why))

    # -- learning --------------------------------------------------------------------------------

    async def sync(self) -> int:
        """Learn up to the tail: read unapplied addresses in order until the first EMPTY.

        Returns the next unapplied address. Reads run in growing batches (1, 2, 4, ... up to
        ``read_batch``) so an up-to-date replica pays one round trip.
        """
        batch = 1
        while True:
            seg = self.next_apply // self.size
            if not await is_allocated(self.client, seg):
                return self.next_apply
            end = min((seg + 1) * self.size, self.next_apply + batch)
            addrs = [a for a in range(self.next_apply, end) if a not in self._known]
            values = await asyncio.gather(*(self.client.read(a) for a in addrs))
            empty = set()
            for a, v in zip(addrs, values):
                if v is None:
                    empty.add(a)
                else:
                    self._known[a] = v
            self._advance()
            if self.next_apply in empty:
                return self.next_apply
            batch = min(batch * 2, self.read_batch)

    def _advance(self) -> None:
        """Apply known chosen values in log order."""
        while self.next_apply in self._known:
            a = self.next_apply
            value = self._known.pop(a)
            kind, pid, payload = decode_entry(value)
            waiter = self._waiters.pop(a, None)
            result: Any = None
            if kind == "end":
                seg_end = (a // self.size + 1) * self.size
                for b in range(a + 1, seg_end):  # entries after END are not part of the log
                    self._known.pop(b, None)
                    w = self._waiters.pop(b, None)
                    if w is not None and not w[1].done():
                        w[1].set_exception(NotLeader(f"segment ended at {a}"))
                self.next_apply = seg_end
            else:
                if kind == "cmd":
                    assert pid is not None and payload is not None
                    if pid in self._results:
                        self.stats.duplicates += 1
                    else:
                        self._results[pid] = self._sm(payload)
                        self.stats.applied += 1
                        if self.rec.enabled:
                            self.rec.emit("apply", index=a, value=value.hex())
                    result = self._results[pid]
                self.next_apply = a + 1
            if waiter is not None and not waiter[1].done():
                if kind == "cmd" and pid == waiter[0]:
                    waiter[1].set_result(result)
                else:  # our slot holds another value (a NO-OP filled by a new leader)
                    waiter[1].set_exception(NotLeader(f"address {a} holds another value"))


# -- the KV store ---------------------------------------------------------------------------------


class KVStore:
    """A replicated key-value store: a :class:`WormPaxos` replica applying put/delete/cas.

    Keys are text, values bytes. Writes go through the log; ``get`` and ``items`` are
    linearizable (they learn up to the tail first, see the module docstring).
    """

    def __init__(self, client: WormSpaceClient, node_id: str, *, base: int = KV_BASE,
                 **options: Any) -> None:
        self.data: dict[str, bytes] = {}
        self.paxos = WormPaxos(client, node_id, self._apply, base=base, **options)
        self.rec = self.paxos.rec

    async def _traced(self, op: str, args: dict[str, Any], call: Any) -> Any:
        return await traced(self.rec, op, args, call, plain)

    def _apply(self, payload: bytes) -> Any:
        try:
            op = msgpack.unpackb(payload)
            name, key = op[0], op[1]
            if type(key) is not str:
                raise ValueError("key is not text")
            if name == "put":
                self.data[key] = op[2]
                return None
            if name == "delete":
                return self.data.pop(key, None) is not None
            if name == "cas":
                if self.data.get(key) != op[2]:
                    return False
                if op[3] is None:
                    self.data.pop(key, None)
                else:
                    self.data[key] = op[3]
                return True
            raise ValueError(f"unknown operation {name!r}")
        except Exception as exc:  # a malformed command changes nothing, on every replica alike
            log.warning("ignoring malformed KV command: %s", exc)
            return None

    async def put(self, key: str, value: bytes) -> None:
        """Set ``key`` to ``value``."""
        await self._traced("put", {"key": key, "value": value},
                           self.paxos.propose(msgpack.packb(["put", key, value])))

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was there."""
        return bool(await self._traced("delete", {"key": key},
                                       self.paxos.propose(msgpack.packb(["delete", key]))))

    async def cas(self, key: str, expected: bytes | None, new: bytes | None) -> bool:
        """Set ``key`` to ``new`` (None: delete) iff its value is ``expected`` (None: absent)."""
        return bool(await self._traced(
            "cas", {"key": key, "expected": expected, "new": new},
            self.paxos.propose(msgpack.packb(["cas", key, expected, new]))))

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` (linearizable), or None."""
        result: bytes | None = await self._traced("get", {"key": key}, self._get(key))
        return result

    async def _get(self, key: str) -> bytes | None:
        await self.paxos.sync()
        return self.data.get(key)

    async def items(self) -> dict[str, bytes]:
        """A linearizable snapshot of the whole store."""
        await self.paxos.sync()
        return dict(self.data)

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
* **Batching** (leader side, on by default): a proposal takes the next address at once while
  fewer than ``max_inflight`` writes are in flight; otherwise it waits in a queue, and each
  write that completes sends the queue's head (up to ``max_batch`` commands and
  ``max_batch_bytes``) as ONE entry, ``["batch", [[proposer, seq, payload], ...]]``, at the
  next address. A batch is one chosen value; applying it applies its commands in order, each
  through the same dedup by id. ``max_batch=1`` turns batching off (one entry per command).

Linearizable reads (our choice: learn to the tail, no read marker): a proposal is acknowledged
only after the leader applied every address below it, so all those are chosen. A read
(``sync``) reads from its next unapplied address until the first EMPTY; every acknowledged
command lies before that EMPTY, so the state it returns includes every command acknowledged
before the read began. It costs one round trip on an up-to-date replica.

Tracing (the client's recorder, or ``recorder=``): ``propose`` as ``invoke``/``response``
(``pid``, ``payload``), each command a replica's state machine applies as ``apply`` (``index``:
its log address, ``pos``: its position in a batch entry, 0 for a single command, ``value``: the
command as a single-command entry, i.e. the log entry itself unless it is a batch; a command
found again later, a retry, is not applied again and not recorded), and the KV calls as
``invoke``/``response`` (``put``, ``get``, ``delete``, ``cas``). ``(index, pos)`` orders the
applied commands; ``index * MAX_BATCH + pos`` is an increasing integer (a batch holds at most
``MAX_BATCH`` commands, or it reads as a NO-OP).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ..core.ops import Outcome
from ..net.client import Capture, WormSpaceClient, error_result, traced
from ..trace import Recorder, plain
from . import KV_BASE
from .space import (
    app_meta,
    capture_offsets,
    is_allocated,
    last_allocated,
    member_of,
    write_offsets,
)

log = logging.getLogger("wormspace.wormpaxos")

NOOP = msgpack.packb(["noop"])
END = msgpack.packb(["end"])
#: The most commands one batch entry may hold; a longer batch reads as a NO-OP. It bounds a
#: command's position in its entry, so ``address * MAX_BATCH + pos`` orders applied commands.
MAX_BATCH = 65536
ProposalId = tuple[int, int]
Command = tuple[ProposalId, bytes]


class NotLeader(Exception):
    """This replica lost (or could not win) the leadership while proposing."""


def encode_command(pid: ProposalId, payload: bytes, low: int | None = None) -> bytes:
    """A log entry carrying ``payload`` proposed as ``pid`` = (proposer, seq), with the
    proposer's watermark ``low`` (at most ``seq``; see :func:`encode_batch`) if given."""
    entry: list[object] = ["cmd", pid[0], pid[1], payload]
    if low is not None:
        entry.append(low)
    out: bytes = msgpack.packb(entry)
    return out


def encode_batch(commands: list[Command], low: tuple[int, int] | None = None) -> bytes:
    """One log entry carrying ``commands`` (``(pid, payload)`` pairs), applied in this order.

    ``low`` = ``(proposer, seq)``, a watermark: that proposer will never write again any of its
    commands numbered below ``seq`` (each was answered before this entry took its address, so
    every copy of it lies at a lower address). Once the entry is applied, replicas may forget
    those commands' results (kept only to answer a retry once): the results table stays the
    size of what proposers still have in flight."""
    body: list[object] = ["batch", [[pid[0], pid[1], payload] for pid, payload in commands]]
    if low is not None:
        body.append([low[0], low[1]])
    out: bytes = msgpack.packb(body)
    return out


def decode_entry(value: bytes) -> tuple[str, ProposalId | None, bytes | None]:
    """``(kind, pid, payload)`` of a log entry; kind is ``cmd``, ``batch``, ``noop`` or ``end``.

    A batch has no single pid or payload (``None``): see :func:`decode_commands`. Anything else
    (a value written into the log's region by someone else, a malformed batch) reads as a
    NO-OP: every replica decodes it the same way, so they stay in agreement.
    """
    kind, commands, _ = _decode(value)
    if kind == "cmd":
        return "cmd", commands[0][0], commands[0][1]
    return kind, None, None


def _is_command(c: Any) -> bool:
    return (type(c) is list and len(c) == 3 and type(c[0]) is int and type(c[1]) is int
            and type(c[2]) is bytes)


def decode_commands(value: bytes) -> tuple[str, list[Command]]:
    """``(kind, commands)`` of a log entry: ``cmd`` (one command), ``batch`` (1 to
    :data:`MAX_BATCH` commands, in the order they are applied), ``noop`` or ``end`` (none).

    A command is ``["cmd", proposer, seq, payload]``, optionally followed by a watermark
    ``low <= seq``; a batch is ``["batch", [[proposer, seq, payload], ...]]``, optionally
    followed by ``[proposer, low]``. A batch is well formed only as a whole (every element well
    formed); anything else reads as a NO-OP, on every replica alike.
    """
    kind, commands, _ = _decode(value)
    return kind, commands


Watermark = tuple[int, int]  # (proposer, seq): see encode_batch


def _decode(value: bytes) -> tuple[str, list[Command], Watermark | None]:
    """:func:`decode_commands`, and the entry's watermark if it carries one."""
    try:
        e = msgpack.unpackb(value)
    except Exception:
        return "noop", [], None
    if type(e) is not list or not e:
        return "noop", [], None
    if e == ["end"]:
        return "end", [], None
    n = len(e)
    if e[0] == "cmd" and n in (4, 5) and _is_command(e[1:4]):
        if n == 4:
            return "cmd", [((e[1], e[2]), e[3])], None
        low = e[4]
        if type(low) is int and 0 <= low <= e[2]:
            return "cmd", [((e[1], e[2]), e[3])], (e[1], low)
    elif (e[0] == "batch" and n in (2, 3) and type(e[1]) is list
            and 0 < len(e[1]) <= MAX_BATCH and all(_is_command(c) for c in e[1])):
        commands = [((c[0], c[1]), c[2]) for c in e[1]]
        if n == 2:
            return "batch", commands, None
        w = e[2]
        if type(w) is list and len(w) == 2 and type(w[0]) is int and type(w[1]) is int \
                and w[1] >= 0:
            return "batch", commands, (w[0], w[1])
    return "noop", [], None


def leader_meta(node_id: str, nonce: int, base: int | None = None) -> bytes:
    """The metadata a leader writes into the segment it allocates. ``nonce`` (the proposer id,
    random per client) keeps it unique: ``alloc`` reports "ours won" whenever the chosen value
    equals ours, so two contenders with the same name must not write equal metadata. ``base``:
    the log's first segment, which tells this log's segments from another's (see
    :func:`.space.member_of`)."""
    return app_meta("wormpaxos", {"leader": node_id, "nonce": nonce}, base)


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
    batches: int = 0  # batch entries (two or more commands) this replica wrote, answered OK
    batched_commands: int = 0  # the commands in them
    takeovers: list[tuple[int, int, int]] = field(default_factory=list)  # (seg, kept, noops)


class WormPaxos:
    """One replica of a replicated state machine.

    ``apply(payload) -> result`` is the deterministic state machine; it runs on this replica's
    event loop, once per chosen command, in log order. Any replica can propose: one that is not
    the leader elects itself (allocating the next segment), so for a sticky leader send the
    proposals through one replica; safety never depends on that.

    Batching: while ``max_inflight`` writes are in flight, new proposals queue; each completed
    write sends the queue's head as one entry of up to ``max_batch`` commands and
    ``max_batch_bytes`` of payload (a larger single command goes alone). ``max_batch=1``: no
    batching, every proposal takes its own address at once, with no bound on writes in flight.
    """

    def __init__(self, client: WormSpaceClient, node_id: str, apply: Callable[[bytes], Any], *,
                 base: int = KV_BASE, read_batch: int = 32, max_attempts: int = 6,
                 max_batch: int = 256, max_inflight: int = 4, max_batch_bytes: int = 1 << 20,
                 results_kept: int = 100_000, recorder: Recorder | None = None) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be in 1..{MAX_BATCH}, not {max_batch}")
        if max_inflight < 1 or max_batch_bytes < 1 or results_kept < 1:
            raise ValueError("max_inflight, max_batch_bytes and results_kept must be positive")
        self.results_kept = results_kept
        self.max_batch, self.max_inflight = max_batch, max_inflight
        self.max_batch_bytes = max_batch_bytes
        self.client, self.node_id, self._sm = client, node_id, apply
        self.rec = recorder if recorder is not None else client.rec
        self.base, self.size = base, client.space.size
        self.read_batch, self.max_attempts = read_batch, max_attempts
        self.proposer = client.client_id
        self.stats = PaxosStats()
        #: The next log address to apply; everything below it is applied.
        self.next_apply = base * self.size
        self._known: dict[int, bytes] = {}  # chosen values not yet applied (out of order)
        #: The commands of entries this replica wrote and saw chosen, with the entry they were
        #: encoded into: applying them needs no decoding (they decode to exactly these, since
        #: ``propose`` takes bytes only).
        self._decoded: dict[int, tuple[bytes, list[Command], Watermark]] = {}
        self._results: dict[ProposalId, Any] = {}  # applied proposals -> result (dedup)
        #: Each proposer's watermark from the entries applied: its commands numbered below it
        #: will never come again, so their results may go (once the table holds more than
        #: ``results_kept``; see encode_batch).
        self._low: dict[int, int] = {}
        self._prune_at = results_kept
        # Our own proposals, for the watermark: every seq below _done_below is answered;
        # _done_above holds those answered above it (seqs are taken as proposals start).
        self._done_below = 1
        self._done_above: set[int] = set()
        # address -> the proposals our write there carries (pid and result future, in order)
        self._waiters: dict[int, list[_Queued]] = {}
        self._seq = 0
        self._inflight = 0  # entries between taking a slot and the write's answer
        self._queue: deque[_Queued] = deque()  # proposals waiting for the next batch
        self._tasks: set[asyncio.Task[None]] = set()  # batch writes running on their own
        # Leader state: our segment, its capture ids, and the next free offset in it.
        self.segment: int | None = None
        self._caps: list[Capture] = []
        self._next_off = 0
        #: Which election the leader state comes from: a write's failure deposes only the
        #: term that wrote it (an older term's late PREEMPTED, often from our own takeover,
        #: must not depose the term elected since).
        self._term = 0
        self._lock = asyncio.Lock()  # elections and segment changes, one at a time

    @property
    def is_leader(self) -> bool:
        """Whether this replica holds a leader segment (it may have been deposed since)."""
        return self.segment is not None

    # -- proposing -------------------------------------------------------------------------------

    def propose(self, payload: bytes) -> Awaitable[Any]:
        """Replicate ``payload``; ``await`` it for the state machine's result.

        The result comes after the command is chosen and applied here (in log order). Raises
        :class:`NotLeader` if leadership could not be kept for ``max_attempts`` tries, and the
        client's errors (Unavailable...) if the cluster cannot be reached: then the command may
        or may not have been chosen. ``payload`` must be bytes (TypeError, at once).

        A plain method returning the proposal's coroutine, not a coroutine of its own: at tens
        of thousands of commands per second each coroutine layer is a visible share of the
        leader's CPU (``bench/paxos_path_bench.py``).
        """
        if type(payload) is not bytes:
            raise TypeError(f"a command is bytes, got {type(payload).__name__}")
        if not self.rec.enabled:
            return self._propose(payload)
        return self._propose_traced(payload)

    async def _propose_traced(self, payload: bytes) -> Any:
        self._seq += 1
        pid = (self.proposer, self._seq)
        i = self.rec.invoke("propose", pid=list(pid), payload=payload)
        try:
            result = await self._propose(payload, pid)
        except BaseException as exc:
            self.rec.respond(i, "propose", error_result(exc))
            raise
        self.rec.respond(i, "propose", plain(result))
        return result

    async def _propose(self, payload: bytes, pid: ProposalId | None = None) -> Any:
        """Propose ``payload`` as ``pid`` (by default the next of ours, taken now that the
        proposal runs: a coroutine never run takes none, so it cannot hold the watermark)."""
        if pid is None:
            self._seq += 1
            pid = (self.proposer, self._seq)
        self.stats.proposed += 1
        loop = asyncio.get_running_loop()
        try:
            for _attempt in range(self.max_attempts):
                if pid in self._results:  # chosen by an earlier attempt (learned meanwhile)
                    return self._results[pid]
                q = _Queued(pid, payload, loop.create_future())
                if self.max_batch == 1 or self._inflight < self.max_inflight:
                    self._inflight += 1  # a slot of our own, at once (pipelining)
                    await self._write_entry([q])
                else:
                    self._queue.append(q)  # the next write that completes sends us in a batch
                try:
                    return await q.fut
                except NotLeader:
                    continue
            if pid in self._results:
                return self._results[pid]
            raise NotLeader(f"{self.node_id}: could not keep the leadership in "
                            f"{self.max_attempts} attempts")
        finally:  # answered: no write of it can start any more (see _write_batch)
            seq = pid[1]
            if seq == self._done_below:
                seq += 1
                above = self._done_above
                while seq in above:
                    above.remove(seq)
                    seq += 1
                self._done_below = seq
            else:
                self._done_above.add(seq)

    async def _write_entry(self, batch: list[_Queued]) -> None:
        """Write ``batch`` as one entry at our next address; answer every proposal in it.

        Never raises for the proposals (each gets the outcome on its future: the result once
        applied here, :class:`NotLeader` to retry, or the error); only cancellation propagates.
        The caller counted this write in ``_inflight``; when it is answered, the queue's head
        goes out as the next batch.
        """
        try:
            await self._write_batch(batch)
        except BaseException as exc:
            for q in batch:
                if not q.fut.done():
                    if isinstance(exc, Exception):
                        q.fut.set_exception(exc)
                    else:
                        q.fut.cancel()
            if not isinstance(exc, Exception):
                raise
        finally:
            self._inflight -= 1
            self._flush()

    async def _write_batch(self, batch: list[_Queued]) -> None:
        address, cap, term = await self._take_slot()  # NotLeader: every proposal retries
        # A proposal whose proposer went away while we waited for the slot is not written: a
        # later entry's watermark may already have said it never comes again. (The slot is
        # ours to fill: a NO-OP if nothing is left.)
        batch = [q for q in batch if not q.fut.done()]
        # Our watermark, taken now that the address is: every seq below it is answered, so
        # each of its writes took a lower address than this one.
        low = self._done_below
        if not batch:
            entry = NOOP
        elif len(batch) == 1:
            entry = encode_command(batch[0].pid, batch[0].payload, low)
        else:
            entry = encode_batch([(q.pid, q.payload) for q in batch], (self.proposer, low))
        waiters = self._waiters[address] = list(batch)
        try:
            outcome = await self.client.write(address, entry, cap)
        except BaseException as exc:
            self._drop_waiters(address, waiters)
            # The slot may stay a hole that only a takeover fills: a later proposal of
            # ours, chosen above it, would wait forever to be applied. Step down, so the
            # next proposal elects again and the takeover fills (or keeps) this slot.
            self._step_down(f"write at {address} failed: {type(exc).__name__}", term)
            raise
        if outcome is Outcome.OK:
            if len(batch) > 1:
                self.stats.batches += 1
                self.stats.batched_commands += len(batch)
            self._known[address] = entry
            if batch:
                self._decoded[address] = (entry, [(q.pid, q.payload) for q in batch],
                                          (self.proposer, low))
            self._advance()
        elif outcome is Outcome.PREEMPTED:
            # A new leader captured our slot: we are deposed. The slot is theirs to fill.
            self._drop_waiters(address, waiters)
            self._step_down(f"write at {address} preempted", term)
            raise NotLeader(f"write at {address} preempted")
        else:  # ALREADY_WRITTEN: cannot happen with our own fresh captures; learn it
            try:
                value = await self.client.read(address)
            except BaseException:
                self._drop_waiters(address, waiters)
                raise
            if value is None:
                # Impossible for a correct cluster (a finished write leaves a chosen value), but
                # never leave proposers waiting on it: they retry, as after a preemption.
                self._drop_waiters(address, waiters)
                self._step_down(f"write at {address} answered ALREADY_WRITTEN but reads EMPTY",
                                term)
                raise NotLeader(f"address {address}: already written but reads EMPTY")
            self._known[address] = value
            self._advance()

    def _flush(self) -> None:
        """Send queued proposals, a batch per free write slot, each as its own task."""
        while self._queue and self._inflight < self.max_inflight:
            batch: list[_Queued] = []
            size = 0
            while self._queue and len(batch) < self.max_batch:
                q = self._queue[0]
                if q.fut.done():  # its proposer was cancelled while it waited
                    self._queue.popleft()
                    continue
                if q.pid in self._results:  # a retry whose first attempt we learned meanwhile
                    self._queue.popleft().fut.set_result(self._results[q.pid])
                    continue
                if batch and size + len(q.payload) + 16 > self.max_batch_bytes:
                    break  # (16: a generous bound on the per-command encoding overhead)
                batch.append(self._queue.popleft())
                size += len(q.payload) + 16
            if not batch:
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._write_entry(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _drop_waiters(self, address: int, waiters: list[_Queued]) -> None:
        """Forget our proposals at ``address`` (their futures are answered by the caller)."""
        if self._waiters.get(address) is waiters:
            del self._waiters[address]

    async def reserve_slot(self) -> tuple[int, Capture]:
        """Take the next address of our segment and its capture id without proposing anything
        there (electing or extending first): for fault injection (the demo, tests). Left
        unwritten it is a hole, which the next leader's takeover fills with NO-OP; a command
        written there (``encode_command``) with the capture id is applied like any other."""
        address, cap, _term = await self._take_slot()
        return address, cap

    async def _take_slot(self) -> tuple[int, Capture, int]:
        """The next address of our segment, its capture id and our term (electing or extending
        first)."""
        if self.segment is None or self._next_off >= self.size:
            async with self._lock:
                if self.segment is None:
                    await self._elect()
                elif self._next_off >= self.size:
                    await self._extend()
        assert self.segment is not None
        off = self._next_off
        self._next_off += 1
        return self.segment * self.size + off, self._caps[off], self._term

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
        self._term += 1
        first = self.next_apply // self.size
        for _ in range(self.max_attempts):
            last = await last_allocated(self.client, first,
                                        ours=member_of("wormpaxos", self.base))
            target = first if last is None else last + 1
            if await self.client.alloc(target, leader_meta(self.node_id, self.proposer, self.base)):
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
        if not await self.client.alloc(nxt, leader_meta(self.node_id, self.proposer, self.base)):
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
            if any(decode_entry(v)[0] == "end" for v in values):
                # A later leader's takeover ended our segment before we captured it (we were
                # slow between alloc and capture): nothing after its END is part of the log,
                # so a command proposed there would be acknowledged by no one. We are deposed.
                self._step_down(f"segment {segment} was ended by a later leader")
                raise NotLeader(f"{self.node_id}: segment {segment} ended before we owned it")
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

    def _step_down(self, why: str, term: int | None = None) -> None:
        """Give up the leadership (of ``term`` only, if given: a later term stays)."""
        if self.segment is None or (term is not None and term != self._term):
            return
        log.info("%s: no longer leader (%s)", self.node_id, why)
        self.stats.step_downs += 1
        self.segment, self._caps = None, []
        waiters, self._waiters = self._waiters, {}
        for ws in waiters.values():
            for w in ws:
                if not w.fut.done():
                    w.fut.set_exception(NotLeader(why))

    # -- learning --------------------------------------------------------------------------------

    async def sync(self) -> int:
        """Learn up to the tail: read unapplied addresses in order until the first EMPTY.

        Returns the next unapplied address. Reads run in growing batches (1, 2, 4, ... up to
        ``read_batch``) so an up-to-date replica pays one round trip. A new segment starts with
        a batch as long as the last segment's entries (at least 2), and whether the next segment
        is allocated is asked in the same round trip as a segment's reads: terms that hold a
        command or two and an END (a short-lived ``wormspace kv`` command's) then cost one round
        trip each, not two round trips and ``read_batch`` reads mostly past the END.

        The answer is as fresh as a linearizable read needs: every check and read is issued
        after the call began, so an entry acknowledged before it is seen (a segment found free
        then held no such entry).
        """
        batch = 1
        allocated: dict[int, bool] = {}  # segments checked in this call
        while True:
            seg = self.next_apply // self.size
            if seg not in allocated:
                allocated[seg] = await is_allocated(self.client, seg)
            if not allocated[seg]:
                return self.next_apply
            end = min((seg + 1) * self.size, self.next_apply + batch)
            addrs = [a for a in range(self.next_apply, end) if a not in self._known]
            reads = asyncio.gather(*(self.client.read(a) for a in addrs))
            if seg + 1 not in allocated:  # check the next segment in the same round trip
                values, allocated[seg + 1] = await asyncio.gather(
                    reads, is_allocated(self.client, seg + 1))
            else:
                values = await reads
            empty = set()
            used = -1  # the last address of this segment found written
            for a, v in zip(addrs, values):
                if v is None:
                    empty.add(a)
                else:
                    self._known[a] = v
                    used = a
            self._advance()
            if self.next_apply in empty:
                return self.next_apply
            if self.next_apply // self.size != seg and used >= 0:
                batch = max(2, min(self.read_batch, used - seg * self.size + 1))
            else:
                batch = min(batch * 2, self.read_batch)

    def _advance(self) -> None:
        """Apply known chosen values in log order (a batch's commands in the batch's order)."""
        while self.next_apply in self._known:
            a = self.next_apply
            value = self._known.pop(a)
            mine = self._decoded.pop(a, None)
            low: Watermark | None
            if mine is not None and mine[0] is value:
                commands, low = mine[1], mine[2]
                kind = "cmd" if len(commands) == 1 else "batch"
            else:
                kind, commands, low = _decode(value)
            if low is not None and low[1] > self._low.get(low[0], 0):
                self._low[low[0]] = low[1]
            waiters = self._waiters.pop(a, ())
            if kind == "end":
                seg_end = (a // self.size + 1) * self.size
                for b in range(a + 1, seg_end):  # entries after END are not part of the log
                    self._known.pop(b, None)
                    self._decoded.pop(b, None)
                    for w in self._waiters.pop(b, ()):
                        if not w.fut.done():
                            w.fut.set_exception(NotLeader(f"segment ended at {a}"))
                self.next_apply = seg_end
            else:
                results, sm, traced = self._results, self._sm, self.rec.enabled
                applied = 0
                for pos, (pid, payload) in enumerate(commands):
                    if pid in results:
                        continue  # a retry of a command applied before
                    results[pid] = sm(payload)
                    applied += 1
                    if traced:
                        one = value if kind == "cmd" else encode_command(pid, payload)
                        self.rec.emit("apply", index=a, pos=pos, value=one.hex())
                self.stats.applied += applied
                self.stats.duplicates += len(commands) - applied
                self.next_apply = a + 1
            if waiters:
                # Our own entry: its waiters are exactly its commands (no set to build).
                here = None if mine is not None and mine[0] is value else {
                    pid for pid, _ in commands}
                results = self._results
                for w in waiters:
                    if w.fut.done():
                        continue
                    if here is None or w.pid in here:
                        w.fut.set_result(results[w.pid])
                    else:  # our slot holds another value (a NO-OP filled by a new leader)
                        w.fut.set_exception(NotLeader(f"address {a} holds another value"))
        if len(self._results) > self._prune_at:
            self._forget()

    def _forget(self) -> None:
        """Drop the results no retry can ask for any more: every proposer's commands below its
        latest watermark (see encode_batch). Runs when the table has doubled since the last
        time (or passed ``results_kept``), so it costs O(1) per command."""
        low = self._low
        self._results = {pid: r for pid, r in self._results.items()
                         if pid[1] >= low.get(pid[0], 0)}
        self._prune_at = max(self.results_kept, 2 * len(self._results))


@dataclass(slots=True)
class _Queued:
    """A proposal on its way into the log: its id, payload and the future of its result."""

    pid: ProposalId
    payload: bytes
    fut: asyncio.Future[Any]


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

    def put(self, key: str, value: bytes) -> Awaitable[None]:
        """Set ``key`` to ``value`` (``await`` it; see :meth:`WormPaxos.propose` for why this
        is a plain method)."""
        command: bytes = msgpack.packb(["put", key, value])
        if not self.rec.enabled:  # the common path: no tracing wrapper per command
            return self.paxos.propose(command)  # a put's result is None
        return self._traced("put", {"key": key, "value": value}, self.paxos.propose(command))

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

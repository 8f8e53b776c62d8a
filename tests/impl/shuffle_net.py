"""A seeded in-memory network for Paxos-WOR tests: loss, duplication, reordering, crashes.

It drives N acceptors and any number of client ops, and keeps the history a checker needs:
every vote (acceptor, WOR, ballot, value), when each op started and ended, and its result.
Crashes rebuild an acceptor from the records it persisted, so a missing record shows up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from wormspace.impl.core import (
    NO_BUGS,
    Acceptor,
    BallotCounter,
    Bugs,
    Op,
    OpResult,
    Outcome,
    Record,
    WorId,
    WorRecord,
    replay,
)


@dataclass
class Tracked:
    """An op with its history: kind ("write"/"read"), WOR, value, start/end step, result."""

    op: Op
    kind: str
    wor: WorId
    value: bytes | None
    counter: BallotCounter
    start: int
    end: int | None = None
    result: OpResult | None = None
    restarts: int = 0


@dataclass
class ShuffleNet:
    seed: int
    n: int
    loss: float = 0.1
    dup: float = 0.1
    crash: float = 0.0
    bugs: Bugs = NO_BUGS
    rng: random.Random = field(init=False)
    acceptors: list[Acceptor] = field(init=False)
    durable: list[list[Record]] = field(init=False)
    pending: list[list[Record]] = field(init=False)  # deferred (bug) records not yet on disk
    inflight: list[tuple[str, int, int, object]] = field(default_factory=list)
    ops: list[Tracked] = field(default_factory=list)
    votes: dict[tuple[WorId, tuple[int, int], bytes], set[int]] = field(default_factory=dict)
    chosen: dict[WorId, dict[bytes, int]] = field(default_factory=dict)  # value -> step chosen
    backoff: list[tuple[int, int, tuple[int, int]]] = field(default_factory=list)
    step_no: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.acceptors = [Acceptor(bugs=self.bugs) for _ in range(self.n)]
        self.durable = [[] for _ in range(self.n)]
        self.pending = [[] for _ in range(self.n)]

    # -- clients ---------------------------------------------------------------------------------

    def submit(self, op: Op, kind: str, wor: WorId, value: bytes | None, counter: BallotCounter) -> None:
        t = Tracked(op, kind, wor, value, counter, self.step_no)
        self.ops.append(t)
        self._send(len(self.ops) - 1, op.start())

    def _send(self, op_id: int, sends: list) -> None:
        for i, req in sends:
            self.inflight.append(("acc", i, op_id, req))

    # -- the network -------------------------------------------------------------------------------

    def step(self) -> bool:
        """Deliver (or lose) one random message; False when nothing is in flight."""
        self._restart_due(idle=not self.inflight)
        if not self.inflight:
            return False
        self.step_no += 1
        msg = self.inflight.pop(self.rng.randrange(len(self.inflight)))
        if self.rng.random() < self.dup:
            self.inflight.append(msg)
        if self.rng.random() < self.loss:
            return True
        where, idx, op_id, payload = msg
        if where == "acc":
            if self.crash and self.rng.random() < self.crash:
                self._crash(idx)
            reply, persist = self.acceptors[idx].handle(payload)  # type: ignore[arg-type]
            if persist.deferred:
                self.pending[idx].extend(persist)  # on disk "later": a crash may lose it
            else:
                self.durable[idx].extend(persist)
            for r in persist:
                if isinstance(r, WorRecord) and r.state.accepted is not None:
                    self._vote(idx, r.wor, r.state.accepted, r.state.value)
            self.inflight.append(("op", idx, op_id, reply))
        else:
            t = self.ops[op_id]
            self._send(op_id, t.op.on_reply(idx, payload))  # type: ignore[arg-type]
            self._maybe_finish(op_id)
        return True

    def _restart_due(self, idle: bool) -> None:
        """Restart ops whose backoff expired (all of the earliest ones if the net is idle)."""
        if idle and self.backoff:
            self.step_no = max(self.step_no, min(d for d, _, _ in self.backoff))
        due = [b for b in self.backoff if b[0] <= self.step_no]
        self.backoff = [b for b in self.backoff if b[0] > self.step_no]
        for _, op_id, ballot in due:
            self._send(op_id, self.ops[op_id].op.retry(ballot))

    def _crash(self, i: int) -> None:
        if self.pending[i] and self.rng.random() < 0.5:
            self.durable[i].extend(self.pending[i])
        self.pending[i] = []
        self.acceptors[i] = Acceptor(replay(self.durable[i]), bugs=self.bugs)

    def _vote(self, i: int, wor: WorId, ballot: tuple[int, int], value: bytes | None) -> None:
        assert value is not None
        voters = self.votes.setdefault((wor, ballot, value), set())
        voters.add(i)
        if len(voters) > self.n // 2:
            self.chosen.setdefault(wor, {}).setdefault(value, self.step_no)

    def _maybe_finish(self, op_id: int) -> None:
        t = self.ops[op_id]
        if not t.op.done or t.end is not None:
            return
        res = t.op.result
        assert res is not None
        if res.outcome is Outcome.PREEMPTED and t.restarts < 30 and (
            t.kind in ("read", "capture-write", "range-write")
        ):
            # Restart above the rival's ballot after a random, growing backoff (as a driver
            # would), or dueling proposers preempt each other forever.
            t.restarts += 1
            due = self.step_no + self.rng.randrange(1, 20 * t.restarts)
            self.backoff.append((due, op_id, t.counter.next(above=res.ballot)))
            return
        t.end, t.result = self.step_no, res

    def run(self, max_steps: int = 20000) -> None:
        """Run until every op ended or max_steps. Timeouts: now and then one random op resends
        to the acceptors that have not answered; when the network is idle, all of them do."""
        for _ in range(max_steps):
            live = [i for i, t in enumerate(self.ops) if t.end is None]
            if not live:
                return
            idle = not self.step()
            timed_out = live if idle else [self.rng.choice(live)] if self.rng.random() < 0.01 else []
            for op_id in timed_out:
                self._send(op_id, self.ops[op_id].op.retry())
                self._maybe_finish(op_id)

    # -- checking ----------------------------------------------------------------------------------

    def violations(self) -> list[str]:
        """Everything that breaks the atomic WOR: two chosen values, results that disagree."""
        out: list[str] = []
        for wor, vals in self.chosen.items():
            if len(vals) > 1:
                out.append(f"{wor}: more than one value chosen: {sorted(vals)}")
        for t in self.ops:
            if t.result is None or t.end is None:
                continue
            chosen = self.chosen.get(t.wor, {})
            o, v = t.result.outcome, t.result.value
            wrote_or_read = o in (Outcome.OK, Outcome.ALREADY_WRITTEN) and v is not None
            if wrote_or_read and (v not in chosen or chosen[v] > t.end):
                out.append(f"{t.kind} on {t.wor} returned {o.value} {v!r}, not chosen by then")
            if o is Outcome.EMPTY:
                for u in self.ops:  # an op that ended with a value before this read began
                    if (u.wor == t.wor and u.end is not None and u.end < t.start and u.result
                            and u.result.value is not None
                            and u.result.outcome in (Outcome.OK, Outcome.ALREADY_WRITTEN)):
                        out.append(f"read on {t.wor} returned EMPTY after {u.kind} saw a value")
                        break
                first = min(chosen.values(), default=None)
                if first is not None and first < t.start:
                    out.append(f"read on {t.wor} returned EMPTY though a value was chosen earlier")
        return out

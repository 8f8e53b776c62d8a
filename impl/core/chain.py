"""Chain-WOR: the WOR over chain replication (f+1 nodes, survives f crashes).

Nodes ``0..n-1`` form a chain, head ``0`` to tail ``n-1``. A capture (Prepare) or write (Accept)
enters at the head; each node applies it with the same rules as a Paxos acceptor (it *is* an
:class:`Acceptor`) and, if it took it, forwards it to the next node; the tail answers the client.
A node that refuses (PREEMPTED, TRIMMED, SEALED) answers the client itself. Reads go to the tail.

Why this is safe: it is Paxos with the whole chain as the only quorum. A node forwards only what
it took, so an Accept that reaches the tail was accepted by every node: the value is chosen, and
the tail holds a value only if it is chosen (reading the tail is linearizable). A capture that
reaches the tail was promised by every node; it collects the highest accepted (ballot, value)
along the way (``seen``), which the writer must finish, exactly as a Paxos proposer does.

The node is sans-IO like the acceptor: ``handle(msg) -> (out, persist)``; persist, then send
``out`` (a ChainRequest goes to node ``index + 1``, a ChainReply to its ``client``). Range
requests are not chained yet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .acceptor import Acceptor, Persist
from .bugs import NO_BUGS, Bugs
from .messages import (
    Accept,
    Accepted,
    Ballot,
    InvalidMessage,
    Prepare,
    Promise,
    Read,
    ReadReply,
    Reply,
    Seal,
    Status,
    Trim,
    WorId,
    check_ballot,
    check_bytes,
    check_nat,
)
from .ops import OpResult, Outcome
from .records import AcceptorState

ChainOp = Prepare | Accept | Read | Trim | Seal


@dataclass(frozen=True)
class ChainRequest:
    """A request travelling down the chain on behalf of ``client`` (the reply address).

    ``seen`` is the highest accepted (ballot, value) met so far by a capture.
    """

    client: int
    request: ChainOp
    seen: tuple[Ballot, bytes] | None = None

    def __post_init__(self) -> None:
        check_nat("client", self.client)
        if not isinstance(self.request, (Prepare, Accept, Read, Trim, Seal)):
            raise InvalidMessage(f"cannot chain a {type(self.request).__name__}")
        if self.seen is not None:
            if type(self.seen) is not tuple or len(self.seen) != 2:
                raise InvalidMessage("seen must be an (accepted ballot, value) pair")
            check_ballot("seen.ballot", self.seen[0])
            check_bytes("seen.value", self.seen[1])


@dataclass(frozen=True)
class ChainReply:
    """The answer to ``client``'s chained request, from node ``node``."""

    client: int
    node: int
    reply: Reply

    def __post_init__(self) -> None:
        check_nat("client", self.client)
        check_nat("node", self.node)


class ChainNode:
    """Node ``index`` of an ``n``-node chain, over its own durable acceptor state."""

    def __init__(
        self, index: int, n: int, state: AcceptorState | None = None, *, bugs: Bugs = NO_BUGS
    ) -> None:
        if not 0 <= index < n:
            raise InvalidMessage(f"node index {index} outside a chain of {n}")
        self.index, self.n = index, n
        self.acceptor = Acceptor(state, bugs=bugs)

    @property
    def is_tail(self) -> bool:
        """Whether this node answers reads and completes chained requests."""
        return self.index == self.n - 1

    def handle(self, msg: ChainRequest) -> tuple[ChainRequest | ChainReply, Persist]:
        """Apply ``msg`` here; forward it down the chain or answer the client."""
        if not isinstance(msg, ChainRequest):
            raise InvalidMessage(f"not a chain request: {type(msg).__name__}")
        req = msg.request
        if isinstance(req, Read) and not self.is_tail:
            # Only the tail's state is known chosen: pass the read on, touching nothing.
            return msg, Persist()
        reply, persist = self.acceptor.handle(req)
        seen = msg.seen
        if (
            isinstance(reply, Promise)
            and reply.accepted is not None
            and reply.value is not None
            and (seen is None or reply.accepted > seen[0])
        ):
            seen = (reply.accepted, reply.value)
        took = getattr(reply, "status", None) is Status.OK
        if took and not self.is_tail and not isinstance(req, (Read, Seal)):
            return ChainRequest(msg.client, req, seen), persist
        if isinstance(reply, Promise) and reply.status is Status.OK:
            # The client needs the highest value accepted anywhere on the chain, not here.
            acc, val = seen if seen is not None else (None, None)
            reply = replace(reply, accepted=acc, value=val)
        return ChainReply(msg.client, self.index, reply), persist


# -- client side -----------------------------------------------------------------------------


#: Chained requests to send: ``(node_index, request)`` pairs.
ChainSends = list[tuple[int, ChainRequest]]


class _ChainOp:
    """One chained request and its single answer (same ``start``/``on_reply``/``retry``/``done``
    /``result`` protocol as :class:`~.ops.Op`); ``retry()`` resends it from the start."""

    def __init__(self, wor: WorId, n: int, client: int, epoch: int = 0) -> None:
        self.wor, self.n, self.client, self.epoch = wor, n, client, epoch
        self.done = False
        self.result: OpResult | None = None

    def _request(self) -> tuple[int, ChainRequest]:
        raise NotImplementedError

    def start(self) -> ChainSends:
        """The request to send (a single one: to the head, or to the tail for reads)."""
        return [self._request()]

    def _finish(self, result: OpResult) -> None:
        self.done, self.result = True, result

    def _answer(self, reply: object) -> Reply | None:
        """The inner reply if ``reply`` answers this op, else None."""
        if self.done or not isinstance(reply, ChainReply) or reply.client != self.client:
            return None
        r = reply.reply
        return r if getattr(r, "wor", None) == self.wor else None

    def _chain_refused(self, status: Status) -> ChainSends:
        if status is Status.SEALED:
            self._finish(OpResult(Outcome.SEALED))
            return []
        self._finish(OpResult(Outcome.TRIMMED))
        # Complete the trim along the whole chain (a no-op where it is already applied).
        return [(0, ChainRequest(self.client, Trim(self.epoch, self.wor.segment)))]


class ChainCaptureOp(_ChainOp):
    """Capture ``wor`` at ``ballot`` along the chain; OK carries ``adopted`` like CaptureOp."""

    def __init__(self, wor: WorId, ballot: Ballot, n: int, client: int, epoch: int = 0) -> None:
        super().__init__(wor, n, client, epoch)
        self.ballot = ballot

    def _request(self) -> tuple[int, ChainRequest]:
        return 0, ChainRequest(self.client, Prepare(self.epoch, self.wor, self.ballot))

    def on_reply(self, index: int, reply: object) -> ChainSends:
        r = self._answer(reply)
        if not isinstance(r, Promise) or r.ballot != self.ballot:
            return []
        if r.status in (Status.TRIMMED, Status.SEALED):
            return self._chain_refused(r.status)
        if r.status is Status.OK:
            self._finish(OpResult(Outcome.OK, ballot=self.ballot, adopted=r.value))
        else:
            self._finish(OpResult(Outcome.PREEMPTED, ballot=r.promised))
        return []

    def retry(self, new_ballot: Ballot | None = None) -> ChainSends:
        if new_ballot is not None:
            self.ballot, self.done, self.result = new_ballot, False, None
        return [] if self.done else self.start()


class ChainWriteOp(_ChainOp):
    """Write ``value`` (or the ``adopted`` one) with capture id ``ballot`` along the chain."""

    def __init__(
        self,
        wor: WorId,
        value: bytes,
        ballot: Ballot,
        n: int,
        client: int,
        epoch: int = 0,
        *,
        adopted: bytes | None = None,
    ) -> None:
        super().__init__(wor, n, client, epoch)
        self.value, self.ballot, self.adopted = value, ballot, adopted
        self.sent = adopted if adopted is not None else value

    def _request(self) -> tuple[int, ChainRequest]:
        return 0, ChainRequest(self.client, Accept(self.epoch, self.wor, self.ballot, self.sent))

    def on_reply(self, index: int, reply: object) -> ChainSends:
        r = self._answer(reply)
        if not isinstance(r, Accepted) or r.ballot != self.ballot:
            return []
        if r.status in (Status.TRIMMED, Status.SEALED):
            return self._chain_refused(r.status)
        if r.status is Status.OK:
            mine = self.adopted is None or self.adopted == self.value
            outcome = Outcome.OK if mine else Outcome.ALREADY_WRITTEN
            self._finish(OpResult(outcome, value=self.sent, ballot=self.ballot))
        else:
            self._finish(OpResult(Outcome.PREEMPTED, ballot=r.promised))
        return []

    def retry(self, new_ballot: Ballot | None = None) -> ChainSends:
        if new_ballot is not None:
            raise InvalidMessage("a write keeps its capture id; capture again for a new ballot")
        return [] if self.done else self.start()


class ChainReadOp(_ChainOp):
    """Read ``wor`` at the tail: the value, EMPTY or TRIMMED."""

    def _request(self) -> tuple[int, ChainRequest]:
        return self.n - 1, ChainRequest(self.client, Read(self.epoch, self.wor))

    def on_reply(self, index: int, reply: object) -> ChainSends:
        r = self._answer(reply)
        if not isinstance(r, ReadReply):
            return []
        if r.status is not Status.OK:
            return self._chain_refused(r.status)
        if r.value is None:
            self._finish(OpResult(Outcome.EMPTY))
        else:
            self._finish(OpResult(Outcome.OK, value=r.value))
        return []

    def retry(self, new_ballot: Ballot | None = None) -> ChainSends:
        return [] if self.done else self.start()


class ChainCaptureWriteOp:
    """``write`` without a pre-capture over a chain: capture at ``ballot``, then write (the
    revealed value if any). ``retry(new_ballot)`` after PREEMPTED starts over."""

    def __init__(
        self, wor: WorId, value: bytes, ballot: Ballot, n: int, client: int, epoch: int = 0
    ) -> None:
        self.wor, self.value, self.n, self.client, self.epoch = wor, value, n, client, epoch
        self.capture = ChainCaptureOp(wor, ballot, n, client, epoch)
        self.write: ChainWriteOp | None = None
        self.done = False
        self.result: OpResult | None = None

    def start(self) -> ChainSends:
        """The capture request, to the head."""
        return self.capture.start()

    def on_reply(self, index: int, reply: object) -> ChainSends:
        """Feed a chain reply; after the capture, start the write."""
        if self.done:
            return []
        sub: ChainCaptureOp | ChainWriteOp = self.write or self.capture
        out = sub.on_reply(index, reply)
        if not sub.done:
            return out
        res = sub.result
        assert res is not None
        if sub is self.capture and res.outcome is Outcome.OK and res.ballot is not None:
            self.write = ChainWriteOp(
                self.wor, self.value, res.ballot, self.n, self.client, self.epoch,
                adopted=res.adopted,
            )
            return out + self.write.start()
        self.done, self.result = True, res
        return out

    def retry(self, new_ballot: Ballot | None = None) -> ChainSends:
        """Resend the current step, or start over at ``new_ballot``."""
        if new_ballot is None:
            return [] if self.done else (self.write or self.capture).retry()
        self.done, self.result, self.write = False, None, None
        return self.capture.retry(new_ballot)

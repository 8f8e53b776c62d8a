"""Chain-WOR client ops the core does not have yet: trim and seal (same protocol as core ops).

Trim enters at the head and travels the chain like a write (each node that applies it forwards
it); the tail's answer means every node dropped the segment. Seal is not forwarded by a chain
node, so it is sent to every node, and all must answer: a chain serves a request only if every
node takes it, so one unsealed node (the tail, for reads) would keep the old epoch alive.
"""

from __future__ import annotations

from ..core.chain import ChainReply, ChainRequest
from ..core.messages import Seal as SealMsg
from ..core.messages import SealReply, Status, Trim, TrimReply
from ..core.ops import OpResult, Outcome


class ChainTrimOp:
    """Drop ``segment`` along the chain; ends TRIMMED (like :class:`~..core.ops.TrimOp`)."""

    def __init__(self, segment: int, n: int, client: int, epoch: int = 0) -> None:
        self.segment, self.n, self.client, self.epoch = segment, n, client, epoch
        self.done = False
        self.result: OpResult | None = None

    def start(self) -> list[tuple[int, ChainRequest]]:
        """The trim request, to the head."""
        return [(0, ChainRequest(self.client, Trim(self.epoch, self.segment)))]

    def on_reply(self, index: int, reply: object) -> list[tuple[int, ChainRequest]]:
        """The tail's TrimReply (or a node's SEALED) ends the op."""
        if self.done or not isinstance(reply, ChainReply) or reply.client != self.client:
            return []
        r = reply.reply
        if isinstance(r, TrimReply) and r.segment == self.segment:
            outcome = Outcome.SEALED if r.status is Status.SEALED else Outcome.TRIMMED
            self.done, self.result = True, OpResult(outcome)
        return []

    def retry(self) -> list[tuple[int, ChainRequest]]:
        """Resend from the head (trim is idempotent)."""
        return [] if self.done else self.start()


class ChainSealOp:
    """Seal every epoch below ``epoch`` at every node of an ``n``-node chain."""

    def __init__(self, epoch: int, n: int, client: int) -> None:
        self.epoch, self.n, self.client = epoch, n, client
        self.oks: set[int] = set()
        self.done = False
        self.result: OpResult | None = None

    def start(self) -> list[tuple[int, ChainRequest]]:
        """A seal request to each node."""
        return [(i, ChainRequest(self.client, SealMsg(self.epoch))) for i in range(self.n)]

    def on_reply(self, index: int, reply: object) -> list[tuple[int, ChainRequest]]:
        """Count a node's SealReply; done when all have sealed."""
        if (
            not self.done
            and isinstance(reply, ChainReply)
            and isinstance(reply.reply, SealReply)
            and reply.reply.epoch >= self.epoch
        ):
            self.oks.add(index)
            if len(self.oks) == self.n:
                self.done, self.result = True, OpResult(Outcome.OK)
        return []

    def retry(self) -> list[tuple[int, ChainRequest]]:
        """Resend to the nodes that have not answered."""
        return [] if self.done else [(i, r) for i, r in self.start() if i not in self.oks]

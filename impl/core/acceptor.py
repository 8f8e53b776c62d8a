"""The Paxos-WOR acceptor: a pure state machine, ``handle(request) -> (reply, persist)``.

The acceptor updates its in-memory state at once and returns the records describing the change.
The driver must make those records durable (fsync) *before* it sends the reply: a promise or an
accept that is acknowledged and then forgotten in a crash breaks Paxos. If persisting fails, the
driver must drop this acceptor object and restart from storage, since memory is now ahead.

Rules (WORMSPACE.md sections 1 and 2):

* ``Prepare(b)`` is promised iff ``b >= promised`` (``>=`` so a retransmitted prepare succeeds);
  the reply carries what the acceptor has accepted, so the proposer can finish it.
* ``Accept(b, v)`` is taken iff ``b >= promised``. The unsafe write ``b = (0, 0)`` is taken only by
  a WOR nobody promised or accepted (or that holds the same value at ballot 0: a retransmission).
* A trimmed segment answers TRIMMED to everything and keeps no state.
* A request whose epoch is below the sealed epoch answers SEALED; ``Seal`` only moves forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .bugs import NO_BUGS, Bugs
from .messages import (
    REQUEST_TYPES,
    ZERO_BALLOT,
    Accept,
    Accepted,
    AcceptedRange,
    AcceptRange,
    Ballot,
    InvalidMessage,
    Prepare,
    PrepareRange,
    Promise,
    PromiseRange,
    Read,
    ReadReply,
    Reply,
    Request,
    Seal,
    SealReply,
    Status,
    Trim,
    TrimReply,
    WorId,
    unchecked,
)
from .records import AcceptorState, Record, SealRecord, TrimRecord, WorRecord, WorState


@dataclass(frozen=True)
class Persist:
    """Records the driver must persist for one handled request.

    ``deferred`` is False for a correct acceptor: persist (fsync), then reply. It is True only
    under the planted bug ``ack_before_persist``, telling the driver to reply first.
    """

    records: tuple[Record, ...] = ()
    deferred: bool = False

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __bool__(self) -> bool:
        return bool(self.records)


class Acceptor:
    """One Paxos-WOR acceptor over an :class:`AcceptorState` (recovered from storage or new)."""

    def __init__(self, state: AcceptorState | None = None, *, bugs: Bugs = NO_BUGS) -> None:
        self.state = state if state is not None else AcceptorState()
        self.bugs = bugs

    def handle(self, request: Request) -> tuple[Reply, Persist]:
        """Handle one request; returns the reply and the records to persist before sending it.

        Raises :class:`InvalidMessage` (and changes nothing) if ``request`` is not a request.
        """
        if not isinstance(request, REQUEST_TYPES):
            raise InvalidMessage(f"not a request: {type(request).__name__}")
        records: list[Record] = []
        reply = self._dispatch(request, records)
        for r in records:
            self.state.apply(r)
        return reply, Persist(tuple(records), deferred=self.bugs.ack_before_persist)

    # -- dispatch ---------------------------------------------------------------------------------

    def _dispatch(self, req: Request, records: list[Record]) -> Reply:
        if isinstance(req, Seal):
            if req.epoch > self.state.epoch:
                records.append(SealRecord(req.epoch))
            return SealReply(Status.OK, max(req.epoch, self.state.epoch))
        if req.epoch < self.state.epoch:
            return _refuse(req, Status.SEALED)
        if isinstance(req, Trim):
            # Idempotent: trimming a trimmed segment is OK (a client completing a trim).
            if req.segment not in self.state.trimmed:
                records.append(TrimRecord(req.segment))
            return TrimReply(Status.OK, req.segment)
        segment = req.segment if isinstance(req, (PrepareRange, AcceptRange)) else req.wor.segment
        if segment in self.state.trimmed and not self.bugs.serve_trimmed:
            return _refuse(req, Status.TRIMMED)
        if isinstance(req, Prepare):
            return self._prepare(req.wor, req.ballot, records)
        if isinstance(req, Accept):
            return self._accept(req.wor, req.ballot, req.value, records)
        if isinstance(req, Read):
            st = self.state.get(req.wor)
            return unchecked(ReadReply, {"status": Status.OK, "wor": req.wor, "promised": st.promised,
                                      "accepted": st.accepted, "value": st.value})
        if isinstance(req, PrepareRange):
            promises = tuple(self._prepare(w, req.ballot, records) for w in req.wors())
            return PromiseRange(Status.OK, req.segment, req.lo, req.hi, req.ballot, promises)
        # AcceptRange: the only request type left.
        accepts = tuple(
            self._accept(w, req.ballot, v, records) for w, v in zip(req.wors(), req.values)
        )
        return AcceptedRange(Status.OK, req.segment, req.lo, req.hi, req.ballot, accepts)

    def _prepare(self, wor: WorId, ballot: Ballot, records: list[Record]) -> Promise:
        st = self.state.get(wor)
        if ballot < st.promised:
            return unchecked(Promise, {"status": Status.PREEMPTED, "wor": wor, "ballot": ballot,
                                    "promised": st.promised, "accepted": st.accepted,
                                    "value": st.value})
        if ballot != st.promised:
            records.append(WorRecord(wor, WorState(ballot, st.accepted, st.value)))
        return unchecked(Promise, {"status": Status.OK, "wor": wor, "ballot": ballot,
                                "promised": ballot, "accepted": st.accepted, "value": st.value})

    def _accept(self, wor: WorId, ballot: Ballot, value: bytes, records: list[Record]) -> Accepted:
        st = self.state.get(wor)
        if ballot == ZERO_BALLOT:
            # Unsafe write: only an untouched WOR (or a retransmission of the same write).
            ok = st.promised == ZERO_BALLOT and (
                st.accepted is None or (st.accepted == ZERO_BALLOT and st.value == value)
            )
        else:
            ok = ballot >= st.promised
        if not ok:
            return unchecked(Accepted, {"status": Status.PREEMPTED, "wor": wor, "ballot": ballot,
                                     "promised": st.promised})
        new = WorState(ballot, ballot, value)
        if new != st:
            records.append(WorRecord(wor, new))
        return unchecked(Accepted, {"status": Status.OK, "wor": wor, "ballot": ballot,
                                 "promised": ballot})


def _refuse(req: Request, status: Status) -> Reply:
    """The reply of the request's type carrying only ``status`` (TRIMMED or SEALED)."""
    if isinstance(req, Prepare):
        return Promise(status, req.wor, req.ballot, ZERO_BALLOT)
    if isinstance(req, Accept):
        return Accepted(status, req.wor, req.ballot, ZERO_BALLOT)
    if isinstance(req, Read):
        return ReadReply(status, req.wor, ZERO_BALLOT)
    if isinstance(req, Trim):
        return TrimReply(status, req.segment)
    if isinstance(req, PrepareRange):
        return PromiseRange(status, req.segment, req.lo, req.hi, req.ballot)
    if isinstance(req, AcceptRange):
        return AcceptedRange(status, req.segment, req.lo, req.hi, req.ballot)
    raise AssertionError(f"Seal is never refused: {req!r}")

"""The acceptor's durable state and the records that change it.

An acceptor's state is a map from WOR to :class:`WorState` (promised ballot, accepted ballot and
value), the set of trimmed segments and the sealed epoch. Every change is described by one
*record* that carries the new state outright (not a delta), so replaying records is idempotent
and order within one WOR is all that matters. A snapshot of the state is itself a list of
records: compaction writes it and recovery replays it the same way as the log.

Records convert to and from plain lists (msgpack-able) here, so the storage layer stays generic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .messages import (
    ZERO_BALLOT,
    Ballot,
    InvalidMessage,
    Kind,
    WorId,
    check_ballot,
    check_bytes,
    check_nat,
)


class InvalidRecord(ValueError):
    """A stored record does not decode to a valid acceptor record (wrong version or a bug)."""


@dataclass(frozen=True)
class WorState:
    """One WOR at one acceptor: highest promise, and the accepted ballot and value, if any."""

    promised: Ballot = ZERO_BALLOT
    accepted: Ballot | None = None
    value: bytes | None = None


EMPTY_WOR = WorState()


@dataclass(frozen=True)
class WorRecord:
    """``wor`` now has state ``state`` (the full new state, so replay is idempotent)."""

    wor: WorId
    state: WorState


@dataclass(frozen=True)
class TrimRecord:
    """``segment`` is trimmed: drop its WORs, answer TRIMMED from now on."""

    segment: int


@dataclass(frozen=True)
class SealRecord:
    """Every epoch below ``epoch`` is sealed."""

    epoch: int


Record = WorRecord | TrimRecord | SealRecord


@dataclass
class AcceptorState:
    """Everything an acceptor must not forget across a crash."""

    epoch: int = 0
    wors: dict[WorId, WorState] = field(default_factory=dict)
    trimmed: set[int] = field(default_factory=set)

    def get(self, wor: WorId) -> WorState:
        """The state of ``wor`` (the empty state if never touched)."""
        return self.wors.get(wor, EMPTY_WOR)

    def apply(self, record: Record) -> None:
        """Apply one record (used both by the acceptor and by recovery replay)."""
        if isinstance(record, WorRecord):
            if record.wor.segment not in self.trimmed:
                self.wors[record.wor] = record.state
        elif isinstance(record, TrimRecord):
            self.trimmed.add(record.segment)
            # Trimming reclaims the segment's state: that is the point of trim.
            for wor in [w for w in self.wors if w.segment == record.segment]:
                del self.wors[wor]
        elif isinstance(record, SealRecord):
            self.epoch = max(self.epoch, record.epoch)
        else:
            raise TypeError(f"not an acceptor record: {record!r:.80}")

    def snapshot(self, ordered: bool = True) -> list[Record]:
        """Records that rebuild exactly this state from an empty one (for compaction).

        ``ordered``: WORs sorted (a canonical form, for comparing states); unordered, as the
        WORs were first touched, is several times cheaper on a large state, and replay does not
        care (one record per WOR, each its full state): what compaction uses."""
        out: list[Record] = []
        if self.epoch:
            out.append(SealRecord(self.epoch))
        out.extend(TrimRecord(s) for s in sorted(self.trimmed))
        wors = self.wors
        out.extend(WorRecord(w, wors[w]) for w in (sorted(wors) if ordered else wors))
        return out

    def snapshot_plain(self) -> list[list[object]]:
        """``[record_to_plain(r) for r in self.snapshot(ordered=False)]``, built directly from
        the maps (no record objects): compaction's path, whose cost grows with the live state
        (about a third of building the records and converting them)."""
        out: list[list[object]] = []
        if self.epoch:
            out.append(["s", self.epoch])
        out.extend(["t", seg] for seg in sorted(self.trimmed))
        out.extend(["w", w.segment, w.kind._value_, w.offset, list(st.promised),
                    None if st.accepted is None else list(st.accepted), st.value]
                   for w, st in self.wors.items())
        return out

    def copy(self) -> AcceptorState:
        """An independent copy (WorState values are immutable, so a shallow copy suffices)."""
        return AcceptorState(self.epoch, dict(self.wors), set(self.trimmed))


def replay(records: list[Record]) -> AcceptorState:
    """The state that ``records`` describe, starting from an empty acceptor."""
    state = AcceptorState()
    for r in records:
        state.apply(r)
    return state


# -- plain (msgpack-able) form: ["w", seg, kind, off, [r, c], [r, c] | None, bytes | None] -----


def record_to_plain(record: Record) -> list[object]:
    """A record as a plain list of ints, strings, bytes and None."""
    if isinstance(record, WorRecord):
        w, s = record.wor, record.state
        acc = list(s.accepted) if s.accepted is not None else None
        # kind._value_, not kind.value: the same string without enum's property lookup
        return ["w", w.segment, w.kind._value_, w.offset, list(s.promised), acc, s.value]
    if isinstance(record, TrimRecord):
        return ["t", record.segment]
    if isinstance(record, SealRecord):
        return ["s", record.epoch]
    raise TypeError(f"not an acceptor record: {record!r:.80}")


def record_from_plain(obj: object) -> Record:
    """Inverse of :func:`record_to_plain`; raises :class:`InvalidRecord` on anything else."""
    try:
        if not isinstance(obj, list) or not obj:
            raise InvalidMessage("a record is a non-empty list")
        tag = obj[0]
        if tag == "w" and len(obj) == 7:
            _, seg, kind, off, promised, accepted, value = obj
            if kind not in ("data", "meta", "trim"):
                raise InvalidMessage(f"unknown WOR kind {kind!r:.20}")
            wor = WorId(check_nat("segment", seg), Kind(kind), check_nat("offset", off))
            p = check_ballot("promised", _pair(promised))
            a = None if accepted is None else check_ballot("accepted", _pair(accepted))
            v = None if value is None else check_bytes("value", value)
            if (a is None) != (v is None):
                raise InvalidMessage("accepted ballot and value must be both set or both None")
            return WorRecord(wor, WorState(p, a, v))
        if tag == "t" and len(obj) == 2:
            return TrimRecord(check_nat("segment", obj[1]))
        if tag == "s" and len(obj) == 2:
            return SealRecord(check_nat("epoch", obj[1]))
        raise InvalidMessage(f"unknown record {obj!r:.60}")
    except InvalidMessage as exc:
        raise InvalidRecord(f"bad acceptor record: {exc}") from None


def _pair(obj: object) -> object:
    return tuple(obj) if isinstance(obj, list) else obj

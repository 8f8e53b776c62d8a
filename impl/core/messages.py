"""Protocol messages between WOR clients and acceptors: small frozen, validated dataclasses.

Every request names the WOR it is about (:class:`WorId`: segment, kind, offset) and the
configuration epoch the client believes in. Every reply echoes what it answers (the WOR and, for
ballot-carrying requests, the ballot), so a client op can drop stale or foreign replies without
any request ids.

Construction validates every field (types and ranges) and raises :class:`InvalidMessage`, so a
malformed message cannot exist as an object: the wire codec and the acceptor rely on that.

Ballots are ``(round, client_id)`` pairs compared lexicographically (plain tuple order). A client
only ever uses its own ``client_id``, so ballots are unique per client. ``ZERO_BALLOT`` ``(0, 0)``
is the *unsafe write*: an accept without a prepare, taken only by an untouched WOR.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from typing import TypeVar

Ballot = tuple[int, int]
ZERO_BALLOT: Ballot = (0, 0)

#: Largest number of offsets one range request may cover (bounds the work one frame can cause).
MAX_RANGE = 4096


class InvalidMessage(ValueError):
    """A message field has the wrong type or an out-of-range value."""


class Kind(StrEnum):
    """Which WOR of a segment (WORMSPACE.md section 2): one data WOR per offset, two hidden."""

    DATA = "data"
    META = "meta"
    TRIM = "trim"


class Status(StrEnum):
    """An acceptor's answer to one request (or to one offset of a range request)."""

    OK = "ok"
    PREEMPTED = "preempted"  # a higher ballot is promised; the reply carries it
    TRIMMED = "trimmed"  # the segment was trimmed; its state is gone
    SEALED = "sealed"  # the request's configuration epoch is sealed


# -- field checks (shared by all message classes) -----------------------------------------------


def check_nat(name: str, value: object) -> int:
    """``value`` as a non-negative int (bools are rejected: msgpack keeps them distinct)."""
    if type(value) is not int or value < 0:
        raise InvalidMessage(f"{name} must be a non-negative int, got {value!r:.60}")
    return value


def check_ballot(name: str, value: object) -> Ballot:
    """``value`` as a ballot: a 2-tuple of non-negative ints."""
    if type(value) is not tuple or len(value) != 2:
        raise InvalidMessage(f"{name} must be a (round, client_id) pair, got {value!r:.60}")
    check_nat(name + ".round", value[0])
    check_nat(name + ".client_id", value[1])
    return value


def check_bytes(name: str, value: object) -> bytes:
    """``value`` as bytes (values are opaque byte strings)."""
    if type(value) is not bytes:
        raise InvalidMessage(f"{name} must be bytes, got {type(value).__name__}")
    return value


def _check_accepted(accepted: object, value: object) -> None:
    """An acceptor's accepted pair: both None (nothing accepted) or a ballot and bytes."""
    if accepted is None and value is None:
        return
    if accepted is None or value is None:
        raise InvalidMessage("accepted ballot and accepted value must be both set or both None")
    check_ballot("accepted", accepted)
    check_bytes("value", value)


def _check_enum(name: str, value: object, enum: type[Enum]) -> None:
    if not isinstance(value, enum):
        raise InvalidMessage(f"{name} must be a {enum.__name__}, got {value!r:.60}")


@dataclass(frozen=True, order=True)
class WorId:
    """One write-once register: ``(segment, kind, offset)``; offset is 0 for META and TRIM."""

    segment: int
    kind: Kind
    offset: int = 0

    def __post_init__(self) -> None:
        check_nat("segment", self.segment)
        _check_enum("kind", self.kind, Kind)
        check_nat("offset", self.offset)
        if self.kind is not Kind.DATA and self.offset != 0:
            raise InvalidMessage(f"a {self.kind.value} WOR has offset 0, got {self.offset}")


def _check_wor(value: object) -> None:
    if not isinstance(value, WorId):
        raise InvalidMessage(f"wor must be a WorId, got {value!r:.60}")


def _check_range(lo: int, hi: int) -> None:
    check_nat("lo", lo)
    check_nat("hi", hi)
    if not lo < hi <= lo + MAX_RANGE:
        raise InvalidMessage(f"range [{lo}, {hi}) must be non-empty and at most {MAX_RANGE} long")


# -- requests (client -> acceptor) ---------------------------------------------------------------


@dataclass(frozen=True)
class Prepare:
    """Phase 1a / capture: promise not to take any ballot below ``ballot`` for ``wor``."""

    epoch: int
    wor: WorId
    ballot: Ballot

    def __post_init__(self) -> None:
        check_nat("epoch", self.epoch)
        _check_wor(self.wor)
        if check_ballot("ballot", self.ballot) == ZERO_BALLOT:
            raise InvalidMessage("a prepare needs a non-zero ballot (capture ids are non-zero)")


@dataclass(frozen=True)
class Accept:
    """Phase 2a / write: accept ``value`` at ``ballot`` (ZERO_BALLOT = unsafe write)."""

    epoch: int
    wor: WorId
    ballot: Ballot
    value: bytes

    def __post_init__(self) -> None:
        check_nat("epoch", self.epoch)
        _check_wor(self.wor)
        check_ballot("ballot", self.ballot)
        check_bytes("value", self.value)


@dataclass(frozen=True)
class Read:
    """Quorum read, like phase 1a without the promise: report the accepted ballot and value."""

    epoch: int
    wor: WorId

    def __post_init__(self) -> None:
        check_nat("epoch", self.epoch)
        _check_wor(self.wor)


@dataclass(frozen=True)
class Trim:
    """Drop every WOR of ``segment`` and answer TRIMMED from now on.

    Sent only after the segment's trim WOR is chosen: the acceptor does not check that.
    """

    epoch: int
    segment: int

    def __post_init__(self) -> None:
        check_nat("epoch", self.epoch)
        check_nat("segment", self.segment)


@dataclass(frozen=True)
class Seal:
    """Seal every configuration epoch below ``epoch``: their requests then answer SEALED."""

    epoch: int

    def __post_init__(self) -> None:
        check_nat("epoch", self.epoch)


@dataclass(frozen=True)
class PrepareRange:
    """Batch capture of the data WORs at offsets ``[lo, hi)`` of ``segment`` in one message."""

    epoch: int
    segment: int
    lo: int
    hi: int
    ballot: Ballot

    def __post_init__(self) -> None:
        check_nat("epoch", self.epoch)
        check_nat("segment", self.segment)
        _check_range(self.lo, self.hi)
        if check_ballot("ballot", self.ballot) == ZERO_BALLOT:
            raise InvalidMessage("a prepare needs a non-zero ballot (capture ids are non-zero)")

    def wors(self) -> list[WorId]:
        """The data WORs covered, in offset order."""
        return [WorId(self.segment, Kind.DATA, o) for o in range(self.lo, self.hi)]


@dataclass(frozen=True)
class AcceptRange:
    """Batch write of the data WORs at ``[lo, hi)``: ``values[i]`` goes to offset ``lo + i``."""

    epoch: int
    segment: int
    lo: int
    hi: int
    ballot: Ballot
    values: tuple[bytes, ...]

    def __post_init__(self) -> None:
        check_nat("epoch", self.epoch)
        check_nat("segment", self.segment)
        _check_range(self.lo, self.hi)
        check_ballot("ballot", self.ballot)
        if type(self.values) is not tuple or len(self.values) != self.hi - self.lo:
            raise InvalidMessage(f"values must be a tuple of {self.hi - self.lo} byte strings")
        for v in self.values:
            check_bytes("values[]", v)

    def wors(self) -> list[WorId]:
        """The data WORs covered, in offset order."""
        return [WorId(self.segment, Kind.DATA, o) for o in range(self.lo, self.hi)]


# -- replies (acceptor -> client) ----------------------------------------------------------------


@dataclass(frozen=True)
class Promise:
    """Answer to Prepare. ``promised`` is the acceptor's promise after handling (the higher
    ballot when PREEMPTED); ``accepted``/``value`` what it has accepted (None if nothing)."""

    status: Status
    wor: WorId
    ballot: Ballot
    promised: Ballot
    accepted: Ballot | None = None
    value: bytes | None = None

    def __post_init__(self) -> None:
        _check_enum("status", self.status, Status)
        _check_wor(self.wor)
        check_ballot("ballot", self.ballot)
        check_ballot("promised", self.promised)
        _check_accepted(self.accepted, self.value)


@dataclass(frozen=True)
class Accepted:
    """Answer to Accept: OK, or PREEMPTED with the acceptor's higher ``promised`` ballot."""

    status: Status
    wor: WorId
    ballot: Ballot
    promised: Ballot

    def __post_init__(self) -> None:
        _check_enum("status", self.status, Status)
        _check_wor(self.wor)
        check_ballot("ballot", self.ballot)
        check_ballot("promised", self.promised)


@dataclass(frozen=True)
class ReadReply:
    """Answer to Read: the acceptor's promise and accepted ballot/value (None if nothing)."""

    status: Status
    wor: WorId
    promised: Ballot
    accepted: Ballot | None = None
    value: bytes | None = None

    def __post_init__(self) -> None:
        _check_enum("status", self.status, Status)
        _check_wor(self.wor)
        check_ballot("promised", self.promised)
        _check_accepted(self.accepted, self.value)


@dataclass(frozen=True)
class TrimReply:
    """Answer to Trim (OK once the segment is trimmed at this acceptor)."""

    status: Status
    segment: int

    def __post_init__(self) -> None:
        _check_enum("status", self.status, Status)
        check_nat("segment", self.segment)


@dataclass(frozen=True)
class SealReply:
    """Answer to Seal: ``epoch`` is the acceptor's lowest live epoch after handling."""

    status: Status
    epoch: int

    def __post_init__(self) -> None:
        _check_enum("status", self.status, Status)
        check_nat("epoch", self.epoch)


@dataclass(frozen=True)
class PromiseRange:
    """Answer to PrepareRange: one Promise per offset, or none when the whole request is
    TRIMMED or SEALED."""

    status: Status
    segment: int
    lo: int
    hi: int
    ballot: Ballot
    results: tuple[Promise, ...] = ()

    def __post_init__(self) -> None:
        _check_enum("status", self.status, Status)
        check_nat("segment", self.segment)
        _check_range(self.lo, self.hi)
        check_ballot("ballot", self.ballot)
        _check_results(self, Promise)


@dataclass(frozen=True)
class AcceptedRange:
    """Answer to AcceptRange: one Accepted per offset, or none when TRIMMED or SEALED."""

    status: Status
    segment: int
    lo: int
    hi: int
    ballot: Ballot
    results: tuple[Accepted, ...] = ()

    def __post_init__(self) -> None:
        _check_enum("status", self.status, Status)
        check_nat("segment", self.segment)
        _check_range(self.lo, self.hi)
        check_ballot("ballot", self.ballot)
        _check_results(self, Accepted)


def _check_results(msg: PromiseRange | AcceptedRange, cls: type) -> None:
    if type(msg.results) is not tuple:
        raise InvalidMessage("results must be a tuple")
    want = msg.hi - msg.lo if msg.status is Status.OK else 0
    if len(msg.results) != want:
        raise InvalidMessage(f"a {msg.status.value} range reply carries {want} results")
    for i, r in enumerate(msg.results):
        if not isinstance(r, cls) or not isinstance(r, (Promise, Accepted)):
            raise InvalidMessage(f"results[{i}] must be a {cls.__name__}")
        if r.wor != WorId(msg.segment, Kind.DATA, msg.lo + i):
            raise InvalidMessage(f"results[{i}] must be a {cls.__name__} for offset {msg.lo + i}")
        if r.ballot != msg.ballot:
            raise InvalidMessage(f"results[{i}] answers another ballot")


Request = Prepare | Accept | Read | Trim | Seal | PrepareRange | AcceptRange
Reply = Promise | Accepted | ReadReply | TrimReply | SealReply | PromiseRange | AcceptedRange
Message = Request | Reply

REQUEST_TYPES: tuple[type, ...] = (Prepare, Accept, Read, Trim, Seal, PrepareRange, AcceptRange)
REPLY_TYPES: tuple[type, ...] = (
    Promise, Accepted, ReadReply, TrimReply, SealReply, PromiseRange, AcceptedRange,
)


_M = TypeVar("_M")


def unchecked(cls: type[_M], fields_: dict[str, object]) -> _M:
    """An instance of the frozen message class ``cls`` with ``fields_``, without running its
    constructor's checks (``__init__`` sets each field through ``object.__setattr__`` and then
    ``__post_init__`` validates them all: together the larger part of building a message).

    Only for values already checked the same way: the codec's fast decoders test every field
    as the constructor would (``tests/impl/test_codec_fast.py``), and the acceptor builds its
    replies from a validated request and its own state (``tests/impl/test_acceptor.py``
    rebuilds every reply through the constructor).

    The instance takes ``fields_`` itself as its ``__dict__`` (callers pass a fresh dict): that
    is a third cheaper than copying the fields into the instance's own dict."""
    inst: _M = _new(cls)
    _setattr(inst, "__dict__", fields_)
    return inst


_new = object.__new__
_setattr = object.__setattr__


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a message class, in declaration order."""
    return tuple(f.name for f in fields(cls))

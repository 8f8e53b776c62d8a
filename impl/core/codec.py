"""Messages to and from plain, msgpack-able dicts, validating every field on the way in.

The plain form of a message is ``{"t": tag, field: value, ...}`` with the dataclass field names;
WOR ids are ``[segment, kind, offset]``, ballots ``[round, client_id]``, enums their string value,
nested messages nested dicts. :func:`from_plain` accepts exactly that shape: a missing, extra or
mistyped field raises :class:`InvalidMessage` naming the message and the field. Pure: no msgpack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from .chain import ChainReply, ChainRequest
from .messages import (
    REPLY_TYPES,
    REQUEST_TYPES,
    InvalidMessage,
    Kind,
    Message,
    Status,
    WorId,
    check_ballot,
    check_bytes,
    check_nat,
)

AnyMessage = Message | ChainRequest | ChainReply

#: Wire tag of each message class (part of the protocol: never rename one).
TAGS: dict[type, str] = {
    cls: name
    for cls, name in zip(
        (*REQUEST_TYPES, *REPLY_TYPES, ChainRequest, ChainReply),
        (
            "prepare", "accept", "read", "trim", "seal", "prepare_range", "accept_range",
            "promise", "accepted", "read_reply", "trim_reply", "seal_reply", "promise_range",
            "accepted_range", "chain_request", "chain_reply",
        ),
    )
}
CLASSES: dict[str, type] = {tag: cls for cls, tag in TAGS.items()}


def to_plain(msg: AnyMessage) -> dict[str, object]:
    """``msg`` as a plain dict of ints, strings, bytes, lists, dicts and None."""
    cls = type(msg)
    if cls not in TAGS:
        raise InvalidMessage(f"not a protocol message: {cls.__name__}")
    out: dict[str, object] = {"t": TAGS[cls]}
    for name, (encode, _) in _FIELDS[cls]:
        out[name] = encode(getattr(msg, name))
    return out


def from_plain(obj: object, allowed: tuple[type, ...] | None = None) -> AnyMessage:
    """The message ``obj`` describes; raises :class:`InvalidMessage` if it describes none.

    ``allowed`` restricts the message classes accepted (a server takes only requests).
    """
    if not isinstance(obj, dict):
        raise InvalidMessage(f"a message is a map, got {type(obj).__name__}")
    tag = obj.get("t")
    cls = CLASSES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise InvalidMessage(f"unknown message type {tag!r:.40}")
    if allowed is not None and cls not in allowed:
        raise InvalidMessage(f"unexpected message type {tag!r}")
    spec = _FIELDS[cls]
    if len(obj) != len(spec) + 1 and (extra := set(obj) - _KEYS[cls]):
        raise InvalidMessage(f"{tag}: unknown field(s) {sorted(map(str, extra))!r:.80}")
    kwargs: dict[str, Any] = {}
    for name, (_, decode) in spec:
        if name not in obj:
            raise InvalidMessage(f"{tag}: missing field {name!r}")
        try:
            kwargs[name] = decode(name, obj[name])
        except InvalidMessage as exc:
            raise InvalidMessage(f"{tag}: {exc}") from None
    try:
        return cls(**kwargs)  # type: ignore[no-any-return]  # __post_init__ checks the rest
    except InvalidMessage as exc:
        raise InvalidMessage(f"{tag}: {exc}") from None


# -- per-field converters, chosen by the field's annotation ---------------------------------------

Encode = Callable[[Any], object]
Decode = Callable[[str, object], Any]


def _ident(v: Any) -> object:
    return v


def _nat(name: str, v: object) -> int:
    return check_nat(name, v)


def _bytes(name: str, v: object) -> bytes:
    return check_bytes(name, v)


def _opt(decode: Decode) -> Decode:
    return lambda name, v: None if v is None else decode(name, v)


def _list(name: str, v: object, size: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (size is not None and len(v) != size):
        want = f"a list of {size}" if size is not None else "a list"
        raise InvalidMessage(f"{name} must be {want}, got {v!r:.60}")
    return v


def _ballot(name: str, v: object) -> tuple[int, int]:
    return check_ballot(name, tuple(_list(name, v, 2)))


def _wor(name: str, v: object) -> WorId:
    seg, kind, off = _list(name, v, 3)
    if kind not in ("data", "meta", "trim"):
        raise InvalidMessage(f"{name}: unknown WOR kind {kind!r:.20}")
    return WorId(check_nat(name + ".segment", seg), Kind(kind), check_nat(name + ".offset", off))


_STATUSES = {s.value: s for s in Status}


def _status(name: str, v: object) -> Status:
    status = _STATUSES.get(v) if isinstance(v, str) else None
    if status is None:
        raise InvalidMessage(f"{name}: unknown status {v!r:.20}")
    return status


def _nested(*classes: type) -> tuple[Encode, Decode]:
    return to_plain, lambda name, v: from_plain(v, classes)


def _tuple_of(encode: Encode, decode: Decode) -> tuple[Encode, Decode]:
    return (
        lambda v: [encode(x) for x in v],
        lambda name, v: tuple(decode(f"{name}[{i}]", x) for i, x in enumerate(_list(name, v))),
    )


def _seen(name: str, v: object) -> tuple[tuple[int, int], bytes]:
    b, val = _list(name, v, 2)
    return _ballot(name + ".ballot", b), check_bytes(name + ".value", val)


_promise_codec = _nested(CLASSES["promise"])
_accepted_codec = _nested(CLASSES["accepted"])

CODECS: dict[str, tuple[Encode, Decode]] = {
    "int": (_ident, _nat),
    "bytes": (_ident, _bytes),
    "bytes | None": (_ident, _opt(_bytes)),
    "Ballot": (list, _ballot),
    "Ballot | None": (lambda v: None if v is None else list(v), _opt(_ballot)),
    "WorId": (lambda w: [w.segment, w.kind.value, w.offset], _wor),
    "Status": (lambda s: s.value, _status),
    "tuple[bytes, ...]": _tuple_of(_ident, _bytes),
    "tuple[Promise, ...]": _tuple_of(*_promise_codec),
    "tuple[Accepted, ...]": _tuple_of(*_accepted_codec),
    "ChainOp": _nested(*REQUEST_TYPES[:5]),
    "Reply": _nested(*REPLY_TYPES),
    "tuple[Ballot, bytes] | None": (
        lambda s: None if s is None else [list(s[0]), s[1]],
        _opt(_seen),
    ),
}

_FIELDS: dict[type, list[tuple[str, tuple[Encode, Decode]]]] = {
    cls: [(f.name, CODECS[str(f.type)]) for f in fields(cls)] for cls in TAGS
}
#: Each class's allowed keys (its fields and the tag), to spot unknown fields quickly.
_KEYS: dict[type, set[str]] = {cls: {"t", *(name for name, _ in spec)} for cls, spec in _FIELDS.items()}

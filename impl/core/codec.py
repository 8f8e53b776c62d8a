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
    unchecked,
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
    """``msg`` as a plain dict of ints, strings, bytes, lists, dicts and None.

    The single-WOR messages of the request path have hand-written encoders giving the same
    dict, keys in the same order (``tests/impl/test_codec_fast.py`` checks it)."""
    fast = _FAST_PLAIN.get(type(msg))
    if fast is not None:
        return fast(msg)
    return _to_plain(msg)


def _to_plain(msg: AnyMessage) -> dict[str, object]:
    """The general path of :func:`to_plain`."""
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

    The single-WOR messages of the request path (prepare, accept, read and their replies) take
    a fast path first: one pass of exact type tests over the plain form, then the object is
    built without re-running the constructor's checks (they test the same things). Anything
    the fast path does not recognise as exactly valid goes the general way below, which
    raises the error naming the field, so errors (and which inputs are rejected) are the
    general path's. ``tests/impl/test_codec_fast.py`` checks the two paths agree.
    """
    if type(obj) is dict:
        tag = obj.get("t")
        fast = _FAST.get(tag) if type(tag) is str else None
        if fast is not None:
            msg: AnyMessage | None = fast(obj)
            if msg is not None and (allowed is None or type(msg) in allowed):
                return msg
    return _from_plain(obj, allowed)


def _from_plain(obj: object, allowed: tuple[type, ...] | None) -> AnyMessage:
    """The general (and error-reporting) path of :func:`from_plain`."""
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


# -- fast paths for the request path's messages ----------------------------------------------------
#
# Each returns the message, or None when ``obj`` is not exactly a valid instance (then the
# general path decides, and names the problem). The tests on each field are those of the general
# decoders plus the class's ``__post_init__``; ``messages.unchecked`` then skips ``__init__``
# (which would run them again) and fills the frozen instance's fields directly.

_KINDS: dict[str, Kind] = {k.value: k for k in Kind}
_DATA = Kind.DATA


def _fast_wor(v: object) -> WorId | None:
    if type(v) is not list or len(v) != 3:
        return None
    seg, kind, off = v
    k = _KINDS.get(kind) if type(kind) is str else None
    if (
        k is None
        or type(seg) is not int or seg < 0
        or type(off) is not int or off < 0
        or (k is not _DATA and off != 0)
    ):
        return None
    return unchecked(WorId, {"segment": seg, "kind": k, "offset": off})


def _fast_ballot(v: object) -> tuple[int, int] | None:
    if type(v) is not list or len(v) != 2:
        return None
    r, c = v
    if type(r) is not int or r < 0 or type(c) is not int or c < 0:
        return None
    return (r, c)


def _fast_status(v: object) -> Status | None:
    return _STATUSES.get(v) if type(v) is str else None


def _fast_accepted_pair(obj: dict[str, Any]) -> tuple[bool, tuple[int, int] | None, bytes | None]:
    """``(ok, accepted, value)``: both None, or a ballot and bytes."""
    acc, val = obj.get("accepted", _MISSING), obj.get("value", _MISSING)
    if acc is None and val is None:
        return True, None, None
    if type(val) is not bytes:
        return False, None, None
    b = _fast_ballot(acc)
    return b is not None, b, val


_MISSING = object()


def _fast_prepare(obj: dict[str, Any]) -> Any:
    if len(obj) != 4:
        return None
    epoch, wor, ballot = obj.get("epoch"), _fast_wor(obj.get("wor")), _fast_ballot(obj.get("ballot"))
    if type(epoch) is not int or epoch < 0 or wor is None or ballot is None or ballot == (0, 0):
        return None
    return unchecked(CLASSES["prepare"], {"epoch": epoch, "wor": wor, "ballot": ballot})


def _fast_accept(obj: dict[str, Any]) -> Any:
    if len(obj) != 5:
        return None
    epoch, value = obj.get("epoch"), obj.get("value")
    wor, ballot = _fast_wor(obj.get("wor")), _fast_ballot(obj.get("ballot"))
    if type(epoch) is not int or epoch < 0 or wor is None or ballot is None or type(value) is not bytes:
        return None
    return unchecked(CLASSES["accept"], {"epoch": epoch, "wor": wor, "ballot": ballot, "value": value})


def _fast_read(obj: dict[str, Any]) -> Any:
    if len(obj) != 3:
        return None
    epoch, wor = obj.get("epoch"), _fast_wor(obj.get("wor"))
    if type(epoch) is not int or epoch < 0 or wor is None:
        return None
    return unchecked(CLASSES["read"], {"epoch": epoch, "wor": wor})


def _fast_promise(obj: dict[str, Any]) -> Any:
    if len(obj) != 7:
        return None
    status, wor = _fast_status(obj.get("status")), _fast_wor(obj.get("wor"))
    ballot, promised = _fast_ballot(obj.get("ballot")), _fast_ballot(obj.get("promised"))
    ok, accepted, value = _fast_accepted_pair(obj)
    if status is None or wor is None or ballot is None or promised is None or not ok:
        return None
    return unchecked(CLASSES["promise"], {"status": status, "wor": wor, "ballot": ballot,
                                       "promised": promised, "accepted": accepted, "value": value})


def _fast_accepted(obj: dict[str, Any]) -> Any:
    if len(obj) != 5:
        return None
    status, wor = _fast_status(obj.get("status")), _fast_wor(obj.get("wor"))
    ballot, promised = _fast_ballot(obj.get("ballot")), _fast_ballot(obj.get("promised"))
    if status is None or wor is None or ballot is None or promised is None:
        return None
    return unchecked(CLASSES["accepted"], {"status": status, "wor": wor, "ballot": ballot,
                                        "promised": promised})


def _fast_read_reply(obj: dict[str, Any]) -> Any:
    if len(obj) != 6:
        return None
    status, wor = _fast_status(obj.get("status")), _fast_wor(obj.get("wor"))
    promised = _fast_ballot(obj.get("promised"))
    ok, accepted, value = _fast_accepted_pair(obj)
    if status is None or wor is None or promised is None or not ok:
        return None
    return unchecked(CLASSES["read_reply"], {"status": status, "wor": wor, "promised": promised,
                                          "accepted": accepted, "value": value})


_FAST: dict[str, Callable[[dict[str, Any]], Any]] = {
    "prepare": _fast_prepare,
    "accept": _fast_accept,
    "read": _fast_read,
    "promise": _fast_promise,
    "accepted": _fast_accepted,
    "read_reply": _fast_read_reply,
}


_KIND_STR: dict[Kind, str] = {k: k.value for k in Kind}
_STATUS_STR: dict[Status, str] = {st: st.value for st in Status}


def _plain_wor(w: WorId) -> list[object]:
    return [w.segment, _KIND_STR[w.kind], w.offset]


def _plain_opt_ballot(b: tuple[int, int] | None) -> list[int] | None:
    return None if b is None else [b[0], b[1]]


_FAST_PLAIN: dict[type, Callable[[Any], dict[str, object]]] = {
    CLASSES["prepare"]: lambda m: {"t": "prepare", "epoch": m.epoch, "wor": _plain_wor(m.wor),
                                   "ballot": [m.ballot[0], m.ballot[1]]},
    CLASSES["accept"]: lambda m: {"t": "accept", "epoch": m.epoch, "wor": _plain_wor(m.wor),
                                  "ballot": [m.ballot[0], m.ballot[1]], "value": m.value},
    CLASSES["read"]: lambda m: {"t": "read", "epoch": m.epoch, "wor": _plain_wor(m.wor)},
    CLASSES["promise"]: lambda m: {
        "t": "promise", "status": _STATUS_STR[m.status], "wor": _plain_wor(m.wor),
        "ballot": [m.ballot[0], m.ballot[1]], "promised": [m.promised[0], m.promised[1]],
        "accepted": _plain_opt_ballot(m.accepted), "value": m.value},
    CLASSES["accepted"]: lambda m: {
        "t": "accepted", "status": _STATUS_STR[m.status], "wor": _plain_wor(m.wor),
        "ballot": [m.ballot[0], m.ballot[1]], "promised": [m.promised[0], m.promised[1]]},
    CLASSES["read_reply"]: lambda m: {
        "t": "read_reply", "status": _STATUS_STR[m.status], "wor": _plain_wor(m.wor),
        "promised": [m.promised[0], m.promised[1]], "accepted": _plain_opt_ballot(m.accepted),
        "value": m.value},
}

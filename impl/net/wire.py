"""The envelope around protocol messages on a connection: request ids, control calls, errors,
notifications.

Each frame (see :mod:`.framing`) carries one map:

=========================================  ==================================================
client -> server                            meaning
=========================================  ==================================================
``{"i": id, "m": message}``                 a protocol request (codec plain form)
``{"i": id, "c": name, "a": {args}}``       a control call: ``ping``, ``status``, ``listen``,
                                            ``unlisten``
server -> client
``{"i": id, "m": message}``                 the reply to request ``id``
``{"i": id, "r": result}``                  the result of control call ``id``
``{"i": id, "e": code, "d": detail}``       request ``id`` failed (``id`` 0: the connection;
                                            the server closes it after a framing error)
``{"n": [segment, offset, ballot, value]}`` a write was accepted and persisted (``listen``)
=========================================  ==================================================

Request ids let one connection carry many requests at once (pipelining) and route each reply to
the op that sent it, and only to it: an op must never count a reply to an older request.
"""

from __future__ import annotations

from typing import Any

from ..core.codec import from_plain
from ..core.messages import InvalidMessage

#: Error codes a server sends (``e``).
MALFORMED = "malformed"  # not a valid envelope or message (the frame itself was authentic)
BAD_FRAME = "bad_frame"  # unauthenticated, oversized or unparsable frame: connection closed
WRONG_PROTOCOL = "wrong_protocol"  # a Paxos request to a chain cluster or the other way round
NOT_SERVED = "not_served"  # the segment's replica set does not include this server
UNAVAILABLE = "unavailable"  # a chain successor did not answer
INTERNAL = "internal"  # a bug in the server; the request changed nothing
UNKNOWN_CALL = "unknown_call"

CONTROL_CALLS = ("ping", "status", "listen", "unlisten")


class EnvelopeError(InvalidMessage):
    """A frame's map is not a valid envelope."""


def parse_request(
    obj: object, allowed: tuple[type, ...]
) -> tuple[int, Any, str | None, dict[str, Any]]:
    """Split a client frame into ``(id, message or None, control name or None, args)``.

    Raises :class:`EnvelopeError` (with ``.rid`` set when the id was readable) or
    :class:`InvalidMessage` for a bad message.
    """
    if type(obj) is not dict:
        raise EnvelopeError(f"a frame carries a map, got {type(obj).__name__}")
    rid = obj.get("i")
    if type(rid) is not int or rid <= 0:
        raise EnvelopeError(f"request id must be a positive int, got {rid!r:.30}")
    if "m" in obj and len(obj) == 2:
        return rid, from_plain(obj["m"], allowed), None, {}
    call, args = obj.get("c"), obj.get("a", {})
    if isinstance(call, str) and type(args) is dict and set(obj) <= {"i", "c", "a"}:
        return rid, None, call, args
    raise EnvelopeError(f"request {rid}: expected keys i+m or i+c(+a), got {sorted(map(str, obj))}")


def notify_args(obj: object) -> tuple[int, int, tuple[int, int], bytes] | None:
    """``(segment, offset, ballot, value)`` from a notification body, or None if malformed."""
    if type(obj) is not list or len(obj) != 4:
        return None
    seg, off, ballot, value = obj
    if (
        type(seg) is int
        and type(off) is int
        and type(ballot) is list
        and len(ballot) == 2
        and all(type(x) is int for x in ballot)
        and type(value) is bytes
    ):
        return seg, off, (ballot[0], ballot[1]), value
    return None

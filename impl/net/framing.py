"""Wire framing: length-prefixed, HMAC-authenticated msgpack frames, decoded sans-IO.

A frame is ``length (4 bytes, big-endian) | tag (32 bytes) | payload (length - 32 bytes)`` where
``payload`` is one msgpack object and ``tag = HMAC-SHA256(cluster_key, length || payload)``.
The length is covered by the tag so a frame cannot be re-cut; the tag is checked (in constant
time) before the payload is parsed, so unauthenticated bytes never reach msgpack.

:class:`FrameDecoder` is fed bytes as they arrive and returns the complete objects. Every
problem raises a :class:`FrameError` subclass naming it, and nothing else. After an error the
stream has lost its framing: the decoder refuses further input and the connection must close.
:class:`MessageDecoder` adds the step from plain objects to protocol messages.

Not covered here, on purpose: confidentiality (frames are not encrypted) and replay (an
authentic frame can be sent again: to the protocol that is a duplicated message, which it
tolerates by design; see docs/impl.md).
"""

from __future__ import annotations

import hmac
import struct
from typing import Any

import msgpack

from ..core.codec import AnyMessage, from_plain, to_plain
from ..core.messages import InvalidMessage

TAG_SIZE = 32
HEADER = struct.Struct(">I")
#: Default largest frame (tag + payload); a range write of 4096 small values fits easily.
MAX_FRAME = 4 * 1024 * 1024
MIN_KEY = 16


class FrameError(Exception):
    """A frame could not be decoded; the connection it came from must be closed."""


class FrameTooLarge(FrameError):
    """The length prefix (or an object to send) exceeds the maximum frame size."""


class FrameTooShort(FrameError):
    """The length prefix is smaller than the authentication tag: no frame is that short."""


class BadAuthentication(FrameError):
    """The HMAC tag does not match: wrong cluster key, or bytes altered in transit."""


class MalformedPayload(FrameError):
    """An authenticated payload is not exactly one valid msgpack object."""


class MalformedMessage(FrameError):
    """A well-formed payload does not describe a valid protocol message."""


class TruncatedFrame(FrameError):
    """The stream ended inside a frame."""


class DecoderFailed(FrameError):
    """Input after an earlier error: the stream's framing is lost."""


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) < MIN_KEY:
        raise ValueError(f"the cluster key must be at least {MIN_KEY} bytes")
    return key


def _tag(key: bytes, header: bytes, payload: bytes) -> bytes:
    # hmac.digest is the one-shot C path: several times faster than building an HMAC object,
    # and every frame in and out of a server goes through here.
    return hmac.digest(key, header + payload, "sha256")


def encode_frame(key: bytes, obj: object, max_frame: int = MAX_FRAME) -> bytes:
    """One authenticated frame carrying ``obj`` (plain msgpack-able data)."""
    payload: bytes = msgpack.packb(obj, use_bin_type=True)
    length = TAG_SIZE + len(payload)
    if length > max_frame:
        raise FrameTooLarge(f"frame of {length} bytes exceeds the maximum of {max_frame}")
    header = HEADER.pack(length)
    return header + _tag(_check_key(key), header, payload) + payload


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedPayload(f"msgpack extension type {code} is not part of the protocol")


class FrameDecoder:
    """Incremental decoder: ``feed(data)`` returns the objects completed by ``data``."""

    def __init__(self, key: bytes, max_frame: int = MAX_FRAME) -> None:
        self.key = _check_key(key)
        self.max_frame = max_frame
        self._buf = bytearray()
        self._failed: FrameError | None = None

    def feed(self, data: bytes) -> list[object]:
        """Append received bytes; return every complete frame's object, in order."""
        if self._failed is not None:
            raise DecoderFailed(f"decoder stopped after an earlier error: {self._failed}")
        self._buf += data
        out: list[object] = []
        try:
            while (obj := self._next()) is not _INCOMPLETE:
                out.append(obj)
        except FrameError as exc:
            self._failed = exc
            raise
        return out

    def eof(self) -> None:
        """The stream ended: raise :class:`TruncatedFrame` if a partial frame is buffered."""
        if self._buf and self._failed is None:
            self._failed = TruncatedFrame(f"stream ended inside a frame ({len(self._buf)} bytes)")
            raise self._failed

    def fail(self, exc: FrameError) -> FrameError:
        """Record an error found above the framing layer: the decoder then refuses input."""
        self._failed = exc
        return exc

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def _next(self) -> object:
        if len(self._buf) < HEADER.size:
            return _INCOMPLETE
        (length,) = HEADER.unpack_from(self._buf)
        # Check the length before waiting for the body: never buffer an oversized frame.
        if length > self.max_frame:
            raise FrameTooLarge(f"frame length {length} exceeds the maximum of {self.max_frame}")
        if length < TAG_SIZE:
            raise FrameTooShort(f"frame length {length} is shorter than its {TAG_SIZE}-byte tag")
        end = HEADER.size + length
        if len(self._buf) < end:
            return _INCOMPLETE
        header = bytes(self._buf[: HEADER.size])
        tag = bytes(self._buf[HEADER.size : HEADER.size + TAG_SIZE])
        payload = bytes(self._buf[HEADER.size + TAG_SIZE : end])
        del self._buf[:end]
        if not hmac.compare_digest(tag, _tag(self.key, header, payload)):
            raise BadAuthentication("frame tag does not match (wrong cluster key or altered)")
        try:
            return msgpack.unpackb(
                payload, raw=False, use_list=True, strict_map_key=True, ext_hook=_no_ext
            )
        except FrameError:
            raise
        except Exception as exc:  # msgpack raises many types (ValueError, ExtraData, ...)
            raise MalformedPayload(f"payload is not one msgpack object: {exc}") from None


_INCOMPLETE = object()


def encode_message(key: bytes, msg: AnyMessage, max_frame: int = MAX_FRAME) -> bytes:
    """One authenticated frame carrying the protocol message ``msg``."""
    return encode_frame(key, to_plain(msg), max_frame)


class MessageDecoder:
    """A :class:`FrameDecoder` that returns protocol messages (optionally only ``allowed``
    classes: a server takes requests, a client replies)."""

    def __init__(
        self, key: bytes, allowed: tuple[type, ...] | None = None, max_frame: int = MAX_FRAME
    ) -> None:
        self.frames = FrameDecoder(key, max_frame)
        self.allowed = allowed

    def feed(self, data: bytes) -> list[AnyMessage]:
        """Append received bytes; return every complete message, in order."""
        out: list[AnyMessage] = []
        for obj in self.frames.feed(data):
            try:
                out.append(from_plain(obj, self.allowed))
            except InvalidMessage as exc:
                raise self.frames.fail(MalformedMessage(str(exc))) from None
        return out

    def eof(self) -> None:
        """The stream ended: raise :class:`TruncatedFrame` if a partial frame is buffered."""
        self.frames.eof()

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

import hashlib
import hmac
import struct
from typing import Any

try:  # OpenSSL's HMAC object: its copy() is the fast path of _tag (CPython's own module)
    from _hashlib import hmac_new as _openssl_hmac_new
except ImportError:  # pragma: no cover - CPython without OpenSSL
    _openssl_hmac_new = None  # type: ignore[assignment]

import msgpack

from ..core.codec import AnyMessage, from_plain, to_plain
from ..core.messages import InvalidMessage

TAG_SIZE = 32
HEADER = struct.Struct(">I")
#: Default largest frame (tag + payload); a range write of 4096 small values fits easily.
MAX_FRAME = 4 * 1024 * 1024
MIN_KEY = 16


class FrameError(Exception):
    """A frame could not be decoded; the connection it came from must be closed.

    ``decoded``: the objects of the good frames that came before the bad one in the same
    :meth:`FrameDecoder.feed` call (valid, authenticated input the caller may still handle).
    """

    decoded: list[object] = []  # noqa: RUF012 - replaced per instance by FrameDecoder.feed


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


def _new_mac(key: bytes) -> Any:
    """An HMAC-SHA256 object keyed with ``key``, to be copied per frame."""
    if _openssl_hmac_new is not None:
        try:
            return _openssl_hmac_new(key, digestmod="sha256")
        except (TypeError, ValueError):  # pragma: no cover - an OpenSSL without SHA-256
            pass
    return hmac.new(key, digestmod=hashlib.sha256)


#: Keyed HMAC objects, one per cluster key seen (a process uses one or a few).
_MACS: dict[bytes, Any] = {}


def _mac_for(key: bytes) -> Any:
    """The cached keyed HMAC state of ``key`` (made on first use)."""
    base = _MACS.get(key)
    if base is None:
        if len(_MACS) >= 64:
            _MACS.clear()
        base = _MACS[key] = _new_mac(key)
    return base


def _tag(key: bytes, header: bytes, payload: bytes) -> bytes:
    """HMAC-SHA256(key, header || payload).

    Every frame in and out of a server goes through here, so the keyed state is computed once
    per key and copied per frame: OpenSSL's HMAC copy plus two updates takes about a third of
    the time of a one-shot ``hmac.digest`` (which re-derives the keyed pads each call). The tag
    is the same bytes either way (tests/impl/test_framing.py checks it against hmac.digest).
    """
    mac = _mac_for(key).copy()
    mac.update(header)
    mac.update(payload)
    return mac.digest()  # type: ignore[no-any-return]


def encode_frame(key: bytes, obj: object, max_frame: int = MAX_FRAME) -> bytes:
    """One authenticated frame carrying ``obj`` (plain msgpack-able data)."""
    payload: bytes = msgpack.packb(obj, use_bin_type=True)
    length = TAG_SIZE + len(payload)
    if length > max_frame:
        raise FrameTooLarge(f"frame of {length} bytes exceeds the maximum of {max_frame}")
    header = HEADER.pack(length)
    return header + _tag(_check_key(key), header, payload) + payload


#: Most envelopes one batch frame carries (a receiver rejects more).
MAX_BATCH = 4096
#: msgpack of a map with one entry whose key is "b": a batch frame's payload starts so.
_BATCH_PREFIX = b"\x81\xa1b"
_BATCH_OVERHEAD = len(_BATCH_PREFIX) + 3  # + the largest array header used (0xdc + 2 bytes)


def pack_body(obj: object, max_frame: int = MAX_FRAME) -> bytes:
    """``obj`` packed as a frame payload; :class:`FrameTooLarge` if it could not be sent.

    Packing happens when a message is queued (so an oversized one fails its sender at once);
    :func:`encode_payloads` later puts the payloads queued in one event-loop turn into frames.
    """
    payload: bytes = msgpack.packb(obj, use_bin_type=True)
    if TAG_SIZE + len(payload) > max_frame:
        raise FrameTooLarge(f"frame of {TAG_SIZE + len(payload)} bytes exceeds the maximum of "
                            f"{max_frame}")
    return payload


def _frame(key: bytes, payload: bytes) -> bytes:
    header = HEADER.pack(TAG_SIZE + len(payload))
    return header + _tag(key, header, payload) + payload


def _array_header(n: int) -> bytes:
    return bytes((0x90 | n,)) if n < 16 else b"\xdc" + n.to_bytes(2, "big")


def encode_payloads(key: bytes, payloads: list[bytes], max_frame: int = MAX_FRAME) -> bytes:
    """Frames carrying the packed envelopes ``payloads``, in order.

    One payload goes as a frame of its own; several go as *batch frames*, ``{"b": [envelope,
    ...]}``, as many envelopes per frame as fit in ``max_frame`` (at most :data:`MAX_BATCH`).
    A batch costs one HMAC and one length prefix for all its envelopes, which is most of the
    per-message cost of small requests. Receivers unpack batches with :func:`unbatch`.
    """
    if len(payloads) == 1:
        return _frame(key, payloads[0])
    frames: list[bytes] = []
    i, n = 0, len(payloads)
    budget = max_frame - TAG_SIZE - _BATCH_OVERHEAD
    while i < n:
        j, size = i, 0
        while j < n and j - i < MAX_BATCH and size + len(payloads[j]) <= budget:
            size += len(payloads[j])
            j += 1
        if j == i:  # one payload alone fills a frame (pack_body allowed it): send it bare
            frames.append(_frame(key, payloads[i]))
            i += 1
            continue
        chunk = payloads[i:j]
        frames.append(_frame(key, _BATCH_PREFIX + _array_header(len(chunk)) + b"".join(chunk)))
        i = j
    return b"".join(frames)


def unbatch(obj: object) -> list[object] | None:
    """The envelopes of a batch frame's object, or None if ``obj`` is not a batch.

    Raises :class:`MalformedPayload` for a map keyed ``"b"`` alone whose value is not a list of
    1 to :data:`MAX_BATCH` envelopes (batches do not nest: an inner batch is just an envelope
    that the receiver rejects as malformed).
    """
    if type(obj) is not dict or len(obj) != 1 or "b" not in obj:
        return None
    items = obj["b"]
    if type(items) is not list or not 1 <= len(items) <= MAX_BATCH:
        raise MalformedPayload(f"a batch frame carries a list of 1 to {MAX_BATCH} envelopes, "
                               f"got {type(items).__name__}"
                               + (f" of {len(items)}" if type(items) is list else ""))
    return items


def envelopes(obj: object) -> list[object]:
    """The envelopes a decoded frame carries: those of a batch, else the frame's object itself
    (:class:`MalformedPayload` for a malformed batch, as :func:`unbatch`)."""
    items = unbatch(obj)
    return [obj] if items is None else items


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedPayload(f"msgpack extension type {code} is not part of the protocol")


class FrameDecoder:
    """Incremental decoder: ``feed(data)`` returns the objects completed by ``data``."""

    def __init__(self, key: bytes, max_frame: int = MAX_FRAME) -> None:
        self.key = _check_key(key)
        self._mac = _mac_for(self.key)  # the keyed HMAC state, copied per frame
        self.max_frame = max_frame
        self._buf = bytearray()
        self._failed: FrameError | None = None

    def feed(self, data: bytes) -> list[object]:
        """Append received bytes; return every complete frame's object, in order.

        On a bad frame this raises its :class:`FrameError`; the objects of the good frames
        before it in this call are on the error's ``decoded`` list (so a caller can still
        handle them before closing the connection)."""
        if self._failed is not None:
            raise DecoderFailed(f"decoder stopped after an earlier error: {self._failed}")
        buf = self._buf
        buf += data
        out: list[object] = []
        pos, n = 0, len(buf)
        base = self._mac
        try:
            # Frames are cut at offsets into one buffer (views, no copies) and the consumed
            # prefix is deleted once at the end: many small frames per read are the common case.
            with memoryview(buf) as view:
                while n - pos >= HEADER.size:
                    (length,) = HEADER.unpack_from(buf, pos)
                    # Check the length before waiting for the body: never buffer an oversized
                    # frame.
                    if length > self.max_frame:
                        raise FrameTooLarge(
                            f"frame length {length} exceeds the maximum of {self.max_frame}")
                    if length < TAG_SIZE:
                        raise FrameTooShort(
                            f"frame length {length} is shorter than its {TAG_SIZE}-byte tag")
                    end = pos + HEADER.size + length
                    if end > n:
                        break
                    body = pos + HEADER.size + TAG_SIZE
                    mac = base.copy()
                    mac.update(view[pos : pos + HEADER.size])
                    mac.update(view[body:end])
                    if not hmac.compare_digest(view[pos + HEADER.size : body], mac.digest()):
                        raise BadAuthentication(
                            "frame tag does not match (wrong cluster key or altered)")
                    try:
                        out.append(msgpack.unpackb(view[body:end], raw=False, use_list=True,
                                                   strict_map_key=True, ext_hook=_no_ext))
                    except FrameError:
                        raise
                    except Exception as exc:  # msgpack raises many types (ValueError, ...)
                        raise MalformedPayload(
                            f"payload is not one msgpack object: {exc}") from None
                    pos = end
        except FrameError as exc:
            self._failed = exc
            exc.decoded = out
            raise
        finally:
            del buf[:pos]
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

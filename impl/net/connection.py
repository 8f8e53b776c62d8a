"""One reusable, pipelined client connection to one server (asyncio).

:class:`Connection` opens its TCP connection on first use and reopens it after a failure (with a
back-off, so a dead server costs a failed future, not a connect attempt per request). Any number
of requests may be outstanding (pipelining); each gets a request id and a future. Frames queued
in the same event-loop turn leave in one ``write``, as one batch frame (one HMAC and one
length prefix for all of them: batching of concurrent requests; see :func:`.framing.encode_payloads`).

Failures are results, not crashes: a request to a server that is down, or whose connection
drops, fails its future with :class:`ServerUnreachable`; the op driver treats that as a lost
message and relies on the other replicas and on retries. A reply we cannot authenticate fails
with :class:`WrongKey` (the cluster keys differ), which is not retried.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import Any, cast

from ..core.chain import ChainReply
from ..core.codec import AnyMessage, from_plain, to_plain
from ..core.messages import REPLY_TYPES, InvalidMessage
from .cluster import ServerSpec
from .framing import (
    MAX_FRAME,
    BadAuthentication,
    FrameDecoder,
    FrameError,
    MalformedPayload,
    encode_payloads,
    envelopes,
    pack_body,
)
from .wire import notify_args

log = logging.getLogger("wormspace.client")

_REPLIES: tuple[type, ...] = (*REPLY_TYPES, ChainReply)

Notify = Callable[[str, int, int, tuple[int, int], bytes], None]
Callback = Callable[[Any, BaseException | None], None]


#: msgpack of a two-entry map's first key "i", and of the key "m": an envelope
#: ``{"i": rid, "m": message}`` is ``_ENVELOPE_I + packb(rid) + _ENVELOPE_M + packb(message)``.
_ENVELOPE_I = b"\x82\xa1i"
_ENVELOPE_M = b"\xa1m"
#: The last message packed, and its bytes: an op sends one message object to every acceptor
#: of a replica set in a row, so a one-entry memo packs it once (messages are immutable).
_last_packed: tuple[object, bytes] | None = None


_U8, _U16, _U32, _U64 = (struct.Struct(f) for f in (">BB", ">BH", ">BI", ">BQ"))


def _pack_uint(n: int) -> bytes:
    """msgpack of a non-negative int (what ``msgpack.packb(n)`` gives, without its Packer)."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return _U8.pack(0xCC, n)
    if n < 0x10000:
        return _U16.pack(0xCD, n)
    if n < 0x100000000:
        return _U32.pack(0xCE, n)
    return _U64.pack(0xCF, n)


def _packed_message(msg: AnyMessage) -> bytes:
    """``msg`` in plain form, packed (:class:`FrameTooLarge` if no frame could carry it)."""
    global _last_packed
    last = _last_packed
    if last is not None and last[0] is msg:
        return last[1]
    packed = pack_body(to_plain(msg), MAX_FRAME - _ENVELOPE_OVERHEAD)
    _last_packed = (msg, packed)
    return packed


_ENVELOPE_OVERHEAD = len(_ENVELOPE_I) + 9 + len(_ENVELOPE_M)  # + the largest packed int


class ClientError(Exception):
    """Base of the client library's errors."""


class ServerUnreachable(ClientError):
    """The server could not be reached, or the connection dropped before the reply."""


class WrongKey(ClientError):
    """The server's frames do not authenticate with our key: the cluster keys differ."""


class ServerError(ClientError):
    """The server answered a request with an error (``code`` is one of :mod:`.wire`'s)."""

    def __init__(self, server: str, code: str, detail: str) -> None:
        super().__init__(f"server {server}: {code}: {detail}")
        self.code, self.detail = code, detail


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop transports are not subclasses
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.conn._data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._lost(self, exc)


class Connection:
    """A connection to ``server`` authenticated with ``key``; ``on_notify`` gets listen pushes."""

    def __init__(
        self,
        server: ServerSpec,
        key: bytes,
        *,
        connect_timeout: float = 1.0,
        backoff: tuple[float, float] = (0.05, 1.0),
        on_notify: Notify | None = None,
    ) -> None:
        self.server, self.key = server, key
        self.connect_timeout = connect_timeout
        self.backoff_min, self.backoff_max = backoff
        self.on_notify = on_notify
        #: Segments to (re)subscribe to whenever the connection opens.
        self.subscriptions: set[int] = set()
        self._proto: _Protocol | None = None
        self._decoder: FrameDecoder | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[bytes] = []  # packed envelopes waiting for the connection to open
        self._out: list[bytes] = []  # packed envelopes waiting for this turn's flush
        self._flush_scheduled = False
        #: Request id -> what to call with ``(result, None)`` or ``(None, exception)``.
        self._pending: dict[int, Callback] = {}
        self._rid = 0
        self._down_until = 0.0
        self._backoff = self.backoff_min
        self._closed = False
        self.last_error: str | None = None
        #: Until when (``time.monotonic()``) thrifty ops leave this server out of their
        #: majorities: it let a hedge fire, or a request to it failed (see ``driver``).
        self.slow_until = 0.0

    def available(self, now: float) -> bool:
        """Worth asking first at ``now`` (monotonic): not closed, not known to be down, not
        recently slow. Requests to any server are always allowed; this only orders them."""
        if self._closed or now < self.slow_until:
            return False
        return self._proto is not None or now >= self._down_until

    # -- sending ---------------------------------------------------------------------------------

    def request(self, msg: AnyMessage) -> asyncio.Future[Any]:
        """Send protocol message ``msg``; the future resolves to the reply message."""
        return self._future({"m": to_plain(msg)})

    def call(self, name: str, **args: Any) -> asyncio.Future[Any]:
        """Send control call ``name``; the future resolves to its result."""
        return self._future({"c": name, "a": args})

    def request_cb(self, msg: AnyMessage, callback: Callback) -> int:
        """Send ``msg``; call ``callback(reply, None)`` or ``callback(None, exc)`` once.

        The callback runs straight from the code that reads the reply (no future, no extra
        event-loop turn): the op driver's path. A failure known at once (closed, server down)
        is reported in a later turn, never from inside this call. Returns the request id,
        for :meth:`forget`."""
        return self._submit(callback, packed=_packed_message(msg))

    def forget(self, rid: int) -> None:
        """Drop request ``rid``: its reply, if one comes, is discarded before decoding."""
        self._pending.pop(rid, None)

    def _future(self, body: dict[str, Any]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def resolve(result: Any, exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._submit(resolve, body=body)
        return fut

    def _submit(self, callback: Callback, *, packed: bytes | None = None,
                body: dict[str, Any] | None = None) -> int:
        """Queue a request: ``packed`` (a packed protocol message, see
        :func:`_packed_message`) or the envelope ``body``; register ``callback``."""
        if self._closed:
            asyncio.get_running_loop().call_soon(
                callback, None, ServerUnreachable(f"{self.server.id}: connection closed"))
            return 0
        self._rid += 1
        rid = self._rid
        if packed is not None:
            # {"i": rid, "m": message}: the message is packed once for all acceptors.
            payload = _ENVELOPE_I + _pack_uint(rid) + _ENVELOPE_M + packed
        else:
            assert body is not None
            body["i"] = rid
            payload = pack_body(body)
        if self._proto is not None:
            self._pending[rid] = callback
            self._send(payload)
            return rid
        loop = asyncio.get_running_loop()
        if time.monotonic() < self._down_until:
            loop.call_soon(callback, None, ServerUnreachable(
                f"server {self.server.id} at {self.server.address} is down ({self.last_error})"))
            return rid
        self._pending[rid] = callback
        self._queued.append(payload)
        if self._connecting is None:
            self._connecting = loop.create_task(self._connect())
        return rid

    def _send(self, payload: bytes) -> None:
        self._out.append(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        t = self._proto.transport if self._proto is not None else None
        if t is not None and out and not t.is_closing():
            t.write(encode_payloads(self.key, out))

    # -- connection management -------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self), self.server.host,
                                       self.server.port),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            self.last_error = f"connect failed: {exc or 'timeout'}"
            self._down_until = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.backoff_max)
            self._fail_all(ServerUnreachable(
                f"server {self.server.id} at {self.server.address}: {self.last_error}"))
            self._queued.clear()
            return
        finally:
            self._connecting = None
        if self._closed:
            assert proto.transport is not None
            proto.transport.close()
            return
        self._proto, self._decoder = proto, FrameDecoder(self.key)
        self._backoff = self.backoff_min
        for seg in sorted(self.subscriptions):  # re-subscribe after a reconnect
            self._rid += 1
            self._send(pack_body({"i": self._rid, "c": "listen", "a": {"segment": seg}}))
        queued, self._queued = self._queued, []
        for payload in queued:
            self._send(payload)

    def _lost(self, proto: _Protocol, exc: Exception | None) -> None:
        if proto is not self._proto:
            return
        self._proto = self._decoder = None
        self.last_error = f"connection lost: {exc}" if exc else "connection closed by server"
        self._fail_all(ServerUnreachable(f"server {self.server.id}: {self.last_error}"))

    def _fail_all(self, exc: Exception) -> None:
        pending, self._pending = self._pending, {}
        for callback in pending.values():
            callback(None, exc)

    def _abort(self, exc: Exception) -> None:
        """Drop the connection after a protocol error; fail everything outstanding with ``exc``."""
        proto = self._proto
        self._proto = self._decoder = None
        self.last_error = str(exc)
        self._fail_all(exc)
        if proto is not None and proto.transport is not None:
            proto.transport.abort()

    async def close(self) -> None:
        """Close the connection; outstanding requests fail with ServerUnreachable."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        proto = self._proto
        self._proto = None
        self._fail_all(ServerUnreachable(f"{self.server.id}: connection closed"))
        if proto is not None and proto.transport is not None:
            proto.transport.close()

    @property
    def connected(self) -> bool:
        """Whether the TCP connection is open now."""
        return self._proto is not None

    # -- receiving -------------------------------------------------------------------------------

    def _data(self, proto: _Protocol, data: bytes) -> None:
        if proto is not self._proto or self._decoder is None:
            return
        try:
            objs = self._decoder.feed(data)
        except FrameError as exc:
            for obj in exc.decoded:  # the good frames before the bad one are still answers
                self._dispatch(obj)
            self._bad_frame(exc)
            return
        for obj in objs:
            self._dispatch(obj)

    def _bad_frame(self, exc: FrameError) -> None:
        if isinstance(exc, BadAuthentication):
            self._abort(WrongKey(
                f"server {self.server.id} at {self.server.address} sent a frame that does not "
                "authenticate with our key: the cluster key differs (or the bytes were altered)"))
        else:
            self._abort(ServerUnreachable(f"server {self.server.id}: bad frame: {exc}"))

    def _dispatch(self, obj: object) -> None:
        try:
            items = envelopes(obj)
        except MalformedPayload as exc:
            self._abort(ServerUnreachable(f"server {self.server.id}: bad batch frame: {exc}"))
            return
        for item in items:
            self._dispatch_one(item)

    def _dispatch_one(self, obj: object) -> None:
        if type(obj) is not dict:
            log.warning("server %s sent a non-map frame; ignored", self.server.id)
            return
        if "n" in obj:
            args = notify_args(obj["n"])
            if args is not None and self.on_notify is not None:
                self.on_notify(self.server.id, *args)
            return
        rid = obj.get("i")
        callback = self._pending.pop(rid, None) if type(rid) is int else None
        if "e" in obj and rid == 0:
            # A connection-level error: the server is about to close the connection.
            self.last_error = f"{obj.get('e')}: {obj.get('d')}"
            log.warning("server %s reported: %s", self.server.id, self.last_error)
            return
        if callback is None:
            return  # the answer to a request whose op already finished (or was forgotten)
        if "m" in obj:
            try:
                reply = from_plain(obj["m"], _REPLIES)
            except InvalidMessage as exc:
                callback(None, ServerError(self.server.id, "malformed reply", str(exc)))
                return
            callback(reply, None)
        elif "r" in obj:
            callback(obj["r"], None)
        else:
            callback(None, ServerError(self.server.id, str(obj.get("e")), str(obj.get("d"))))

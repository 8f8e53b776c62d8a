"""The WormSpace server: an asyncio TCP server around one acceptor (Paxos-WOR) or chain node.

Request path (per connection): bytes -> :class:`FrameDecoder` (length check, HMAC check, msgpack)
-> envelope and message decoding -> ``Acceptor.handle`` / ``ChainNode.handle`` -> the records go
to :class:`GroupCommit`, which runs the reply once they (and everything handled before) are on
disk. Requests that arrive in the same event-loop turn share one fsync.

Bad input never reaches the acceptor: an unauthenticated, oversized or unparsable frame gets an
error frame and the connection is closed (its framing is lost); an authentic frame that is not a
valid request gets an error reply for that request id and the connection stays open. Either is
logged (a few lines per connection, then counted only).

Chain-WOR: a node that takes a capture or write forwards it to the next node of the segment's
chain over its own connection and relays the answer back up; the tail answers; reads go to the
tail. (The reply retraces the chain instead of going from the tail straight to the client: each
hop is an ordinary request/reply, so no server needs a connection to the client it did not
accept.)

Tracing (``--trace DIR`` or ``$WORMSPACE_TRACE_DIR``; events in ``DIR/<id>.ndjson``, schema in
:mod:`wormspace.impl.trace`): a ``recv`` per protocol request, a ``persist`` per record once its
fsync returned, then the ``send`` of the reply, so a trace shows every acknowledgement after the
state it reveals is durable; a (re)started server first records the state it recovered
(``persist`` events with ``recovered: true``). Peers are named by their address (a client or an
upstream chain node); forwards to a chain successor name the successor. Events are flushed once
per event-loop turn, so a ``kill -9`` loses at most the events of the turn it interrupted. Off,
the request path pays one attribute test per request.

Planted bugs (``--bug NAME``, :mod:`wormspace.impl.core.bugs`): ``serve_trimmed`` reaches the
acceptor; ``ack_before_persist`` makes this driver send the reply before the fsync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, cast

from ..core.acceptor import Acceptor, Persist
from ..core.bugs import NO_BUGS, Bugs
from ..core.chain import ChainNode, ChainReply, ChainRequest
from ..core.codec import CLASSES, AnyMessage, to_plain
from ..core.messages import (
    REQUEST_TYPES,
    Accept,
    AcceptRange,
    InvalidMessage,
    Kind,
    PrepareRange,
    Request,
    Seal,
    Trim,
)
from ..core.records import AcceptorState, Record, WorRecord
from ..storage.store import DurableStore, MemoryStore, StateStore
from ..trace import OFF, Recorder
from ..trace import record as trace_record
from . import gctune, wire
from .cluster import ClusterConfig
from .commit import GroupCommit
from .connection import ClientError, Connection
from .framing import (
    MAX_FRAME,
    FrameDecoder,
    FrameError,
    MalformedPayload,
    encode_payloads,
    envelopes,
    pack_body,
)

log = logging.getLogger("wormspace.server")

#: Error lines logged per connection before the rest are only counted.
LOG_ERRORS_PER_CONNECTION = 3
#: Pause reading from a client whose replies pile up beyond this many bytes.
HIGH_WATER = 4 * 1024 * 1024


class ServerConnection(asyncio.Protocol):
    """One accepted client (or upstream chain node) connection."""

    def __init__(self, server: WormServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(server.key, server.max_frame)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.errors = 0
        self.segments: set[int] = set()  # listen subscriptions
        self._out: list[bytes] = []
        self._flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop transports are not subclasses
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        for seg in self.segments:
            self.server.listeners.get(seg, set()).discard(self)

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        try:
            objs = self.decoder.feed(data)
        except FrameError as exc:
            for obj in exc.decoded:  # the good frames that came before the bad one
                self.dispatch_frame(obj)
            self.server.stats["bad_frames"] += 1
            self.note_error(f"bad frame, closing: {type(exc).__name__}: {exc}")
            self.send(pack_body({"i": 0, "e": wire.BAD_FRAME, "d": str(exc)}))
            self.flush()
            assert self.transport is not None
            self.transport.close()
            return
        for obj in objs:
            self.dispatch_frame(obj)

    def dispatch_frame(self, obj: object) -> None:
        """Handle one decoded frame: one envelope, or a batch of them (in order)."""
        try:
            items = envelopes(obj)
        except MalformedPayload as exc:
            self.error(0, wire.MALFORMED, str(exc))
            return
        for item in items:
            self.server.dispatch(self, item)

    def send(self, payload: bytes) -> None:
        """Queue a packed envelope (:func:`.framing.pack_body`); everything queued in one
        event-loop turn leaves in one write, batched into as few frames as fit."""
        self._out.append(payload)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the queued frames now."""
        self._flush_scheduled = False
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_payloads(self.server.key, out, self.server.max_frame))

    def error(self, rid: int, code: str, detail: str) -> None:
        """Answer request ``rid`` with an error (the connection stays open)."""
        self.server.stats["errors"] += 1
        self.note_error(f"request {rid}: {code}: {detail}")
        self.send(pack_body({"i": rid, "e": code, "d": detail[:500]}))

    def note_error(self, text: str) -> None:
        """Log the first few errors of this connection."""
        self.errors += 1
        if self.errors <= LOG_ERRORS_PER_CONNECTION:
            log.warning("%s: %s", self.peer, text)
        elif self.errors == LOG_ERRORS_PER_CONNECTION + 1:
            log.warning("%s: more errors on this connection; no longer logging them", self.peer)


class WormServer:
    """Server ``server_id`` of ``config`` over a recovered ``state`` kept in ``store``."""

    def __init__(
        self,
        config: ClusterConfig,
        server_id: str,
        store: StateStore,
        state: AcceptorState,
        *,
        max_frame: int = MAX_FRAME,
        forward_timeout: float = 2.0,
        bugs: Bugs = NO_BUGS,
        recorder: Recorder = OFF,
    ) -> None:
        if server_id not in config.servers:
            raise ValueError(f"server id {server_id!r} is not in the cluster file "
                             f"(servers: {', '.join(config.servers)})")
        self.config, self.id, self.store = config, server_id, store
        self.key = config.key()
        self.max_frame = max_frame
        self.forward_timeout = forward_timeout
        self.my_sets = frozenset(config.sets_of(server_id))
        self.bugs = bugs
        self.rec = recorder
        self._trace_flush_scheduled = False
        self.acceptor = Acceptor(state, bugs=bugs)
        # Chain: one node per replica set this server is in (its position differs per chain);
        # they share one acceptor state, so one log holds them all.
        self.nodes: dict[int, ChainNode] = {}
        if config.protocol == "chain":
            for i in self.my_sets:
                rs = config.replica_sets[i]
                self.nodes[i] = ChainNode(rs.index(server_id), len(rs), bugs=bugs)
                self.nodes[i].acceptor = self.acceptor
        self.allowed: tuple[type, ...] = (
            (ChainRequest,) if config.protocol == "chain" else REQUEST_TYPES
        )
        self.commit = GroupCommit(store, lambda: self.acceptor.state, self._persist_failed)
        self.connections: set[ServerConnection] = set()
        self.listeners: dict[int, set[ServerConnection]] = {}
        self.peers: dict[str, Connection] = {}
        self.stats: Counter[str] = Counter()
        self.failed: BaseException | None = None
        self._server: asyncio.Server | None = None
        self._stopped = asyncio.Event()

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: any free port); returns the bound address."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ServerConnection(self), host, port)
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def wait_stopped(self) -> None:
        """Return when :meth:`stop` was called or persisting failed."""
        await self._stopped.wait()

    def stop(self) -> None:
        """Ask the server to stop (from a signal handler or a test)."""
        self._stopped.set()

    async def close(self) -> None:
        """Stop listening, finish pending fsyncs and replies, close connections and the store."""
        if self._server is not None:
            self._server.close()
        await self.commit.drain()
        for c in list(self.connections):
            c.flush()
            if c.transport is not None:
                c.transport.close()
        for p in self.peers.values():
            await p.close()
        self.commit.close()
        self.store.close()
        self.rec.flush()

    def record_recovered(self) -> None:
        """Trace the state recovered from storage as ``persist`` events marked ``recovered``,
        so a trace explains what a restarted server answers without its earlier events."""
        if self.rec.enabled:
            for r in self.acceptor.state.snapshot():
                self.rec.emit("persist", **trace_record(r), recovered=True)
            self.rec.flush()

    def _persist_failed(self, exc: BaseException) -> None:
        self.failed = exc
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.abort()  # nothing more may be acknowledged from this memory state
        self._stopped.set()

    # -- request path ------------------------------------------------------------------------------

    def dispatch(self, conn: ServerConnection, obj: object) -> None:
        """Handle one decoded frame from ``conn``."""
        try:
            rid, msg, call, args = wire.parse_request(obj, self.allowed)
        except wire.EnvelopeError as exc:
            conn.error(0, wire.MALFORMED, str(exc))
            return
        except InvalidMessage as exc:
            assert isinstance(obj, dict)  # parse_request checked the envelope first
            m = obj["m"]
            cls = CLASSES.get(m.get("t")) if isinstance(m, dict) else None  # type: ignore[arg-type]
            if cls is not None and cls not in self.allowed:
                conn.error(obj["i"], wire.WRONG_PROTOCOL, f"{cls.__name__} is not served: this "
                           f"is a {self.config.protocol}-WOR cluster")
            else:
                conn.error(obj["i"], wire.MALFORMED, str(exc))
            return
        self.stats["requests"] += 1
        if msg is not None and self.rec.enabled:
            assert isinstance(obj, dict)
            self.rec.recv(conn.peer, _hexed(obj["m"]))
        try:
            if msg is None:
                assert call is not None
                self._control(conn, rid, call, args)
            elif isinstance(msg, ChainRequest):
                self._chain(conn, rid, msg)
            else:
                self._paxos(conn, rid, msg)
        except Exception as exc:  # a bug: report it, keep serving the others
            log.exception("request %d from %s failed", rid, conn.peer)
            conn.error(rid, wire.INTERNAL, f"{type(exc).__name__}: {exc}")

    def _serves(self, conn: ServerConnection, rid: int, segment: int | None) -> bool:
        if segment is None or self.config.replica_set_index(segment) in self.my_sets:
            return True
        conn.error(rid, wire.NOT_SERVED, f"server {self.id} does not serve segment {segment} "
                   f"(replica set {self.config.replica_set_index(segment)})")
        return False

    def _paxos(self, conn: ServerConnection, rid: int, req: Request) -> None:
        if not self._serves(conn, rid, _segment(req)):
            return
        reply, persist = self.acceptor.handle(req)
        body = to_plain(reply)
        payload = pack_body({"i": rid, "m": body}, self.max_frame)
        records = persist.records
        if self.rec.enabled or persist.deferred:
            notify = bool(records) and isinstance(req, (Accept, AcceptRange))
            self._reply_traced(conn, body, payload, persist, notify)
            return
        if records and isinstance(req, (Accept, AcceptRange)) and self.listeners:

            def reply_and_notify() -> None:
                conn.send(payload)
                self._notify(records)

            self.commit.after_durable(records, reply_and_notify)
        else:
            self.commit.after_durable(records, lambda: conn.send(payload))

    def _reply_traced(self, conn: ServerConnection, body: dict[str, object], payload: bytes,
                      persist: Persist, notify: bool) -> None:
        """The reply path with tracing on or a planted bug: record each record's ``persist``
        once it is durable, then the ``send``; under ``ack_before_persist``, reply at once."""
        rec, records = self.rec, persist.records

        def send() -> None:
            rec.send(conn.peer, _hexed(body))
            conn.send(payload)
            self._flush_trace_soon()

        def durable() -> None:
            self._record_persist(records)
            if notify and self.listeners:
                self._notify(records)
            if not persist.deferred:
                send()

        if persist.deferred:
            send()  # planted bug: acknowledge what is not on disk yet
        self.commit.after_durable(records, durable)

    def _record_persist(self, records: Iterable[Record]) -> None:
        for r in records:
            self.rec.persist(r)
        self._flush_trace_soon()

    def _flush_trace_soon(self) -> None:
        """Flush the trace at the end of this event-loop turn (one write for the turn)."""
        if self.rec.enabled and not self._trace_flush_scheduled:
            self._trace_flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_trace)

    def _flush_trace(self) -> None:
        self._trace_flush_scheduled = False
        self.rec.flush()

    def _chain(self, conn: ServerConnection, rid: int, msg: ChainRequest) -> None:
        req = msg.request
        seg = _segment(req)
        if not self._serves(conn, rid, seg):
            return
        node = self.nodes[min(self.my_sets) if seg is None else
                          self.config.replica_set_index(seg)]
        out, persist = node.handle(msg)
        records = persist.records
        rec = self.rec

        def act() -> None:
            if rec.enabled:
                self._record_persist(records)
            if records and isinstance(req, Accept) and self.listeners:
                self._notify(records)
            if isinstance(out, ChainReply):
                body = to_plain(out)
                if rec.enabled:
                    rec.send(conn.peer, _hexed(body))
                conn.send(pack_body({"i": rid, "m": body}, self.max_frame))
            else:
                assert seg is not None
                successor = self.config.replica_set(seg)[node.index + 1]
                asyncio.get_running_loop().create_task(self._forward(conn, rid, successor, out))

        self.commit.after_durable(records, act)

    async def _forward(
        self, conn: ServerConnection, rid: int, successor: str, msg: ChainRequest
    ) -> None:
        peer = self.peers.get(successor)
        if peer is None:
            peer = self.peers[successor] = Connection(self.config.servers[successor], self.key)
        rec = self.rec
        if rec.enabled:
            rec.send(successor, _hexed(to_plain(msg)))
        try:
            reply: AnyMessage = await asyncio.wait_for(peer.request(msg), self.forward_timeout)
        except (ClientError, TimeoutError) as exc:
            self.stats["forward_failures"] += 1
            conn.error(rid, wire.UNAVAILABLE, f"chain successor {successor}: {exc or 'timeout'}")
            return
        body = to_plain(reply)
        if rec.enabled:
            rec.recv(successor, _hexed(body))
            rec.send(conn.peer, _hexed(body))
            self._flush_trace_soon()
        conn.send(pack_body({"i": rid, "m": body}, self.max_frame))

    def _notify(self, records: tuple[Record, ...]) -> None:
        """Push each newly accepted data value to the connections listening to its segment."""
        for r in records:
            if not isinstance(r, WorRecord) or r.wor.kind is not Kind.DATA:
                continue
            subs = self.listeners.get(r.wor.segment)
            st = r.state
            if not subs or st.accepted is None:
                continue
            payload = pack_body({"n": [r.wor.segment, r.wor.offset, list(st.accepted),
                                     st.value]})
            for c in subs:
                c.send(payload)

    # -- control calls -----------------------------------------------------------------------------

    def _control(self, conn: ServerConnection, rid: int, call: str, args: dict[str, Any]) -> None:
        if call == "ping":
            result: object = {"id": self.id, "protocol": self.config.protocol,
                              "durable": self.store.durable, "pid": os.getpid()}
        elif call == "status":
            result = {"id": self.id, "protocol": self.config.protocol,
                      "durable": self.store.durable, "pid": os.getpid(),
                      "connections": len(self.connections), "wors": len(self.acceptor.state.wors),
                      "trimmed": len(self.acceptor.state.trimmed),
                      "epoch": self.acceptor.state.epoch, "fsyncs": self.commit.fsyncs,
                      "records": self.commit.records_persisted,
                      "largest_group": self.commit.largest_group,
                      "compactions": self.commit.compactions, **self.stats}
        elif call in ("listen", "unlisten"):
            seg = args.get("segment")
            if type(seg) is not int or seg < 0 or set(args) != {"segment"}:
                conn.error(rid, wire.MALFORMED, f"{call} takes one argument, segment (an int >= 0)")
                return
            if not self._serves(conn, rid, seg):
                return
            if call == "listen":
                conn.segments.add(seg)
                self.listeners.setdefault(seg, set()).add(conn)
            else:
                conn.segments.discard(seg)
                self.listeners.get(seg, set()).discard(conn)
            result = True
        else:
            conn.error(rid, wire.UNKNOWN_CALL, f"unknown call {call!r:.40}; known: "
                       f"{', '.join(wire.CONTROL_CALLS)}")
            return
        self.commit.after_durable((), lambda: conn.send(pack_body({"i": rid, "r": result})))


def _hexed(obj: Any) -> Any:
    """A message in codec plain form as traces carry it (bytes as hex). The same result as
    ``trace.plain`` for these shapes (dicts, lists, bytes, str, int, None), several times
    faster: exact type tests instead of ABC checks, on the traced request path."""
    t = type(obj)
    if t is dict:
        return {k: _hexed(v) for k, v in obj.items()}
    if t is list or t is tuple:
        return [_hexed(v) for v in obj]
    if t is bytes:
        return obj.hex()
    return obj


def _segment(req: object) -> int | None:
    """The segment a request is about (None for Seal)."""
    if isinstance(req, Seal):
        return None
    if isinstance(req, (Trim, PrepareRange, AcceptRange)):
        return req.segment
    return req.wor.segment  # type: ignore[attr-defined, no-any-return]


# -- the `wormspace server` process ----------------------------------------------------------------


def open_store(data: str | None, memory: bool) -> tuple[StateStore, AcceptorState]:
    """Open the durable store in ``data`` (logging what recovery found) or a MemoryStore."""
    if memory:
        log.warning("IN-MEMORY MODE: NOT DURABLE. Acceptor state is lost when this process "
                    "stops; for benchmarks only.")
        mstore, state, _ = MemoryStore.open()
        return mstore, state
    assert data is not None
    store, state, rec = DurableStore.open(data)
    log.info("recovered %d records from %s (%d WORs, %d trimmed segments, epoch %d)",
             rec.records, store.log.path, len(state.wors), len(state.trimmed), state.epoch)
    d = rec.dropped
    if d is not None:
        level = logging.WARNING if d.torn else logging.ERROR
        log.log(level, "log tail dropped at offset %d (%d bytes): %s; the dropped bytes are "
                "saved in %s; serving the %d committed records before it",
                d.offset, d.size, d.reason, d.saved_to, rec.records)
    if rec.stale_snapshot is not None:
        log.info("removed %s.tmp (%d bytes), the snapshot of a compaction that had not been "
                 "switched in when this server last stopped; the log holds everything it did",
                 store.log.path, rec.stale_snapshot)
    return store, state


def bugs_from_names(names: Iterable[str]) -> Bugs:
    """The planted bugs named (``serve_trimmed``...); ValueError naming the known ones."""
    known = [f.name for f in fields(Bugs)]
    on = {}
    for name in names:
        for n in filter(None, (x.strip() for x in name.split(","))):
            if n not in known:
                raise ValueError(f"unknown planted bug {n!r} (known: {', '.join(known)})")
            on[n] = True
    return Bugs(**on) if on else NO_BUGS


def open_trace(directory: str, node: str) -> Recorder:
    """The recorder of ``node`` in ``directory/<node>.ndjson``, appending to an earlier run's
    events. A last line cut by a crash (no newline) is removed first, with a warning, so the
    file stays readable; the rest is kept."""
    path = os.path.join(directory, f"{node}.ndjson")
    os.makedirs(directory, exist_ok=True)
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                log.warning("trace %s: removing a torn last line (%d bytes) left by a crash",
                            path, len(data) - keep)
                f.truncate(keep)
    except FileNotFoundError:
        pass
    return Recorder(node, path)


async def run_server(
    config: ClusterConfig, server_id: str, host: str, port: int, data: str | None, memory: bool,
    *, trace: str | None = None, bugs: Bugs = NO_BUGS,
) -> int:
    """Open the store, serve until SIGTERM/SIGINT (exit 0) or a failed fsync (exit 1).

    ``trace``: a directory to record this server's events in (``<id>.ndjson``); ``bugs``:
    planted bugs to switch on (refinement tests only)."""
    store, state = open_store(data, memory)
    recorder = open_trace(trace, server_id) if trace else OFF
    if bugs != NO_BUGS:
        log.warning("PLANTED BUGS ON: %s (refinement tests only)",
                    ", ".join(f.name for f in fields(Bugs) if getattr(bugs, f.name)))
    server = WormServer(config, server_id, store, state, bugs=bugs, recorder=recorder)
    server.record_recovered()
    gctune.tune()  # after recovery: the recovered state is frozen, never walked again
    try:
        bound = await server.start(host, port)
    except OSError as exc:
        store.close()
        recorder.close()
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    mode = "in memory, NOT DURABLE" if memory else f"durable, data in {data}"
    log.info("server %s (%s-WOR) listening on %s:%d (%s)%s", server_id, config.protocol,
             bound[0], bound[1], mode, f", tracing to {trace}" if trace else "")
    await server.wait_stopped()
    await server.close()
    recorder.close()
    if server.failed is not None:
        log.critical("stopped after a failed fsync: %s", server.failed)
        return 1
    log.info("server %s stopped", server_id)
    return 0

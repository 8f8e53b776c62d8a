"""Trace events (NDJSON): what servers, clients, applications and the simulator record.

One event per line, a JSON object with these keys:

``node``
    who recorded it: ``"s0"``, ``"s1"``... for servers, ``"c0"``... for clients,
    ``"seq"`` for a WormLog sequencer, ``"rm0"``... for WormTX resource managers,
    ``"sim"`` or ``"campaign"`` for the fault injector.
``time``
    integer nanoseconds: ``time.monotonic_ns()`` for real processes (CLOCK_MONOTONIC is shared by
    every process of one machine, so traces of one cluster merge by time), virtual time in the
    simulator.
``seq``
    the event's index in its node's stream (orders events with equal ``time``).
``kind``
    one of :data:`KINDS`; the other keys depend on it:

=============  ====================================================================================
kind           keys
=============  ====================================================================================
``send``       ``peer`` (receiver), ``msg`` (the message in plain form, ``impl/core/codec.py``)
``recv``       ``peer`` (sender), ``msg``
``persist``    ``change`` (``promise``, ``accept``, ``trim``, ``seal``), and per change: ``wor``
               ``[segment, kind, offset]``, ``promised`` / ``accepted`` ballots ``[round, id]``,
               ``value`` (hex); ``segment``; ``epoch``. Recorded once the change is durable.
``invoke``     ``id`` (unique per node), ``op`` (``capture``, ``write``, ``read``, ``alloc``,
               ``append``, ``propose``, ``commit``...), ``args`` (a JSON object)
``response``   ``id``, ``op``, ``result`` (a JSON value; ``"TIMEOUT"`` when the outcome is
               unknown)
``fault``      ``fault`` (``kill``, ``restart``, ``pause``, ``resume``, ``partition``, ``heal``,
               ``loss``, ``dup``, ``reorder``, ``delay``, ``tear``), ``target``, ``detail``
``apply``      a replica applied a command: ``index`` (log address), ``value``, and optional
               ``pos`` (its position in a batch entry; WormPaxos learners)
``decide``     a resource manager decided: ``tx``, ``decision`` (WormTX)
=============  ====================================================================================

Byte strings are written as hex strings. Recording is cheap (one ``json.dumps`` and a buffered
write per event) and off when no sink is given: :data:`OFF` and a recorder built with
``sink=None`` ignore every call, so production code can leave the calls in.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

KINDS = frozenset({"send", "recv", "persist", "invoke", "response", "fault", "apply", "decide"})
_REQUIRED = {
    "send": ("peer", "msg"),
    "recv": ("peer", "msg"),
    "persist": ("change",),
    "invoke": ("id", "op", "args"),
    "response": ("id", "op", "result"),
    "fault": ("fault", "target"),
    "apply": ("index", "value"),
    "decide": ("tx", "decision"),
}


class TraceError(ValueError):
    """A trace file or event is malformed; the message names the file, line and problem."""


def plain(value: Any) -> Any:
    """``value`` in JSON-able form: bytes as hex, tuples/sets as lists, enums as their value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=repr)
    if hasattr(value, "value") and type(value).__module__ != "builtins":  # enum members
        return value.value
    return value


def message(msg: Any) -> dict[str, Any]:
    """A protocol message (``impl/core/messages.py``) in the plain form traces carry."""
    from .core.codec import to_plain

    out: dict[str, Any] = plain(to_plain(msg))
    return out


def record(rec: Any) -> dict[str, Any]:
    """An acceptor record (``impl/core/records.py``) as the keys of a ``persist`` event."""
    from .core.records import SealRecord, TrimRecord, WorRecord

    if isinstance(rec, TrimRecord):
        return {"change": "trim", "segment": rec.segment}
    if isinstance(rec, SealRecord):
        return {"change": "seal", "epoch": rec.epoch}
    if isinstance(rec, WorRecord):
        w, st = rec.wor, rec.state
        out: dict[str, Any] = {
            "change": "promise" if st.accepted is None else "accept",
            "wor": [w.segment, str(w.kind.value), w.offset],
            "promised": list(st.promised),
        }
        if st.accepted is not None:
            out["accepted"] = list(st.accepted)
            out["value"] = plain(st.value)
        return out
    raise TypeError(f"not an acceptor record: {type(rec).__name__}")


class Recorder:
    """Writes one node's events to ``sink`` (a path, a text file, a list, or None for off).

    A path is opened for appending, line-buffered off; call :meth:`flush` (or :meth:`close`)
    before reading the file. A list collects the event dicts themselves (the simulator and tests
    use that; nothing is serialised).
    """

    def __init__(self, node: str, sink: str | os.PathLike[str] | IO[str] | list[dict[str, Any]]
                 | None = None, *, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.node = node
        self.clock = clock
        self._seq = itertools.count()
        self._ids = itertools.count()
        self._owned: IO[str] | None = None
        self._file: IO[str] | None = None
        self._list: list[dict[str, Any]] | None = None
        if isinstance(sink, list):
            self._list = sink
        elif isinstance(sink, (str, os.PathLike)):
            Path(sink).parent.mkdir(parents=True, exist_ok=True)
            self._owned = self._file = open(sink, "a", encoding="utf-8", buffering=1 << 16)
        elif sink is not None:
            self._file = sink
        self.enabled = sink is not None

    # -- the event kinds -----------------------------------------------------------------------

    def send(self, peer: str, msg: Any) -> None:
        if self.enabled:
            self.emit("send", peer=peer, msg=msg if isinstance(msg, dict) else message(msg))

    def recv(self, peer: str, msg: Any) -> None:
        if self.enabled:
            self.emit("recv", peer=peer, msg=msg if isinstance(msg, dict) else message(msg))

    def persist(self, rec: Any) -> None:
        if self.enabled:
            self.emit(**record(rec), kind="persist")

    def invoke(self, op: str, **args: Any) -> int:
        """Record an invocation; returns its id, to pass to :meth:`respond`."""
        i = next(self._ids)
        if self.enabled:
            self.emit("invoke", id=i, op=op, args=plain(args))
        return i

    def respond(self, i: int, op: str, result: Any) -> None:
        if self.enabled:
            self.emit("response", id=i, op=op, result=plain(result))

    def fault(self, fault: str, target: str, **detail: Any) -> None:
        if self.enabled:
            self.emit("fault", fault=fault, target=target, detail=plain(detail))

    def emit(self, kind: str, **fields: Any) -> None:
        """Record an event of ``kind`` with ``fields`` (already JSON-able)."""
        if not self.enabled:
            return
        ev = {"node": self.node, "time": self.clock(), "seq": next(self._seq), "kind": kind,
              **fields}
        if self._list is not None:
            self._list.append(ev)
        elif self._file is not None:
            self._file.write(json.dumps(ev, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._owned is not None:
            self._owned.close()
            self._owned = None
        self.enabled = False


#: The switched-off recorder: every call is a no-op.
OFF = Recorder("off", None)


# -- reading -----------------------------------------------------------------------------------


def validate(ev: Any, where: str = "event") -> dict[str, Any]:
    """``ev`` if it is a well-formed event, else :class:`TraceError` naming what is wrong."""
    if not isinstance(ev, dict):
        raise TraceError(f"{where}: an event must be a JSON object, got {type(ev).__name__}")
    for key in ("node", "time", "kind"):
        if key not in ev:
            raise TraceError(f"{where}: missing key {key!r}")
    if not isinstance(ev["node"], str):
        raise TraceError(f"{where}: 'node' must be a string")
    if type(ev["time"]) is not int:
        raise TraceError(f"{where}: 'time' must be an integer (nanoseconds)")
    kind = ev["kind"]
    if kind not in KINDS:
        raise TraceError(f"{where}: unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    for key in _REQUIRED[kind]:
        if key not in ev:
            raise TraceError(f"{where}: a {kind!r} event needs key {key!r}")
    return ev


def parse_lines(lines: Iterable[str], name: str = "<trace>") -> Iterator[dict[str, Any]]:
    """The events of NDJSON ``lines``; a bad line raises :class:`TraceError` with its number.

    A last line without its newline that does not parse is a torn write (the process was killed
    mid-line): it is reported, not silently dropped, unless it is the only problem and the
    caller asked for :func:`read` with ``allow_torn_tail``.
    """
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as e:
            raise TraceError(f"{name}:{n}: not JSON ({e.msg} at column {e.colno})") from None
        yield validate(ev, f"{name}:{n}")


def read(path: str | os.PathLike[str], *, allow_torn_tail: bool = False) -> list[dict[str, Any]]:
    """The events of one trace file, in file order.

    With ``allow_torn_tail`` a final line without a newline that fails to parse (a process
    killed mid-write) is dropped; any other bad line is an error.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"{p}: no such trace file") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{p}: not UTF-8 text (byte {e.start})") from None
    lines = text.split("\n")
    tail = lines.pop() if lines else ""
    events = list(parse_lines(lines, str(p)))
    if tail.strip():
        try:
            events.extend(parse_lines([tail], f"{p}:{len(lines) + 1}(last, no newline)"))
        except TraceError:
            if not allow_torn_tail:
                raise
    return events


def merge(streams: Iterable[Iterable[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Events of several nodes as one trace, ordered by (time, node, seq)."""
    out = [ev for s in streams for ev in s]
    out.sort(key=lambda e: (e["time"], e["node"], e.get("seq", 0)))
    return out


def read_all(paths: Iterable[str | os.PathLike[str]], *, allow_torn_tail: bool = False
             ) -> list[dict[str, Any]]:
    """Read and merge the trace files ``paths`` (e.g. one per server and client)."""
    return merge(read(p, allow_torn_tail=allow_torn_tail) for p in paths)


def write(path: str | os.PathLike[str], events: Iterable[Mapping[str, Any]]) -> None:
    """Write ``events`` as an NDJSON file (the simulator keeps failing traces for replay)."""
    buf = io.StringIO()
    for ev in events:
        buf.write(json.dumps(plain(dict(ev)), separators=(",", ":")) + "\n")
    Path(path).write_text(buf.getvalue(), encoding="utf-8")


@dataclass(frozen=True)
class Span:
    """One client operation of a history: invocation and response joined by node and id."""

    node: str
    id: int
    op: str
    args: Mapping[str, Any]
    start: int
    end: int | None  # None: no response recorded (the client crashed or the trace was cut)
    result: Any


def spans(events: Iterable[Mapping[str, Any]]) -> list[Span]:
    """The operations of a trace (invocations matched with their responses), by start time."""
    open_: dict[tuple[str, int], Mapping[str, Any]] = {}
    out: list[Span] = []
    for ev in events:
        if ev["kind"] == "invoke":
            open_[(ev["node"], ev["id"])] = ev
        elif ev["kind"] == "response":
            inv = open_.pop((ev["node"], ev["id"]), None)
            if inv is None:
                raise TraceError(f"response without invocation: node {ev['node']} id {ev['id']}")
            out.append(Span(ev["node"], ev["id"], inv["op"], inv["args"], inv["time"],
                            ev["time"], ev["result"]))
    for (node, i), inv in open_.items():
        out.append(Span(node, i, inv["op"], inv["args"], inv["time"], None, None))
    out.sort(key=lambda s: (s.start, s.node, s.id))
    return out

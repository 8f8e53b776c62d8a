"""An append-only log of checksummed records, with torn-tail recovery and atomic compaction.

File format: the 8-byte magic ``WSLOG001``, then records, each
``length (4 bytes, big-endian) | crc32(length bytes + payload) (4 bytes) | payload (msgpack)``.

Durability: :meth:`RecordLog.commit` writes all its records with one ``write`` and then one
``fsync``; only after it returns may the caller acknowledge them. A driver that gathers
concurrent requests commits them together (group commit: one fsync for the batch).

Recovery: :meth:`RecordLog.open` replays the records up to the first one that is incomplete or
fails its checksum, and drops everything from there. A crash during an append leaves exactly
such a tail, and its records were never acknowledged (no fsync returned), so dropping them is
safe. The dropped bytes are first copied to a side file next to the log and reported, so
nothing disappears silently: a *corrupt* (rather than *torn*) tail means the disk damaged data
that may have been acknowledged, which a person should look at.

Compaction: :meth:`RecordLog.rewrite` writes a new log holding only the given records to a
temporary file, fsyncs it, opens and locks it, renames it over the log and fsyncs the directory,
so a crash leaves either the old log or the new one, never a mix. It comes in two halves, so
that appends can go on while the new log is written: :meth:`RecordLog.prepare_rewrite` writes
it aside, and :meth:`RecordLog.finish_rewrite` appends what was appended meanwhile, then
renames. Everything that can fail
before the rename leaves the old log in place and in use; after the rename the log switches to
the new file at once, and a failure to make the rename durable is a :class:`LogSwitchError`
(appends must not be acknowledged any more: a crash could bring back the old log).
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import msgpack

MAGIC = b"WSLOG001"
RECORD_HEADER = struct.Struct(">II")
#: Largest record payload; a larger length field can only be damage.
MAX_RECORD = 64 * 1024 * 1024


class LogError(Exception):
    """The log cannot be used: not a log file, in use by another process, or an I/O failure."""


class LogSwitchError(LogError):
    """A compaction renamed the new log into place but could not make the rename durable: after
    a crash the old log may be back, without what is appended from now on. Nothing appended may
    be acknowledged any more (treat it as a failed fsync); a restart recovers from either log."""


@dataclass(frozen=True)
class Dropped:
    """The tail cut off a log at open time."""

    offset: int  # file offset where the dropped bytes began
    size: int  # how many bytes were dropped
    reason: str  # "torn: ...", "zero-filled: ..." or "corrupt: ..."
    saved_to: str  # side file holding a copy of the dropped bytes

    @property
    def torn(self) -> bool:
        """True if the tail looks like an interrupted append (safe to drop), not damage."""
        return not self.reason.startswith("corrupt")


@dataclass(frozen=True)
class Recovery:
    """What opening a log found: how many records replayed, and what was dropped, if anything."""

    records: int
    dropped: Dropped | None = None
    #: The size in bytes of a compaction's snapshot left as ``<log>.tmp`` by a process that
    #: stopped before switching it in, removed at open (None: there was none). The log itself
    #: holds everything the snapshot did.
    stale_snapshot: int | None = None


def fsync_dir(directory: str) -> None:
    """fsync a directory, making a create, rename or delete in it durable."""
    fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_record(payload: object) -> bytes:
    """One record: header and msgpack payload."""
    body: bytes = msgpack.packb(payload, use_bin_type=True)
    if len(body) > MAX_RECORD:
        raise LogError(f"record of {len(body)} bytes exceeds the maximum of {MAX_RECORD}")
    length = struct.pack(">I", len(body))
    return length + struct.pack(">I", zlib.crc32(length + body)) + body


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _scan(data: bytes) -> tuple[list[object], int, str | None]:
    """Parse records after the magic: (payloads, end of the valid prefix, why it stopped)."""
    out: list[object] = []
    pos, end = len(MAGIC), len(data)
    while pos < end:
        if end - pos < RECORD_HEADER.size:
            return out, pos, "torn: partial record header"
        length, crc = RECORD_HEADER.unpack_from(data, pos)
        if length > MAX_RECORD:
            return out, pos, f"corrupt: record length {length} exceeds {MAX_RECORD}"
        body_at = pos + RECORD_HEADER.size
        if body_at + length > end:
            return out, pos, f"torn: record of {length} bytes runs past the end of the file"
        body = data[body_at : body_at + length]
        if zlib.crc32(data[pos : pos + 4] + body) != crc:
            return out, pos, "corrupt: checksum mismatch"
        try:
            out.append(msgpack.unpackb(body, raw=False, strict_map_key=False))
        except Exception as exc:  # msgpack raises several types
            return out, pos, f"corrupt: payload does not decode ({exc})"
        pos = body_at + length
    return out, pos, None


@dataclass(frozen=True)
class PendingRewrite:
    """A new log written and locked under a temporary name (:meth:`RecordLog.prepare_rewrite`)."""

    tmp: str
    fd: int
    size: int
    records: int


class RecordLog:
    """An open log file (exclusively locked); create with :meth:`open`."""

    def __init__(self, path: str, fd: int, size: int, records: int) -> None:
        self.path = path
        self._fd = fd
        self.size = size  # bytes in the file
        self.records = records  # records in the file (replayed plus appended)

    @classmethod
    def open(cls, path: str) -> tuple[RecordLog, list[object], Recovery]:
        """Open (creating if needed) the log at ``path``: the log, its payloads, the recovery."""
        path = os.path.abspath(path)
        if not os.path.exists(path):
            _create(path, [])
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LogError(f"{path} is in use by another process") from None
        try:
            with open(path, "rb") as f:
                data = f.read()
            if not data.startswith(MAGIC):
                raise LogError(f"{path} is not a WormSpace log (bad magic {data[:8]!r})")
            payloads, good, reason = _scan(data)
            dropped = None
            if reason is not None:
                dropped = _drop_tail(path, fd, data, good, reason)
            stale = _remove_stale_snapshot(path)
            return (cls(path, fd, good, len(payloads)), payloads,
                    Recovery(len(payloads), dropped, stale))
        except BaseException:
            os.close(fd)
            raise

    def append(self, payloads: Iterable[object]) -> int:
        """Write records (one write call), *without* fsync: not yet durable. Returns how many."""
        items = [encode_record(p) for p in payloads]
        if items:
            self.write_encoded(b"".join(items), len(items))
        return len(items)

    def write_encoded(self, blob: bytes, count: int) -> None:
        """Write ``count`` records already encoded by :func:`encode_record` (one write call),
        *without* fsync. For callers that encode on one thread and write on another."""
        _write_all(self._fd, blob)
        self.size += len(blob)
        self.records += count

    def sync(self) -> None:
        """fsync the log: every appended record is durable when this returns."""
        os.fsync(self._fd)

    def commit(self, payloads: Iterable[object]) -> int:
        """Append ``payloads`` and fsync once (group commit); returns how many were written."""
        written = self.append(payloads)
        if written:
            self.sync()
        return written

    def rewrite(self, payloads: Iterable[object]) -> None:
        """Replace the whole log by ``payloads`` atomically (compaction).

        The new file is written, fsynced, opened and locked under a temporary name first: if
        any of that, or the rename, fails, the old log stays in place and in use (appends keep
        going to the file at :attr:`path`). Once renamed, the open file *is* the log; if the
        directory fsync then fails, :class:`LogSwitchError`. The same as
        :meth:`prepare_rewrite` then :meth:`finish_rewrite` with nothing to catch up."""
        self.finish_rewrite(self.prepare_rewrite(payloads))

    def prepare_rewrite(self, payloads: Iterable[object]) -> PendingRewrite:
        """The first half of :meth:`rewrite`: the new log, written, fsynced and locked under a
        temporary name, not yet in use. Touches nothing of this log, so it may run in another
        thread while appends go on; then :meth:`finish_rewrite` or :meth:`abort_rewrite`."""
        items = list(payloads)
        tmp = self.path + ".tmp"
        fd, size = _write_new(tmp, items)
        return PendingRewrite(tmp, fd, size, len(items))

    def finish_rewrite(self, pending: PendingRewrite, blob: bytes = b"", count: int = 0) -> None:
        """The second half: append ``blob`` (``count`` records, encoded: what was appended to
        this log since the new one's contents were taken) to the new log, fsync it, and rename
        it over this one. A failure before the rename discards the new log and leaves this one
        in use; after it, as in :meth:`rewrite`."""
        try:
            if blob:
                _write_all(pending.fd, blob)
                os.fsync(pending.fd)
            os.replace(pending.tmp, self.path)
        except BaseException:
            _discard(pending.fd, pending.tmp)
            raise
        old, self._fd = self._fd, pending.fd
        self.size, self.records = pending.size + len(blob), pending.records + count
        os.close(old)
        try:
            fsync_dir(os.path.dirname(self.path))
        except OSError as exc:
            raise LogSwitchError(f"{self.path}: compacted log renamed into place, but the "
                                 f"directory fsync failed ({exc}): the rename may not survive "
                                 f"a crash") from exc

    def abort_rewrite(self, pending: PendingRewrite) -> None:
        """Drop a prepared new log that will not be used."""
        _discard(pending.fd, pending.tmp)

    def close(self) -> None:
        """Close the file (appended but unsynced records may be lost, as in a crash)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _remove_stale_snapshot(path: str) -> int | None:
    """Remove ``path.tmp``, a compaction's snapshot that was never switched in (its process
    stopped first: we hold the log's lock, so no process is writing it); returns its size, None
    if there was none. Safe in every case: the snapshot only repeats what the log holds, and a
    switch that renamed it into place leaves no ``.tmp`` behind."""
    tmp = path + ".tmp"
    try:
        size = os.stat(tmp).st_size
        os.unlink(tmp)
    except FileNotFoundError:
        return None
    fsync_dir(os.path.dirname(path))
    return size


def _create(path: str, payloads: list[object]) -> None:
    """Write a complete log to a temporary file, fsync, rename into place, fsync the dir."""
    tmp = path + ".tmp"
    fd, _ = _write_new(tmp, payloads)
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def _write_new(tmp: str, payloads: list[object]) -> tuple[int, int]:
    """Write a complete log to ``tmp`` and fsync it; returns it open for appending and locked,
    with its size. On any failure nothing is left open, and ``tmp`` is removed."""
    data = MAGIC + b"".join(encode_record(p) for p in payloads)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        _discard(fd, tmp)
        raise
    return fd, len(data)


def _discard(fd: int, tmp: str) -> None:
    """Close ``fd`` and remove the unfinished log ``tmp`` (an error doing so is not news)."""
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _drop_tail(path: str, fd: int, data: bytes, good: int, reason: str) -> Dropped:
    """Save ``data[good:]`` to a side file (durably), then truncate the log to ``good``."""
    tail = data[good:]
    if tail.count(0) == len(tail):
        reason = f"zero-filled: {len(tail)} zero bytes (an unsynced append after a crash)"
    side, n = f"{path}.dropped-{good}", 1
    while os.path.exists(side):
        side, n = f"{path}.dropped-{good}.{n}", n + 1
    sfd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(sfd, tail)
        os.fsync(sfd)
    finally:
        os.close(sfd)
    fsync_dir(os.path.dirname(path))
    # Only now that the copy is durable, cut the log.
    os.ftruncate(fd, good)
    os.fsync(fd)
    return Dropped(good, len(tail), reason, side)

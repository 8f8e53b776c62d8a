"""A local cluster in background processes: ``wormspace cluster up|down|status``.

Layout of the data directory ``DIR``::

    DIR/cluster.toml    the cluster file (clients: --cluster DIR/cluster.toml)
    DIR/cluster.key     the cluster key (mode 0600)
    DIR/<id>/           server <id>'s data (acceptor.log)
    DIR/<id>.log        server <id>'s log (stderr)
    DIR/<id>.pid        server <id>'s process id while it runs

``up`` on a directory that already holds a cluster file restarts the servers that are not
running (after ``down``, or after a crash), with their data. Servers are detached processes
(their own session), so they outlive the command that started them. Ports are picked free by
the OS (bind to port 0) when the cluster is first created and then kept in the cluster file.
``up(..., trace=DIR, bugs=[...])`` starts servers that record trace events and run planted bugs.

Process faults for fault campaigns (our own processes only, found through their pid files):
:func:`kill` (``kill -9``), :func:`pause` / :func:`resume` (SIGSTOP / SIGCONT), :func:`restart`
(start one server again and wait for its ping), and :func:`tear` (while a server is down, leave
its log as a crash in the middle of an append would: a partial record at the tail, which the
restart must detect, save aside and drop).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import cluster as cluster_file
from .cluster import ClusterConfig, ClusterFileError, ServerSpec
from .framing import FrameDecoder, FrameError, encode_frame

CLUSTER_FILE = "cluster.toml"
KEY_FILE = "cluster.key"


class ClusterError(Exception):
    """Starting, stopping or reaching a local cluster failed."""


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports the OS reports free right now (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def create(data_dir: str, nodes: int, protocol: str = "paxos", *, replica_sets: int = 1,
           segment_size: int = cluster_file.DEFAULT_SEGMENT_SIZE, memory: bool = False,
           host: str = "127.0.0.1") -> ClusterConfig:
    """Write a new cluster file and key in ``data_dir`` (servers ``s0..s{nodes-1}``; server i
    in replica set ``i mod replica_sets``)."""
    if nodes < 1 or replica_sets < 1 or nodes < replica_sets:
        raise ClusterError(f"need nodes >= replica sets >= 1 (got {nodes} and {replica_sets})")
    os.makedirs(data_dir, exist_ok=True)
    base = os.path.abspath(data_dir)
    path = os.path.join(base, CLUSTER_FILE)
    if os.path.exists(path):
        raise ClusterError(f"{path} already exists")
    key_path = os.path.join(base, KEY_FILE)
    if not os.path.exists(key_path):
        cluster_file.create_key(key_path)
    ids = [f"s{i}" for i in range(nodes)]
    ports = free_ports(nodes, host)
    servers = {sid: ServerSpec(sid, host, port, os.path.join(base, sid))
               for sid, port in zip(ids, ports)}
    sets = tuple(tuple(ids[i::replica_sets]) for i in range(replica_sets))
    config = ClusterConfig(protocol, key_path, servers, sets, segment_size, 0, memory, path)
    cluster_file.write(config, path)
    return cluster_file.load(path)


def paths(config: ClusterConfig, server_id: str) -> tuple[Path, Path]:
    """``(log file, pid file)`` of a server, next to the cluster file."""
    assert config.path is not None
    base = Path(config.path).parent
    return base / f"{server_id}.log", base / f"{server_id}.pid"


def start_server(config: ClusterConfig, server_id: str, *, trace: str | None = None,
                 bugs: Sequence[str] = ()) -> int:
    """Start one server as a detached process; returns its pid (also in its pid file).

    ``trace``: directory the server records its events in; ``bugs``: planted bug names."""
    assert config.path is not None
    log_path, pid_path = paths(config, server_id)
    cmd = [sys.executable, "-m", "wormspace", "server", "--id", server_id,
           "--cluster", config.path]
    if config.memory:
        cmd.append("--memory")
    if trace:
        cmd += ["--trace", os.path.abspath(trace)]
    for b in bugs:
        cmd += ["--bug", b]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    _children[proc.pid] = proc
    pid_path.write_text(f"{proc.pid}\n")
    return proc.pid


def server_pid(config: ClusterConfig, server_id: str) -> int | None:
    """The pid of server ``server_id`` if its pid file names a live process running it."""
    _, pid_path = paths(config, server_id)
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_our_server(pid, server_id) else None


#: Servers this process started, by pid: their own Popen objects tell exactly whether they
#: still run (no guessing from /proc, whose cmdline can read empty while a process starts).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _is_our_server(pid: int, server_id: str) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]  # reaped by poll()
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own dead child
    except ChildProcessError:
        pass
    for attempt in range(5):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False  # a zombie: dead, not yet reaped by its parent
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except (OSError, IndexError):
            return False
        if args != [b""]:
            # Guard against a recycled pid: it must be a wormspace server with this id.
            return b"server" in args and b"--id" in args and server_id.encode() in args
        time.sleep(0.01 * (attempt + 1))  # an empty cmdline: the process is mid-exec; look again
    return False


def ping(server: ServerSpec, key: bytes, timeout: float = 1.0) -> dict[str, object]:
    """One synchronous ``ping`` call; raises OSError, TimeoutError or ClusterError."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(encode_frame(key, {"i": 1, "c": "ping", "a": {}}))
        dec = FrameDecoder(key)
        while True:
            data = s.recv(65536)
            if not data:
                raise ClusterError(f"server {server.id} closed the connection (wrong key?)")
            try:
                objs = dec.feed(data)
            except FrameError as exc:
                raise ClusterError(f"server {server.id}: {exc}") from None
            for obj in objs:
                if isinstance(obj, dict) and obj.get("i") == 1 and isinstance(obj.get("r"), dict):
                    result: dict[str, object] = obj["r"]
                    return result
                raise ClusterError(f"server {server.id}: unexpected answer {obj!r:.80}")


def up(config: ClusterConfig, timeout: float = 15.0, *, trace: str | None = None,
       bugs: Sequence[str] = (), only: Sequence[str] | None = None) -> dict[str, int]:
    """Start every server of ``config`` (or of ``only``) that is not running; wait until all
    answer a ping.

    Returns ``{server id: pid}``. On failure, stops the servers it started and raises
    :class:`ClusterError` with the end of the failed server's log.
    """
    key = config.key()
    ids = list(config.servers) if only is None else list(only)
    started: dict[str, int] = {}
    pids: dict[str, int] = {}
    for sid in ids:
        pid = server_pid(config, sid)
        if pid is None:
            pid = started[sid] = start_server(config, sid, trace=trace, bugs=bugs)
        pids[sid] = pid
    deadline = time.monotonic() + timeout
    waiting = set(ids)
    while waiting:
        for sid in sorted(waiting):
            if sid in started and not _is_our_server(started[sid], sid):
                _stop(config, list(started))
                raise ClusterError(f"server {sid} exited during start-up:\n"
                                   + _tail(paths(config, sid)[0]))
            try:
                ping(config.servers[sid], key, timeout=0.5)
                waiting.discard(sid)
            except (OSError, ClusterError):
                pass
        if waiting and time.monotonic() > deadline:
            _stop(config, list(started))
            sid = sorted(waiting)[0]
            raise ClusterError(f"server {sid} did not answer within {timeout:g} s:\n"
                               + _tail(paths(config, sid)[0]))
        if waiting:
            time.sleep(0.05)
    return pids


def down(config: ClusterConfig, timeout: float = 5.0) -> dict[str, str]:
    """Stop every running server (SIGTERM, then SIGKILL after ``timeout``); what happened."""
    return _stop(config, list(config.servers), timeout)


def _stop(config: ClusterConfig, ids: list[str], timeout: float = 5.0) -> dict[str, str]:
    out: dict[str, str] = {}
    live: dict[str, int] = {}
    for sid in ids:
        pid = server_pid(config, sid)
        if pid is None:
            out[sid] = "not running"
        else:
            os.kill(pid, signal.SIGTERM)
            live[sid] = pid
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        for sid, pid in list(live.items()):
            if not _is_our_server(pid, sid):
                out[sid] = f"stopped (pid {pid})"
                del live[sid]
        time.sleep(0.02)
    for sid, pid in live.items():
        os.kill(pid, signal.SIGKILL)
        out[sid] = f"killed (pid {pid}; did not stop within {timeout:g} s)"
    for sid in ids:
        paths(config, sid)[1].unlink(missing_ok=True)
    return out


# -- process faults --------------------------------------------------------------------------------


def _running(config: ClusterConfig, server_id: str) -> int:
    pid = server_pid(config, server_id)
    if pid is None:
        raise ClusterError(f"server {server_id} is not running")
    return pid


def kill(config: ClusterConfig, server_id: str, timeout: float = 5.0) -> int:
    """``kill -9`` server ``server_id`` and wait until it is gone; returns its pid."""
    pid = _running(config, server_id)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while _is_our_server(pid, server_id):
        if time.monotonic() > deadline:
            raise ClusterError(f"server {server_id} (pid {pid}) survived SIGKILL for {timeout:g} s")
        time.sleep(0.005)
    paths(config, server_id)[1].unlink(missing_ok=True)
    return pid


def pause(config: ClusterConfig, server_id: str) -> int:
    """Stop server ``server_id`` (SIGSTOP): its sockets stay open, it answers nothing."""
    pid = _running(config, server_id)
    os.kill(pid, signal.SIGSTOP)
    return pid


def resume(config: ClusterConfig, server_id: str) -> int:
    """Continue a paused server (SIGCONT)."""
    pid = _running(config, server_id)
    os.kill(pid, signal.SIGCONT)
    return pid


def restart(config: ClusterConfig, server_id: str, *, trace: str | None = None,
            bugs: Sequence[str] = (), timeout: float = 15.0) -> int:
    """Start server ``server_id`` again (it must be down) and wait for its ping; its pid."""
    if server_pid(config, server_id) is not None:
        raise ClusterError(f"server {server_id} is still running")
    return up(config, timeout, trace=trace, bugs=bugs, only=[server_id])[server_id]


def data_log(config: ClusterConfig, server_id: str) -> Path:
    """The acceptor log file of server ``server_id``."""
    from ..storage.store import LOG_NAME

    spec = config.servers[server_id]
    if spec.data is None:
        raise ClusterError(f"server {server_id} has no data directory (an in-memory cluster?)")
    return Path(spec.data) / LOG_NAME


def tear(config: ClusterConfig, server_id: str, rng: random.Random | None = None, *,
         mode: str = "append") -> dict[str, int]:
    """Tear server ``server_id``'s log at the tail, mid-record, while the server is down.

    ``mode="append"`` (what a crash in the middle of an append leaves): adds a record (a copy
    of the last one, or a small one on an empty log) cut at a random byte inside it; its
    ``fsync`` never returned, so nothing acknowledged is lost. ``mode="truncate"``: cuts the
    last record itself at a random byte, which loses an acknowledged record (a disk that lost
    data, beyond the crash model: for testing detection only). Returns ``{"offset", "size"}``:
    where the torn record starts and how many of its bytes remain. The restarted server must
    report the torn tail, save it aside and serve the records before it.
    """
    from ..storage.log import MAGIC, RECORD_HEADER, encode_record

    if mode not in ("append", "truncate"):
        raise ClusterError(f"tear mode must be 'append' or 'truncate', got {mode!r}")
    if server_pid(config, server_id) is not None:
        raise ClusterError(f"server {server_id} is running: tear its log only while it is down")
    path = data_log(config, server_id)
    rng = rng or random.Random()
    data = path.read_bytes() if path.exists() else b""
    if not data.startswith(MAGIC):
        raise ClusterError(f"{path}: not a WormSpace log")
    last, start = b"", len(MAGIC)
    pos = len(MAGIC)
    while pos + RECORD_HEADER.size <= len(data):  # find the last complete record
        (length, _crc) = RECORD_HEADER.unpack_from(data, pos)
        end = pos + RECORD_HEADER.size + length
        if end > len(data):
            break
        last, start, pos = data[pos:end], pos, end
    if mode == "truncate":
        if not last:
            raise ClusterError(f"{path}: no record to truncate")
        cut = rng.randrange(1, len(last))
        with open(path, "r+b") as f:
            f.truncate(start + cut)
            os.fsync(f.fileno())
        return {"offset": start, "size": cut}
    record = last or encode_record(["s", 0])
    cut = rng.randrange(1, len(record))  # at least one byte, never the whole record
    with open(path, "ab") as f:
        f.write(record[:cut])
        f.flush()
        os.fsync(f.fileno())
    return {"offset": len(data), "size": cut}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def load_dir(data_dir: str) -> ClusterConfig:
    """The cluster file of a local cluster directory."""
    path = os.path.join(data_dir, CLUSTER_FILE)
    if not os.path.exists(path):
        raise ClusterFileError(f"{path}: no cluster here (start one with "
                               f"`wormspace cluster up --data {data_dir}`)")
    return cluster_file.load(path)

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
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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


def start_server(config: ClusterConfig, server_id: str) -> int:
    """Start one server as a detached process; returns its pid (also in its pid file)."""
    assert config.path is not None
    log_path, pid_path = paths(config, server_id)
    cmd = [sys.executable, "-m", "wormspace", "server", "--id", server_id,
           "--cluster", config.path]
    if config.memory:
        cmd.append("--memory")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
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


def _is_our_server(pid: int, server_id: str) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own dead child
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False  # a zombie: dead, not yet reaped by its parent
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except (OSError, IndexError):
        return False
    # Guard against a recycled pid: it must be a wormspace server with this id.
    return b"server" in args and b"--id" in args and server_id.encode() in args


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


def up(config: ClusterConfig, timeout: float = 15.0) -> dict[str, int]:
    """Start every server of ``config`` that is not running; wait until all answer a ping.

    Returns ``{server id: pid}``. On failure, stops the servers it started and raises
    :class:`ClusterError` with the end of the failed server's log.
    """
    key = config.key()
    started: dict[str, int] = {}
    pids: dict[str, int] = {}
    for sid in config.servers:
        pid = server_pid(config, sid)
        if pid is None:
            pid = started[sid] = start_server(config, sid)
        pids[sid] = pid
    deadline = time.monotonic() + timeout
    waiting = set(config.servers)
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

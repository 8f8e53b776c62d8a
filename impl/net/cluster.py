"""The cluster file (TOML) and the cluster key file.

A cluster file names the servers, the replica sets, the protocol and the key::

    protocol = "paxos"          # Paxos-WOR (2f+1 servers per set) or "chain" (Chain-WOR, f+1)
    key_file = "cluster.key"    # relative paths are relative to this file
    segment_size = 1024         # addresses per segment (WORMSPACE.md section 2)
    epoch = 0                   # configuration epoch the clients use
    memory = false              # true: servers run NOT DURABLE (benchmarks only)
    replica_sets = [["s0", "s1", "s2"]]   # segment s is served by set s mod len(replica_sets)

    [servers.s0]
    address = "127.0.0.1:7000"
    data = "s0"                 # data directory (optional; `wormspace server --data` wins)

Reading uses :mod:`tomllib`; writing is a few lines of hand-made TOML (no dependency). Every
problem raises :class:`ClusterFileError` naming the file and the field.

The key file holds the cluster key in hex on one line; it is created with mode 0600 and
refused if others can read it (like ssh does with private keys).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROTOCOLS = ("paxos", "chain")
DEFAULT_SEGMENT_SIZE = 1024
KEY_BYTES = 32
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ClusterFileError(Exception):
    """The cluster file or the key file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class ServerSpec:
    """One server: its id, the address it listens on, and (optionally) its data directory."""

    id: str
    host: str
    port: int
    data: str | None = None

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 hosts in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ClusterConfig:
    """A parsed cluster file. ``path`` is where it was read from (None if built in memory)."""

    protocol: str
    key_file: str
    servers: dict[str, ServerSpec]
    replica_sets: tuple[tuple[str, ...], ...]
    segment_size: int = DEFAULT_SEGMENT_SIZE
    epoch: int = 0
    memory: bool = False
    path: str | None = None
    _key: list[bytes] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = self.path or "cluster config"
        if self.protocol not in PROTOCOLS:
            raise ClusterFileError(f"{where}: protocol must be one of {PROTOCOLS}, "
                                   f"got {self.protocol!r}")
        if not self.servers:
            raise ClusterFileError(f"{where}: no servers")
        if not self.replica_sets:
            raise ClusterFileError(f"{where}: replica_sets is empty")
        for i, rs in enumerate(self.replica_sets):
            if not rs:
                raise ClusterFileError(f"{where}: replica_sets[{i}] is empty")
            if len(set(rs)) != len(rs):
                raise ClusterFileError(f"{where}: replica_sets[{i}] names a server twice")
            for sid in rs:
                if sid not in self.servers:
                    raise ClusterFileError(f"{where}: replica_sets[{i}] names unknown server "
                                           f"{sid!r} (known: {', '.join(self.servers)})")
        addresses = [(s.host, s.port) for s in self.servers.values()]
        if len(set(addresses)) != len(addresses):
            raise ClusterFileError(f"{where}: two servers share an address")
        if type(self.segment_size) is not int or self.segment_size < 1:
            raise ClusterFileError(f"{where}: segment_size must be a positive integer")
        if type(self.epoch) is not int or self.epoch < 0:
            raise ClusterFileError(f"{where}: epoch must be a non-negative integer")

    def key(self) -> bytes:
        """The cluster key (read from ``key_file`` once, then cached)."""
        if not self._key:
            self._key.append(read_key(self.key_file))
        return self._key[0]

    def replica_set_index(self, segment: int) -> int:
        """Which replica set serves ``segment`` (WORMSPACE.md section 2: ``s mod P``)."""
        return segment % len(self.replica_sets)

    def replica_set(self, segment: int) -> tuple[str, ...]:
        """The server ids serving ``segment``, in order (for chain: head first, tail last)."""
        return self.replica_sets[self.replica_set_index(segment)]

    def sets_of(self, server_id: str) -> list[int]:
        """Indices of the replica sets ``server_id`` belongs to."""
        return [i for i, rs in enumerate(self.replica_sets) if server_id in rs]


def parse_address(text: str, where: str = "address") -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` as ``(host, port)``; raises ClusterFileError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ClusterFileError(f"{where}: expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def load(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read and validate a cluster file."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ClusterFileError(f"{p}: no such cluster file") from None
    except OSError as exc:
        raise ClusterFileError(f"{p}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ClusterFileError(f"{p}: not valid TOML: {exc}") from None
    return from_dict(doc, str(p))


def from_dict(doc: dict[str, object], path: str) -> ClusterConfig:
    """Build a config from a parsed TOML document (relative paths against ``path``'s folder)."""
    base = Path(path).parent

    def get(name: str, typ: type, default: object = None) -> object:
        v = doc.get(name, default)
        if v is None:
            raise ClusterFileError(f"{path}: missing {name!r}")
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise ClusterFileError(f"{path}: {name!r} must be a {typ.__name__}, got {v!r:.40}")
        return v

    known = {"protocol", "key_file", "segment_size", "epoch", "memory", "replica_sets", "servers"}
    unknown = set(doc) - known
    if unknown:
        raise ClusterFileError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    raw_servers = get("servers", dict)
    assert isinstance(raw_servers, dict)
    servers: dict[str, ServerSpec] = {}
    for sid, entry in raw_servers.items():
        where = f"{path}: servers.{sid}"
        if not _ID.match(sid):
            raise ClusterFileError(f"{where}: a server id is 1-64 letters, digits, '_' or '-'")
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            raise ClusterFileError(f"{where}: needs address = \"HOST:PORT\"")
        if set(entry) - {"address", "data"}:
            raise ClusterFileError(f"{where}: unknown field(s) "
                                   f"{', '.join(sorted(set(entry) - {'address', 'data'}))}")
        host, port = parse_address(entry["address"], f"{where}.address")
        data = entry.get("data")
        if data is not None and not isinstance(data, str):
            raise ClusterFileError(f"{where}.data must be a path string")
        servers[sid] = ServerSpec(sid, host, port, str(base / data) if data else None)
    raw_sets = get("replica_sets", list)
    assert isinstance(raw_sets, list)
    sets: list[tuple[str, ...]] = []
    for i, rs in enumerate(raw_sets):
        if not isinstance(rs, list) or not all(isinstance(s, str) for s in rs):
            raise ClusterFileError(f"{path}: replica_sets[{i}] must be a list of server ids")
        sets.append(tuple(rs))
    key_file = get("key_file", str)
    assert isinstance(key_file, str)
    return ClusterConfig(
        protocol=str(get("protocol", str)),
        key_file=str(base / key_file),
        servers=servers,
        replica_sets=tuple(sets),
        segment_size=get("segment_size", int, DEFAULT_SEGMENT_SIZE),  # type: ignore[arg-type]
        epoch=get("epoch", int, 0),  # type: ignore[arg-type]
        memory=bool(get("memory", bool, False)),
        path=path,
    )


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dumps(config: ClusterConfig, relative_to: str | None = None) -> str:
    """The cluster file text for ``config`` (paths relative to ``relative_to`` when inside it)."""

    def rel(p: str) -> str:
        if relative_to is not None:
            r = os.path.relpath(p, relative_to)
            if not r.startswith(".."):
                return r
        return p

    lines = [
        "# WormSpace cluster file",
        f"protocol = {_toml_str(config.protocol)}",
        f"key_file = {_toml_str(rel(config.key_file))}",
        f"segment_size = {config.segment_size}",
        f"epoch = {config.epoch}",
        f"memory = {'true' if config.memory else 'false'}"
        + ("  # NOT DURABLE: servers keep state in memory only" if config.memory else ""),
        "replica_sets = ["
        + ", ".join("[" + ", ".join(_toml_str(s) for s in rs) + "]" for rs in config.replica_sets)
        + "]",
    ]
    for s in config.servers.values():
        lines += ["", f"[servers.{s.id}]", f"address = {_toml_str(s.address)}"]
        if s.data:
            lines.append(f"data = {_toml_str(rel(s.data))}")
    return "\n".join(lines) + "\n"


def write(config: ClusterConfig, path: str) -> None:
    """Write ``config`` to ``path`` atomically (temporary file, then rename)."""
    text = dumps(config, os.path.dirname(os.path.abspath(path)))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def create_key(path: str) -> bytes:
    """Create a new random cluster key at ``path`` (mode 0600; refuses to overwrite)."""
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ClusterFileError(f"{path}: a key file already exists (not overwriting it)") from None
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def read_key(path: str) -> bytes:
    """Read a hex key file; refuse one that group or others can read."""
    try:
        st = os.stat(path)
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        raise ClusterFileError(f"{path}: no such key file") from None
    except OSError as exc:
        raise ClusterFileError(f"{path}: cannot read the key file: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClusterFileError(f"{path}: key file is accessible by others "
                               f"(mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600 {path}")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ClusterFileError(f"{path}: the key file must hold the key in hex") from None
    if len(key) < 16:
        raise ClusterFileError(f"{path}: the key is {len(key)} bytes; at least 16 are needed")
    return key

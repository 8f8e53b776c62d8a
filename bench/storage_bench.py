"""Storage benchmark: acceptor-state records per second with real fsync, for the record log
(impl/storage) versus sqlite3 (WAL, synchronous=FULL) and lmdb (if installed).

Each row stores the same acceptor records (a WOR's full state with a 64-byte value) and
measures for ``--seconds``:

* ``append, no fsync``: records written without making them durable (an upper bound);
* ``commit x1``: one record per fsync (one acknowledged request at a time);
* ``group commit x16`` / ``x64``: that many records per fsync (a driver gathering requests).

Run: ``python bench/storage_bench.py [--dir DIR] [--seconds S]``. DIR must be on the disk you
care about (a tmpfs makes fsync free and the numbers meaningless); the table says which
filesystem was used. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import msgpack
from wormspace.impl.core import Kind, WorId, WorRecord, WorState, record_to_plain
from wormspace.impl.storage import DurableStore, MemoryStore
from wormspace.impl.storage.log import RecordLog

try:
    import lmdb  # optional: pip install lmdb
except ImportError:  # pragma: no cover - depends on the machine
    lmdb = None  # type: ignore[assignment]

VALUE = b"v" * 64


def record(i: int) -> WorRecord:
    """The i-th benchmark record: a distinct data WOR accepted with a 64-byte value."""
    return WorRecord(WorId(i // 1000, Kind.DATA, i % 1000), WorState((i, 1), (i, 1), VALUE))


#: Records are built before timing, so the rows measure storage, not the benchmark's own loop.
POOL = [record(i) for i in range(64 * 1024)]


def measure(
    batch: int, seconds: float, commit: Callable[[list[WorRecord]], None]
) -> tuple[float, float]:
    """Call ``commit`` with batches of ``batch`` records for ``seconds``: (records/s, commits/s)."""
    batches = [POOL[k : k + batch] for k in range(0, len(POOL), batch)]
    done = commits = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        recs = batches[commits % len(batches)]
        commit(recs)
        done += len(recs)
        commits += 1
    elapsed = time.perf_counter() - start
    return done / elapsed, commits / elapsed


# -- backends: each returns a commit function and a closer for one mode ------------------------


Backend = tuple[Callable[[list[WorRecord]], None], Callable[[], None]]


def wormlog(directory: str, sync: bool) -> Backend:
    """The acceptor store; ``sync=False`` appends without fsync (RecordLog.append)."""
    store, _, _ = DurableStore.open(directory)
    if sync:
        return store.persist, store.close
    log: RecordLog = store.log
    return (lambda recs: log.append(record_to_plain(r) for r in recs)), store.close


def memory(directory: str, sync: bool) -> Backend:
    """MemoryStore (not durable), for reference."""
    store, _, _ = MemoryStore.open()
    return store.persist, store.close


def sqlite(directory: str, sync: bool) -> Backend:
    """A state table in sqlite3, WAL mode; synchronous=FULL (OFF for the no-fsync row)."""
    db = sqlite3.connect(os.path.join(directory, "state.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={'FULL' if sync else 'OFF'}")
    db.execute(
        "CREATE TABLE IF NOT EXISTS wor (seg INT, kind TEXT, off INT, state BLOB,"
        " PRIMARY KEY (seg, kind, off))"
    )

    def commit(recs: list[WorRecord]) -> None:
        db.execute("BEGIN")
        db.executemany(
            "INSERT OR REPLACE INTO wor VALUES (?, ?, ?, ?)",
            [(r.wor.segment, r.wor.kind.value, r.wor.offset,
              msgpack.packb(record_to_plain(r))) for r in recs],
        )
        db.execute("COMMIT")

    return commit, db.close


def lmdb_env(directory: str, sync: bool) -> Backend:
    """A key-value map in lmdb; sync=True fsyncs every transaction commit."""
    env = lmdb.open(os.path.join(directory, "lmdb"), map_size=1 << 30, sync=sync, metasync=sync)

    def commit(recs: list[WorRecord]) -> None:
        with env.begin(write=True) as txn:
            for r in recs:
                key = f"{r.wor.segment}/{r.wor.kind.value}/{r.wor.offset}".encode()
                txn.put(key, msgpack.packb(record_to_plain(r)))

    return commit, env.close


MODES = [("append, no fsync", 64, False), ("commit x1", 1, True),
         ("group commit x16", 16, True), ("group commit x64", 64, True)]


def filesystem(directory: str) -> str:
    """The filesystem type of ``directory`` (from df), for the record."""
    try:
        out = subprocess.run(["df", "-T", directory], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run every backend in every mode and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=None, help="directory on the disk to test")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="measurements per row (median)")
    args = parser.parse_args(argv)
    backends: list[tuple[str, Callable[[str, bool], Backend]]] = [
        ("wormspace log", wormlog),
        ("sqlite3 WAL", sqlite),
    ]
    if lmdb is not None:
        backends.append(("lmdb", lmdb_env))
    backends.append(("memory (NOT durable)", memory))
    root = tempfile.mkdtemp(prefix="wsbench-", dir=args.dir)
    cases = [
        (name, make, mode, batch, sync)
        for name, make in backends
        for mode, batch, sync in MODES
        # One memory row is enough to show the cost without a disk.
        if not (name.startswith("memory") and (not sync or batch != 1))
    ]
    # Round-robin over the cases, so a change in machine load hits every backend alike.
    runs: dict[int, list[tuple[float, float]]] = {k: [] for k in range(len(cases))}
    for _ in range(args.repeat):
        for k, (_, make, _, batch, sync) in enumerate(cases):
            directory = tempfile.mkdtemp(dir=root)
            commit, close = make(directory, sync)
            runs[k].append(measure(batch, args.seconds, commit))
            close()
            shutil.rmtree(directory)
    fs = filesystem(root)
    os.rmdir(root)
    rows = []
    for k, (name, _, mode, _, sync) in enumerate(cases):
        ordered = sorted(runs[k])
        recs, commits = ordered[len(ordered) // 2]
        durable = sync and not name.startswith("memory")
        fsyncs = f"{commits:,.0f}" if durable else "-"
        per = f"{1e6 / commits:,.1f}" if sync else "-"
        spread = f"{ordered[0][0]:,.0f}–{ordered[-1][0]:,.0f}"
        rows.append(f"| {name} | {mode} | {recs:,.0f} | {spread} | {fsyncs} | {per} |")
    print(f"Storage benchmark ({platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, filesystem {fs}, median of {args.repeat} x "
          f"{args.seconds} s, 64-byte values{'' if lmdb else ', lmdb not installed'})\n")
    print("| backend | mode | records/s (median) | min–max | durable commits/s | µs per commit |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

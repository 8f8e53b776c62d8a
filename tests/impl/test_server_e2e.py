"""End to end: real server processes (`wormspace cluster up`), real sockets on 127.0.0.1 with
OS-picked free ports, real fsync. Every fixture stops its cluster (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wormspace.impl.core import Kind, Outcome, Read, ReadReply, WorId
from wormspace.impl.net import cluster as cluster_file
from wormspace.impl.net import local_cluster as lc
from wormspace.impl.net.client import (
    NotAllocated,
    SyncClient,
    Trimmed,
    Unavailable,
    WormSpaceClient,
)
from wormspace.impl.net.connection import Connection
from wormspace.impl.net.framing import FrameDecoder, FrameError, encode_frame, unbatch

WS = [sys.executable, "-m", "wormspace"]


def ws(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the wormspace command line (bounded in time)."""
    return subprocess.run([*WS, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


class Cluster:
    """A cluster started with `wormspace cluster up` in ``data``."""

    def __init__(self, data: Path, *args: str) -> None:
        self.data = data
        r = ws("cluster", "up", "--data", str(data), *args)
        assert r.returncode == 0, r.stderr
        assert f"Cluster file: {data / 'cluster.toml'}" in r.stdout
        self.path = str(data / "cluster.toml")
        self.config = cluster_file.load(self.path)

    def pid(self, sid: str) -> int:
        pid = lc.server_pid(self.config, sid)
        assert pid is not None, f"{sid} is not running"
        return pid

    def kill9(self, *sids: str) -> None:
        pids = [self.pid(s) for s in sids]
        for p in pids:
            os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(lc.server_pid(self.config, s) for s in sids) and time.monotonic() < deadline:
            time.sleep(0.01)

    def restart(self) -> None:
        """`cluster up` on the existing directory: restarts the servers that are down."""
        r = ws("cluster", "up", "--data", str(self.data))
        assert r.returncode == 0, r.stderr

    def log(self, sid: str) -> str:
        return (self.data / f"{sid}.log").read_text()

    def down(self) -> None:
        ws("cluster", "down", "--data", str(self.data))
        lc.down(self.config, timeout=2)  # in case the command failed: never leave processes


@pytest.fixture(scope="module")
def paxos(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("paxos"), "--nodes", "3", "--segment-size", "100")
    yield c
    c.down()


@pytest.fixture
def fresh_paxos(tmp_path):
    c = Cluster(tmp_path / "c", "--nodes", "3", "--segment-size", "1000000")
    yield c
    c.down()


# -- every client call -------------------------------------------------------------------------


def test_every_client_call(paxos):
    got: list[tuple[int, bytes]] = []
    with SyncClient(paxos.path) as c, SyncClient(paxos.path) as other:
        with pytest.raises(NotAllocated):
            c.read(10)
        assert c.alloc(0, b"leader=a") and not other.alloc(0, b"leader=b")
        assert other.check(0) == b"leader=a" and c.check(1) is None
        lst = other.listen(0, lambda a, v: got.append((a, v)))
        assert c.write(10, b"ten") is Outcome.OK and other.read(10) == b"ten"
        assert other.write(10, b"x") is Outcome.ALREADY_WRITTEN
        cap = c.capture(11)
        assert other.write(11, b"with-a's-cid", cap) is Outcome.OK  # transferable
        assert c.write(12, b"u", 0) is Outcome.OK
        caps = c.capture_range(0, 20, 30)
        assert c.write_range(0, 20, [b"r%d" % i for i in range(10)], caps) == [Outcome.OK] * 10
        assert [c.read(a) for a in (20, 29, 30)] == [b"r0", b"r9", None]
        deadline = time.monotonic() + 5
        while len(got) < 13 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(got) == sorted([(10, b"ten"), (11, b"with-a's-cid"), (12, b"u")]
                                     + [(20 + i, b"r%d" % i) for i in range(10)])
        other.unlisten(lst)
        status = c.status()
        assert all(s["durable"] and s["fsyncs"] > 0 for s in status.values()), status
        c.trim(0)
        with pytest.raises(Trimmed):
            other.read(10)


def test_wor_command_line(paxos):
    env = {"WORMSPACE_CLUSTER": paxos.path}
    assert ws("wor", "alloc", "5", "meta", env=env).stdout.startswith("OK")
    assert ws("wor", "write", "500", "hello", env=env).stdout.strip() == "OK"
    r = ws("wor", "write", "500", "again", env=env)
    assert (r.returncode, r.stdout.strip()) == (1, "ALREADY_WRITTEN")
    assert ws("wor", "read", "500", env=env).stdout.strip() == "hello"
    cid = ws("wor", "capture", "501", env=env).stdout.split()[1]
    assert ws("wor", "write", "501", "hex:00ff", "--cid", cid, env=env).stdout.strip() == "OK"
    assert ws("wor", "read", "501", env=env).stdout.strip() == "hex:00ff"
    r = ws("wor", "read", "700", env=env)
    assert (r.returncode, r.stdout.split(":")[0]) == (1, "NOT_ALLOCATED")
    r = ws("wor", "read", "1")
    assert r.returncode == 3 and "WORMSPACE_CLUSTER" in r.stderr
    st = ws("cluster", "status", "--data", str(paxos.data))
    assert st.returncode == 0 and st.stdout.count("up (durable") == 3


# -- crashes -----------------------------------------------------------------------------------


async def _write_until(client: WormSpaceClient, acked: dict[int, bytes], next_addr: list[int],
                       stop: asyncio.Event, workers: int = 8) -> None:
    """Capture+write fresh addresses until ``stop``; record each acknowledged write."""

    async def worker() -> None:
        while not stop.is_set():
            addr = next_addr[0]
            next_addr[0] += 1
            value = b"v%d" % addr
            try:
                outcome = await client.write(addr, value)
            except Unavailable:
                await asyncio.sleep(0.05)
                continue
            assert outcome is Outcome.OK
            acked[addr] = value

    await asyncio.gather(*(worker() for _ in range(workers)))


@pytest.mark.parametrize("thrifty", [False, True])
def test_kill9_during_writes_loses_no_acknowledged_write(fresh_paxos, thrifty):
    # thrifty: each write sits on exactly a majority (s0+s1 before the kill, s1+s2 while s0 is
    # down); the reads below, with s1 down, find each value on one of s0 and s2 and repair it.
    c = fresh_paxos
    acked: dict[int, bytes] = {}
    next_addr = [0]

    async def scenario() -> None:
        async with WormSpaceClient.from_file(c.path, timeout=0.3, retries=2,
                                             thrifty=thrifty) as client:
            await client.alloc(0, b"m")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            task = loop.create_task(_write_until(client, acked, next_addr, stop))
            await asyncio.sleep(0.5)
            n0 = len(acked)
            c.kill9("s0")  # a minority: writes go on
            await asyncio.sleep(0.5)
            assert len(acked) > n0 + 10, "writes stalled with one server down"
            await loop.run_in_executor(None, c.restart)
            await asyncio.sleep(0.3)
            c.kill9("s0", "s1", "s2")  # everything, mid-write
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert len(acked) > 50
    c.restart()
    # s0 lost its memory twice; with s1 down its recovered log is needed for a quorum.
    c.kill9("s1")

    async def read_all() -> dict[int, bytes | None]:
        sem = asyncio.Semaphore(64)  # a client's worth of concurrency, not thousands at once

        async def read(client: WormSpaceClient, a: int) -> bytes | None:
            async with sem:
                return await client.read(a)

        async with WormSpaceClient.from_file(c.path) as client:
            values = await asyncio.gather(*(read(client, a) for a in acked))
        return dict(zip(acked, values))

    found = asyncio.run(read_all())
    wrong = {a: v for a, v in found.items() if v != acked[a]}
    assert wrong == {}, f"{len(wrong)} of {len(acked)} acknowledged writes lost or changed"
    assert "recovered" in c.log("s0")


def test_corrupted_log_tail_is_detected_and_the_prefix_served(fresh_paxos):
    c = fresh_paxos
    with SyncClient(c.path) as client:
        client.alloc(0, b"m")
        for a in range(20):
            assert client.write(a, b"v%d" % a) is Outcome.OK
    c.kill9("s0")
    log = c.data / "s0" / "acceptor.log"
    data = bytearray(log.read_bytes())
    data[-1] ^= 0xFF  # damage the last record's payload: its checksum fails
    log.write_bytes(bytes(data))
    c.restart()
    text = c.log("s0")
    assert "log tail dropped" in text and "corrupt: checksum mismatch" in text
    assert list((c.data / "s0").glob("acceptor.log.dropped-*"))
    # s0 serves the committed prefix: it still has an early accepted value ...

    async def direct_read() -> ReadReply:
        conn = Connection(c.config.servers["s0"], c.config.key())
        try:
            return await asyncio.wait_for(conn.request(Read(0, WorId(0, Kind.DATA, 0))), 5)
        finally:
            await conn.close()

    reply = asyncio.run(direct_read())
    assert reply.value == b"v0"
    # ... and the cluster still answers every read (the lost record is on the other two).
    c.kill9("s1")
    with SyncClient(c.path) as client:
        assert [client.read(a) for a in range(20)] == [b"v%d" % a for a in range(20)]


def test_minority_down_paxos_stays_available_chain_does_not(tmp_path):
    p = Cluster(tmp_path / "p", "--nodes", "5")
    ch = Cluster(tmp_path / "ch", "--nodes", "2", "--protocol", "chain")
    try:
        p.kill9("s3", "s4")
        with SyncClient(p.path, timeout=0.2, retries=2) as client:
            assert client.alloc(0, b"m")
            assert client.write(1, b"a") is Outcome.OK and client.read(1) == b"a"
            assert client.capture_range(0, 10, 20)
        with SyncClient(ch.path, timeout=0.2, retries=2) as client:
            assert client.alloc(0, b"m") and client.write(1, b"a") is Outcome.OK
            ch.kill9("s1")  # the tail
            with pytest.raises(Unavailable):
                client.write(2, b"b")
    finally:
        p.down()
        ch.down()


def test_chain_cluster_calls(tmp_path):
    ch = Cluster(tmp_path / "ch", "--nodes", "3", "--protocol", "chain", "--segment-size", "10")
    got: list[tuple[int, bytes]] = []
    try:
        with SyncClient(ch.path) as c, SyncClient(ch.path) as d:
            assert c.alloc(1, b"m") and not d.alloc(1, b"n")
            d.listen(1, lambda a, v: got.append((a, v)))
            assert c.write(10, b"x") is Outcome.OK and d.read(10) == b"x"
            assert d.write(10, b"y") is Outcome.ALREADY_WRITTEN
            cap = c.capture(11)
            assert d.capture(11) and c.write(11, b"z", cap) is Outcome.PREEMPTED
            assert c.write_range(1, 2, [b"p", b"q"]) == [Outcome.OK, Outcome.OK]
            assert d.read(13) == b"q"
            deadline = time.monotonic() + 5
            while len(got) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sorted(got) == [(10, b"x"), (12, b"p"), (13, b"q")]
            c.trim(1)
            with pytest.raises(Trimmed):
                d.read(10)
    finally:
        ch.down()


# -- hostile input -----------------------------------------------------------------------------


def _exchange(addr: tuple[str, int], data: bytes, key: bytes) -> tuple[list[object], bool]:
    """Send ``data``; collect frames until the server closes or goes quiet: (frames, closed)."""
    frames: list[object] = []
    with socket.create_connection(addr, timeout=2) as s:
        s.sendall(data)
        s.settimeout(0.5)
        dec = FrameDecoder(key)
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return frames, False
            except ConnectionResetError:
                return frames, True
            if not chunk:
                return frames, True
            try:
                frames += _flat(dec.feed(chunk))
            except FrameError:
                return frames, True


def _flat(objs: list[object]) -> list[object]:
    """The envelopes in decoded frames, batch frames ({"b": [...]}) unpacked."""
    out: list[object] = []
    for o in objs:
        items = unbatch(o)
        out += [o] if items is None else items
    return out


def test_garbage_frames_leave_the_server_serving_and_state_untouched(paxos):
    key = paxos.config.key()
    spec = paxos.config.servers["s1"]
    addr = (spec.host, spec.port)
    with SyncClient(paxos.path) as c:
        c.alloc(3, b"m")
        assert c.write(300, b"keep") is Outcome.OK
        # The write returned at a majority; let s1 finish its part before taking the baseline.
        before = c.status()["s1"]
        for _ in range(50):
            time.sleep(0.05)
            now, before = before, c.status()["s1"]
            if now["records"] == before["records"]:
                break
        cases = [
            b"\x00\x00\x00\x10" + os.urandom(16),  # shorter than its tag
            struct.pack(">I", 1 << 30) + b"x" * 64,  # oversized: refused before buffering
            encode_frame(b"w" * 32, {"i": 1, "m": {"t": "seal", "epoch": 99}}),  # wrong key
            os.urandom(300),
        ]
        for data in cases:
            frames, closed = _exchange(addr, data, key)
            assert closed, data[:8]
            assert all(f.get("e") == "bad_frame" for f in frames)  # type: ignore[union-attr]
        # An authentic frame with a malformed message: an error reply; the connection stays.
        bad = encode_frame(key, {"i": 7, "m": {"t": "accept", "epoch": 0}})
        good = encode_frame(key, {"i": 8, "c": "ping", "a": {}})
        frames, closed = _exchange(addr, bad + good, key)
        assert not closed
        assert frames[0]["i"] == 7 and frames[0]["e"] == "malformed"  # type: ignore[index]
        assert frames[1]["i"] == 8 and frames[1]["r"]["id"] == "s1"  # type: ignore[index]
        after = c.status()["s1"]
        assert (after["wors"], after["epoch"], after["records"]) == (
            before["wors"], before["epoch"], before["records"])
        assert after["bad_frames"] == before.get("bad_frames", 0) + len(cases)
        assert c.read(300) == b"keep" and c.write(301, b"more") is Outcome.OK
    assert "bad frame, closing: BadAuthentication" in paxos.log("s1")

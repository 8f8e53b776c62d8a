"""Client library, cluster file and group commit, against in-process servers (no subprocesses)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from inproc_server import ServerThread, make_config
from wormspace.impl.core import Kind, Outcome, WorId
from wormspace.impl.core.records import WorRecord, WorState
from wormspace.impl.net import cluster as cluster_file
from wormspace.impl.net.client import (
    UNSAFE,
    Capture,
    Listener,
    NotAllocated,
    Sealed,
    SyncClient,
    Trimmed,
    Unavailable,
    WormSpaceClient,
    WrongKey,
)
from wormspace.impl.net.cluster import ClusterFileError
from wormspace.impl.net.commit import GroupCommit
from wormspace.impl.net.segments import AddressSpace, BadAddress

# -- cluster file ------------------------------------------------------------------------------


def test_cluster_file_round_trip(tmp_path):
    cfg = make_config(str(tmp_path), 5, "chain", sets=2, segment_size=16)
    again = cluster_file.load(cfg.path)
    assert again.protocol == "chain" and again.segment_size == 16
    assert again.replica_sets == (("s0", "s2", "s4"), ("s1", "s3"))
    assert again.replica_set(3) == ("s1", "s3") and again.sets_of("s2") == [0]
    assert again.servers["s1"].data == str(tmp_path / "s1")
    assert len(again.key()) == 32
    assert os.stat(cfg.key_file).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('"paxos"', '"raft"'), "protocol must be one of"),
    (lambda t: t.replace('["s0", "s1", "s2"]', '["s0", "s9"]'), "unknown server 's9'"),
    (lambda t: t.replace('address = "127.0.0.1:', 'address = "127.0.0.1;'), "expected HOST:PORT"),
    (lambda t: t.replace("segment_size = 64", "segment_size = 0"), "segment_size"),
    (lambda t: t + "colour = 1\n", "unknown field(s) colour"),
    (lambda t: t.replace("protocol =", "protocol"), "not valid TOML"),
    (lambda t: t.replace('key_file = "cluster.key"', 'key_file = "nope.key"'), "no such key file"),
])
def test_bad_cluster_files_name_the_problem(tmp_path, edit, message):
    make_config(str(tmp_path))
    p = tmp_path / "cluster.toml"
    p.write_text(edit(p.read_text()))
    with pytest.raises(ClusterFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cluster_file.load(str(p)).key()


def test_missing_file_and_bad_keys(tmp_path):
    with pytest.raises(ClusterFileError, match="no such cluster file"):
        cluster_file.load(str(tmp_path / "nothing.toml"))
    key = tmp_path / "k"
    for text, mode, msg in [("ab" * 32, 0o644, "accessible by others"),
                            ("zz" * 32, 0o600, "in hex"), ("ab" * 4, 0o600, "at least 16")]:
        key.write_text(text)
        key.chmod(mode)
        with pytest.raises(ClusterFileError, match=msg):
            cluster_file.read_key(str(key))
    with pytest.raises(ClusterFileError, match="already exists"):
        cluster_file.create_key(str(key))


# -- address space, capture ids, listener counting ---------------------------------------------


def test_address_space():
    sp = AddressSpace(100, 3)
    assert sp.locate(250) == (2, 50) and sp.address(2, 50) == 250
    assert sp.data_wor(250) == WorId(2, Kind.DATA, 50) and sp.replica_set(4) == 1
    for bad in (-1, 1.5, "3"):
        with pytest.raises(BadAddress):
            sp.locate(bad)  # type: ignore[arg-type]
    with pytest.raises(BadAddress):
        sp.check_range(0, 10, 101)
    with pytest.raises(BadAddress):
        sp.check_range(0, 5, 5)


def test_capture_token_round_trip():
    c = Capture(7, (3, 99), b"\x00x")
    assert Capture.from_token(7, c.token()) == c
    assert Capture.from_token(7, "1:2") == Capture(7, (1, 2), None)
    for bad in ("1", "a:b", "0:5", "1:2:zz"):
        with pytest.raises(BadAddress):
            Capture.from_token(7, bad)


class _FakeClient:
    space = AddressSpace(10, 1)


def test_listener_delivers_once_a_majority_reports_the_same_ballot():
    got: list[tuple[int, bytes]] = []
    lst = Listener(_FakeClient(), 2, lambda a, v: got.append((a, v)),  # type: ignore[arg-type]
                   ("s0", "s1", "s2"), 2)
    lst.on_notify("s0", 3, (1, 1), b"a")
    lst.on_notify("s1", 3, (2, 2), b"b")  # another ballot: not yet chosen
    lst.on_notify("s9", 3, (1, 1), b"a")  # not in the set
    assert got == []
    lst.on_notify("s2", 3, (2, 2), b"b")
    assert got == [(23, b"b")]
    lst.on_notify("s0", 3, (2, 2), b"b")  # a late third report changes nothing
    assert got == [(23, b"b")]


# -- group commit ------------------------------------------------------------------------------


class _GatedStore:
    """A durable-looking store whose write_group (the worker's half of persist_group) blocks
    until released."""

    durable = True

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.groups: list[int] = []

    def encode_group(self, batches):
        return batches

    def write_group(self, batches):
        self.gate.wait(5)
        self.groups.append(sum(len(b) for b in batches))

    def maybe_compact(self, state):
        return False

    def wants_compaction(self):
        return False

    def close(self):
        pass


def test_group_commit_orders_replies_after_earlier_records():
    rec = WorRecord(WorId(0, Kind.DATA, 0), WorState((1, 1)))

    async def scenario() -> list[str]:
        store = _GatedStore()
        gc = GroupCommit(store, lambda: None, lambda e: None,  # type: ignore[arg-type]
                         inline_max=0)  # the gated fsync must run in the thread
        ran: list[str] = []
        gc.after_durable([], lambda: ran.append("idle-read"))  # nothing pending: at once
        gc.after_durable([rec], lambda: ran.append("w1"))
        gc.after_durable([rec], lambda: ran.append("w2"))
        gc.after_durable([], lambda: ran.append("read-after-w2"))  # must wait for w1, w2
        await asyncio.sleep(0.05)
        assert ran == ["idle-read"]  # the fsync is blocked: nothing acknowledged
        gc.after_durable([rec], lambda: ran.append("w3"))  # arrives during the fsync
        store.gate.set()
        await asyncio.sleep(0.1)
        gc.close()
        assert store.groups == [2, 1]  # w1+w2 in one fsync, w3 in the next
        return ran

    assert asyncio.run(scenario()) == ["idle-read", "w1", "w2", "read-after-w2", "w3"]


class _CompactingStore(_GatedStore):
    """Persists at once; wants one compaction, whose snapshot (made in the compaction thread)
    blocks until released; its switch (in the fsync thread) gets the groups since the cut."""

    def __init__(self) -> None:
        super().__init__()
        self.gate.set()
        self.compact_gate = threading.Event()
        self.prepared: list[tuple[object, str]] = []
        self.finished: list[tuple[object, list[int], str]] = []
        self.want = True

    def wants_compaction(self):
        return self.want

    def compact_prepare(self, state):
        self.want = False
        self.compact_gate.wait(5)
        snapshot = dict(state.wors)
        self.prepared.append((snapshot, threading.current_thread().name))
        return snapshot

    def compact_finish(self, prepared, since):
        self.finished.append((prepared, [sum(len(b) for b in g) for g in since],
                              threading.current_thread().name))

    def compact_abort(self, prepared):
        raise AssertionError("not expected")


def test_group_commit_compacts_aside_from_a_copy_while_groups_go_on():
    """Compaction makes its snapshot in a thread of its own from a copy of the state taken
    between requests: the loop keeps running, and requests with records are persisted and
    answered meanwhile (they no longer wait for it: seconds on a large state). Later changes
    do not leak into the snapshot; the groups written since the cut are handed to the switch,
    in order, which runs in the fsync thread once no group is in flight."""
    from wormspace.impl.core.records import AcceptorState

    w0, w1, w2 = (WorId(0, Kind.DATA, i) for i in range(3))
    state = AcceptorState()
    state.wors[w0] = WorState((1, 1))

    async def scenario() -> tuple[list[str], _CompactingStore, GroupCommit]:
        store = _CompactingStore()
        gc = GroupCommit(store, lambda: state, lambda e: None)  # type: ignore[arg-type]
        ran: list[str] = []
        gc.after_durable([WorRecord(w0, WorState((1, 1)))], lambda: ran.append("w0"))
        await asyncio.sleep(0.05)  # persisted; the compaction started and is blocked
        assert ran == ["w0"] and gc.compactions == 0 and store.prepared == []
        state.wors[w1] = WorState((2, 2))  # changed after the cut: not in the snapshot
        gc.after_durable([], lambda: ran.append("read"))  # nothing pending: answered now
        gc.after_durable([WorRecord(w1, WorState((2, 2)))], lambda: ran.append("w1"))
        gc.after_durable([], lambda: ran.append("read-after-w1"))
        await asyncio.sleep(0.05)
        state.wors[w2] = WorState((3, 3))
        gc.after_durable([WorRecord(w2, WorState((3, 3))), WorRecord(w2, WorState((3, 3)))],
                         lambda: ran.append("w2"))
        await asyncio.sleep(0.05)
        # the compaction is still blocked, and everything was persisted and answered
        assert ran == ["w0", "read", "w1", "read-after-w1", "w2"] and gc.compactions == 0
        store.compact_gate.set()
        await asyncio.sleep(0.1)
        gc.close()
        return ran, store, gc

    _, store, gc = asyncio.run(scenario())
    assert gc.compactions == 1 and store.groups == [1, 1, 2]
    (snapshot, thread), = store.prepared
    assert snapshot == {w0: WorState((1, 1))} and thread.startswith("compact")
    (prepared, since, thread), = store.finished
    assert prepared is snapshot and since == [1, 2] and thread.startswith("fsync")


def test_the_switch_waits_for_the_group_in_flight():
    """A snapshot ready while a group is being fsynced is switched in after that group, and
    the group is among those handed to the switch; a request arriving meanwhile waits for the
    switch, then goes to the new log."""
    from wormspace.impl.core.records import AcceptorState

    w = WorId(0, Kind.DATA, 0)
    state = AcceptorState()

    async def scenario() -> tuple[list[str], _CompactingStore, GroupCommit]:
        store = _CompactingStore()
        gc = GroupCommit(store, lambda: state, lambda e: None,  # type: ignore[arg-type]
                         inline_max=0)
        ran: list[str] = []
        gc.after_durable([WorRecord(w, WorState((1, 1)))], lambda: ran.append("a"))
        await asyncio.sleep(0.05)  # persisted; the compaction started, blocked
        store.gate.clear()  # the next fsync blocks
        gc.after_durable([WorRecord(w, WorState((2, 2)))], lambda: ran.append("b"))
        await asyncio.sleep(0.05)  # "b" is in flight, blocked
        store.compact_gate.set()  # the snapshot becomes ready during it
        await asyncio.sleep(0.05)
        assert store.finished == [] and ran == ["a"]  # no switch while a group is in flight
        store.gate.set()
        await asyncio.sleep(0.05)
        gc.after_durable([WorRecord(w, WorState((3, 3)))], lambda: ran.append("c"))
        await asyncio.sleep(0.1)
        gc.close()
        return ran, store, gc

    ran, store, gc = asyncio.run(scenario())
    assert ran == ["a", "b", "c"] and gc.compactions == 1
    (_, since, _), = store.finished
    assert since == [1] and store.groups == [1, 1, 1]


def test_a_compaction_whose_rename_may_not_be_durable_stops_all_replies():
    """LogSwitchError from a compaction is a durability failure, like a failed fsync: the
    server is told (on_failure) and nothing handled afterwards is acknowledged. Any other
    compaction failure leaves the old log in use and replies go on."""
    from wormspace.impl.core.records import AcceptorState
    from wormspace.impl.storage import LogSwitchError

    w0 = WorId(0, Kind.DATA, 0)

    class _FailingCompaction(_CompactingStore):
        def __init__(self, exc: Exception) -> None:
            super().__init__()
            self.exc = exc
            self.compact_gate.set()

        def compact_finish(self, prepared, since):
            raise self.exc

    async def scenario(exc: Exception) -> tuple[list[str], list[BaseException]]:
        store = _FailingCompaction(exc)
        failures: list[BaseException] = []
        gc = GroupCommit(store, lambda: AcceptorState(), failures.append)  # type: ignore[arg-type]
        ran: list[str] = []
        gc.after_durable([WorRecord(w0, WorState((1, 1)))], lambda: ran.append("w0"))
        await asyncio.sleep(0.05)  # persisted, then the compaction failed
        gc.after_durable([WorRecord(w0, WorState((2, 2)))], lambda: ran.append("w1"))
        gc.after_durable([], lambda: ran.append("read"))
        await asyncio.sleep(0.05)
        gc.close()
        return ran, failures

    ran, failures = asyncio.run(scenario(LogSwitchError("dir fsync failed")))
    assert ran == ["w0"] and len(failures) == 1 and isinstance(failures[0], LogSwitchError)
    ran, failures = asyncio.run(scenario(OSError(28, "no space left")))
    assert ran == ["w0", "w1", "read"] and failures == []


def test_a_failed_compaction_is_retried_after_a_growing_wait_not_at_every_group():
    """The rule that wanted a compaction still holds after it failed (a full disk, say);
    retrying at every group would rebuild the snapshot each time. The next try waits 1 s,
    then 2, 4... up to a minute, and replies go on meanwhile."""
    from wormspace.impl.core.records import AcceptorState

    w = WorId(0, Kind.DATA, 0)

    class _FullDisk(_CompactingStore):
        def __init__(self) -> None:
            super().__init__()
            self.compact_gate.set()
            self.tries = 0

        def compact_prepare(self, state):
            self.tries += 1
            raise OSError(28, "No space left on device (injected)")

    async def scenario() -> tuple[list[int], _FullDisk, GroupCommit, list[int]]:
        store = _FullDisk()
        gc = GroupCommit(store, lambda: AcceptorState(), lambda e: None)  # type: ignore[arg-type]
        acked: list[int] = []
        tries: list[int] = []
        for k in range(20):
            gc.after_durable([WorRecord(w, WorState((k + 1, 1)))], lambda k=k: acked.append(k))
            await asyncio.sleep(0.01)
        tries.append(store.tries)  # one try, then the wait
        gc._no_compaction_until = 0.0  # as if the wait were over
        gc.after_durable([WorRecord(w, WorState((30, 1)))], lambda: acked.append(30))
        await asyncio.sleep(0.05)
        tries.append(store.tries)
        gc.close()
        return acked, store, gc, tries

    acked, _, gc, tries = asyncio.run(scenario())
    assert acked == [*range(20), 30] and tries == [1, 2]
    assert gc._compact_backoff == 4.0 and gc.compactions == 0


def test_a_memory_store_behind_group_commit_is_compacted():
    """MemoryStore (benchmarks) is compacted too, so a long run does not keep every record:
    rewriting one WOR 50 times leaves its last state, not 50 records."""
    from wormspace.impl.core.records import AcceptorState
    from wormspace.impl.storage import MemoryStore

    w = WorId(0, Kind.DATA, 0)
    state = AcceptorState()
    store = MemoryStore(compact_after=10)
    gc = GroupCommit(store, lambda: state, lambda e: None)
    acked = []
    for k in range(1, 51):
        state.wors[w] = WorState((k, 1))
        gc.after_durable([WorRecord(w, state.wors[w])], lambda k=k: acked.append(k))
    assert acked == list(range(1, 51))
    # compacted at the 10th record (10 kept, 0 live), then whenever 10 more piled up on top
    # of the 1 live one: 5 times, the last one at the 50th, which leaves just the live state
    assert gc.compactions == 5 and store.records == [WorRecord(w, WorState((50, 1)))]


# -- client against in-process servers ---------------------------------------------------------


@pytest.fixture
def cluster(tmp_path):
    cfg = make_config(str(tmp_path), 3, segment_size=64)
    servers = ServerThread(cfg, durable=True)
    yield cfg, servers
    servers.close()


def test_every_call_in_process(cluster):
    cfg, _ = cluster
    with SyncClient(cfg) as c:
        with pytest.raises(NotAllocated):
            c.write(5, b"x")
        assert c.check(0) is None
        assert c.alloc(0, b"leader=1") is True
        assert c.alloc(0, b"leader=2") is False
        assert c.check(0) == b"leader=1"
        assert c.write(5, b"x") is Outcome.OK
        assert c.write(5, b"y") is Outcome.ALREADY_WRITTEN
        assert c.read(5) == b"x" and c.read(6) is None
        cap = c.capture(7)
        assert cap.adopted is None
        rival = c.capture(7)
        assert c.write(7, b"late", cap) is Outcome.PREEMPTED
        assert c.write(7, b"won", rival) is Outcome.OK
        assert c.capture(7).adopted == b"won"  # a new capture reveals the chosen value
        assert c.write(8, b"u", UNSAFE) is Outcome.OK and c.read(8) == b"u"
        assert c.write(8, b"v", UNSAFE) is Outcome.PREEMPTED
        caps = c.capture_range(0, 10, 20)
        assert len({x.ballot for x in caps}) == 1
        assert c.write_range(0, 10, [bytes([i]) for i in range(10)], caps) == [Outcome.OK] * 10
        assert c.read(15) == b"\x05"
        assert c.write_range(0, 18, [b"a", b"b", b"c"]) == [
            Outcome.ALREADY_WRITTEN, Outcome.ALREADY_WRITTEN, Outcome.OK]
        c.trim(0)
        with pytest.raises(Trimmed):
            c.read(5)
        with pytest.raises(Trimmed):
            c.check(0)


def test_capture_ids_are_transferable(cluster):
    cfg, _ = cluster
    with SyncClient(cfg) as a, SyncClient(cfg) as b:
        a.alloc(1, b"m")
        cap = a.capture(64)
        assert b.write(64, b"from-b", cap) is Outcome.OK
        assert a.read(64) == b"from-b"


def test_listen_gets_chosen_writes(cluster):
    cfg, _ = cluster
    got: list[tuple[int, bytes]] = []
    seen = threading.Event()

    def cb(addr: int, value: bytes) -> None:
        got.append((addr, value))
        if len(got) == 3:
            seen.set()

    with SyncClient(cfg) as listener_client, SyncClient(cfg) as writer:
        writer.alloc(2, b"m")
        lst = listener_client.listen(2, cb)
        for i in range(3):
            writer.write(128 + i, b"w%d" % i)
        assert seen.wait(5)
        assert sorted(got) == [(128, b"w0"), (129, b"w1"), (130, b"w2")]
        listener_client.unlisten(lst)


def _persisted(servers) -> dict[str, tuple[int, int, int]]:
    """Each server's (fsyncs, records persisted, largest group)."""
    return {sid: servers.sync(lambda srv=srv: (srv.commit.fsyncs, srv.commit.records_persisted,
                                                srv.commit.largest_group))
            for sid, srv in servers.servers.items()}


@pytest.mark.parametrize("thrifty", [True, False])
def test_pipelining_uses_one_connection_and_group_commit_batches(cluster, thrifty):
    cfg, servers = cluster
    base = _persisted(servers)

    async def many() -> list[Outcome]:
        # (no hedge before 1 s: the point is which servers are asked when none is slow)
        async with WormSpaceClient(cfg, thrifty=thrifty, timeout=2.0, hedge=1.0) as c:
            await c.alloc(3, b"m")
            return list(await asyncio.gather(*(c.write(192 + i, b"v") for i in range(40))))

    assert asyncio.run(many()) == [Outcome.OK] * 40
    # 40 promises + 40 accepts at least (alloc adds more) at each server asked: a majority
    # when thrifty (each phase goes to 2 of the 3 first), else every server, the third after
    # the write returned (a write returns at a majority).
    want = 2 if thrifty else 3
    for _ in range(100):
        now = _persisted(servers)
        grew = {sid: tuple(a - b for a, b in zip(now[sid][:2], base[sid][:2])) + now[sid][2:]
                for sid in now}
        busy = [g for g in grew.values() if g[1] >= 80]
        if len(busy) >= want:
            break
        time.sleep(0.02)
    assert len(busy) == want, grew
    for fsyncs, records, largest in busy:
        assert fsyncs < records and largest > 1, grew  # concurrent requests share fsyncs
    if thrifty:
        assert sorted(g[1] for g in grew.values())[0] == 0, grew  # the third was not asked


def test_seal_rejects_the_old_epoch(cluster):
    cfg, _ = cluster
    with SyncClient(cfg) as c:
        c.alloc(0, b"m")
        c.seal(1)
        with pytest.raises(Sealed):
            c.write(1, b"x")


def test_minority_down_and_unreachable(cluster):
    cfg, servers = cluster
    with SyncClient(cfg, timeout=0.2, retries=2) as c:
        c.alloc(0, b"m")
        servers.stop("s2")
        assert c.write(3, b"x") is Outcome.OK and c.read(3) == b"x"
        servers.stop("s1")
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match="no quorum of s0, s1, s2"):
            c.read(3)
        assert time.monotonic() - t0 < 3


def test_wrong_key_is_reported_not_retried(cluster, tmp_path):
    cfg, _ = cluster
    other = tmp_path / "other.key"
    cluster_file.create_key(str(other))
    bad = cluster_file.ClusterConfig(cfg.protocol, str(other), cfg.servers, cfg.replica_sets,
                                     cfg.segment_size)
    with SyncClient(bad, timeout=0.2, retries=1) as c:
        with pytest.raises(WrongKey, match="cluster key differs"):
            c.check(0)


def test_bad_arguments_fail_before_sending(cluster):
    cfg, _ = cluster
    with SyncClient(cfg) as c:
        with pytest.raises(TypeError):
            c.write(1, "text")  # type: ignore[arg-type]
        with pytest.raises(BadAddress):
            c.read(-1)
        with pytest.raises(BadAddress):
            c.write(1, b"x", Capture(2, (1, 1)))
        with pytest.raises(BadAddress):
            c.capture_range(0, 60, 65)


def test_a_split_quorum_with_a_server_down_retries_above_the_rival(cluster):
    """1 OK + 1 PREEMPTED of 3 with the third down: the op must not wait for the dead one."""
    from wormspace.impl.core import Prepare

    cfg, servers = cluster
    with SyncClient(cfg, timeout=0.2, retries=2) as c:
        c.alloc(0, b"m")
        servers.stop("s2")
        srv = servers.servers["s0"]
        servers.sync(lambda: srv.acceptor.handle(Prepare(0, WorId(0, Kind.DATA, 9), (1000, 7))))
        t0 = time.monotonic()
        assert c.write(9, b"x") is Outcome.OK
        assert c.read(9) == b"x"
        assert time.monotonic() - t0 < 1.0


def test_group_commit_persists_a_lone_request_on_the_loop_and_groups_in_the_thread():
    """A group of one request is fsynced on the event loop (light load); larger groups go to
    the worker thread. Both acknowledge only after persisting, in order."""
    seen: list[tuple[int, str]] = []

    class Store(_GatedStore):
        def write_group(self, batches):
            seen.append((sum(len(b) for b in batches), threading.current_thread().name))

    rec = WorRecord(WorId(0, Kind.DATA, 0), WorState((1, 1)))

    async def scenario() -> list[str]:
        store = Store()
        gc = GroupCommit(store, lambda: None, lambda e: None)  # type: ignore[arg-type]
        ran: list[str] = []
        gc.after_durable([rec], lambda: ran.append("alone"))
        await asyncio.sleep(0.05)
        gc.after_durable([rec], lambda: ran.append("a"))
        gc.after_durable([rec], lambda: ran.append("b"))
        await asyncio.sleep(0.05)
        gc.close()
        return ran

    assert asyncio.run(scenario()) == ["alone", "a", "b"]
    main = threading.main_thread().name
    assert seen[0] == (1, main)
    assert seen[1][0] == 2 and seen[1][1].startswith("fsync")


# -- the connection's reply path, against a fake transport ----------------------------------------


class _FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        pass


def _wired_connection(tmp_path):
    from wormspace.impl.net.connection import Connection
    from wormspace.impl.net.framing import FrameDecoder

    cfg = make_config(str(tmp_path), 1)
    key = cfg.key()
    conn = Connection(cfg.servers["s0"], key)

    class Proto:
        transport = _FakeTransport()

    proto = Proto()
    conn._proto, conn._decoder = proto, FrameDecoder(key)  # type: ignore[assignment]
    return conn, proto, key


def test_a_forgotten_request_s_reply_is_dropped_without_decoding(tmp_path, monkeypatch):
    """Once an op is decided it forgets its unanswered requests: their replies are dropped
    before the message is decoded (and the callback is never called)."""
    from wormspace.impl.core import codec
    from wormspace.impl.core.messages import Accept, Accepted, Status
    from wormspace.impl.net import connection as connection_mod
    from wormspace.impl.net.framing import encode_frame

    async def scenario() -> None:
        conn, proto, key = _wired_connection(tmp_path)
        w = WorId(0, Kind.DATA, 1)
        got: list[object] = []
        rid_kept = conn.request_cb(Accept(0, w, (1, 1), b"v"), lambda r, e: got.append(r))
        rid_gone = conn.request_cb(Accept(0, w, (1, 1), b"v"), lambda r, e: got.append(r))
        conn.forget(rid_gone)
        await asyncio.sleep(0)
        assert proto.transport.written  # both requests left, in one batch frame
        reply = codec.to_plain(Accepted(Status.OK, w, (1, 1), (1, 1)))
        decoded: list[object] = []
        real = connection_mod.from_plain
        monkeypatch.setattr(connection_mod, "from_plain",
                            lambda obj, allowed: decoded.append(obj) or real(obj, allowed))
        conn._data(proto, encode_frame(key, {"b": [{"i": rid_gone, "m": reply},
                                                    {"i": rid_kept, "m": reply}]}))
        assert len(decoded) == 1  # only the kept request's reply was decoded
        assert len(got) == 1 and isinstance(got[0], Accepted)

    asyncio.run(scenario())


@pytest.mark.parametrize("batch", [{"b": []}, {"b": "x"}])
def test_a_malformed_batch_from_a_server_fails_the_connection_s_requests(tmp_path, batch):
    from wormspace.impl.core.messages import Read
    from wormspace.impl.net.connection import ServerUnreachable
    from wormspace.impl.net.framing import encode_frame

    async def scenario() -> None:
        conn, proto, key = _wired_connection(tmp_path)
        errors: list[BaseException | None] = []
        conn.request_cb(Read(0, WorId(0, Kind.DATA, 1)), lambda r, e: errors.append(e))
        conn._data(proto, encode_frame(key, batch))
        assert len(errors) == 1 and isinstance(errors[0], ServerUnreachable)
        assert "batch" in str(errors[0]) and proto.transport.aborted
        assert not conn.connected

    asyncio.run(scenario())


def test_a_real_log_compacted_while_groups_go_on_keeps_every_record(tmp_path):
    """DurableStore behind group commit, compacted while requests keep coming: the groups
    appended during the compaction reach the new log, and reopening gives the live state."""
    from wormspace.impl.core.acceptor import Acceptor
    from wormspace.impl.core.messages import Accept
    from wormspace.impl.storage.store import DurableStore

    class _SlowSnapshot(DurableStore):
        gate = threading.Event()

        def compact_prepare(self, state):
            self.gate.wait(5)  # appends go on meanwhile
            return super().compact_prepare(state)

    store, state, _ = _SlowSnapshot.open(str(tmp_path), compact_after=40)
    acc = Acceptor(state)

    async def scenario() -> list[int]:
        gc = GroupCommit(store, lambda: acc.state, lambda e: None)
        acked: list[int] = []
        for k in range(121):
            # rewrites of 20 WORs make garbage (a compaction starts near k = 40), and the WORs
            # written while it is blocked (60 <= k < 120) are in no other record: only the
            # groups kept since the cut bring them to the new log
            off = 100 + k if 60 <= k < 120 else k % 20
            _, persist = acc.handle(Accept(0, WorId(1, Kind.DATA, off), (k + 1, 1), b"v%d" % k))
            gc.after_durable(persist.records, lambda k=k: acked.append(k))
            if k % 10 == 9:
                await asyncio.sleep(0.005)
            if k == 120:
                _SlowSnapshot.gate.set()
        await asyncio.sleep(0.2)
        gc.close()
        # one compaction, cut before the first fresh WOR: all 60 come from the kept groups
        assert gc.compactions == 1 and store.live == 20 and store.kept > 20 + 60
        return acked

    assert asyncio.run(scenario()) == list(range(121))
    store.close()
    _, reopened, recovery = DurableStore.open(str(tmp_path))
    assert reopened == acc.state and recovery.dropped is None
    assert not (tmp_path / "acceptor.log.tmp").exists()

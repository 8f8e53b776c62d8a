"""Durable acceptor state: the record log (fsync, group commit, torn and corrupt tails,
compaction) and the stores built on it."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from wormspace.impl.core import (
    Accept,
    Acceptor,
    Kind,
    Prepare,
    Seal,
    Trim,
    WorId,
    WorRecord,
    WorState,
)
from wormspace.impl.storage import (
    DurableStore,
    LogError,
    LogSwitchError,
    MemoryStore,
    RecordLog,
    StorageError,
)
from wormspace.impl.storage.log import MAGIC, encode_record


def payload(i: int) -> list[object]:
    return ["w", i, "data", i % 7, [i, 1], None, None]


def committed_log(path: Path, count: int) -> RecordLog:
    log, _, _ = RecordLog.open(str(path))
    for i in range(count):
        log.commit([payload(i)])
    return log


def test_committed_records_survive_reopen_in_order(tmp_path: Path) -> None:
    log = committed_log(tmp_path / "a.log", 5)
    log.commit([payload(5), payload(6)])  # a group
    log.close()
    log, payloads, recovery = RecordLog.open(str(tmp_path / "a.log"))
    assert payloads == [payload(i) for i in range(7)]
    assert recovery.records == 7 and recovery.dropped is None
    assert log.size == os.path.getsize(tmp_path / "a.log")
    log.close()


def test_a_torn_last_record_is_dropped_at_every_cut(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    committed_log(path, 3).close()
    good = path.read_bytes()
    last = encode_record(payload(99))
    for cut in range(len(last)):
        path.write_bytes(good + last[:cut])
        log, payloads, recovery = RecordLog.open(str(path))
        assert payloads == [payload(i) for i in range(3)], cut
        assert path.read_bytes() == good, cut  # truncated back to the committed prefix
        if cut == 0:
            assert recovery.dropped is None
        else:
            d = recovery.dropped
            assert d is not None and (d.offset, d.size) == (len(good), cut)
            assert d.torn or d.reason.startswith("zero-filled") or "corrupt" in d.reason
            assert Path(d.saved_to).read_bytes() == last[:cut]  # nothing lost silently
            os.remove(d.saved_to)
        # The log is usable after recovery: append, reopen, all there.
        log.commit([payload(3)])
        log.close()
        log, payloads, _ = RecordLog.open(str(path))
        assert payloads == [payload(i) for i in range(4)]
        log.close()


def test_torn_cuts_report_torn_not_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    committed_log(path, 1).close()
    good = path.read_bytes()
    last = encode_record(payload(42))
    for cut in (1, 5, 8, len(last) - 1):  # inside the header, and inside the payload
        path.write_bytes(good + last[:cut])
        log, _, recovery = RecordLog.open(str(path))
        assert recovery.dropped is not None and recovery.dropped.torn, cut
        assert recovery.dropped.reason.startswith(("torn", "zero-filled")), cut
        log.close()


def test_a_corrupt_byte_drops_from_that_record_and_says_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    committed_log(path, 6).close()
    data = bytearray(path.read_bytes())
    rec = len(encode_record(payload(0)))  # all payloads here encode to the same length
    at = len(MAGIC) + 2 * rec + 12  # inside record #2's payload
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    log, payloads, recovery = RecordLog.open(str(path))
    assert payloads == [payload(0), payload(1)]
    d = recovery.dropped
    assert d is not None and not d.torn and "checksum" in d.reason
    assert d.offset == len(MAGIC) + 2 * rec and d.size == 4 * rec
    assert Path(d.saved_to).read_bytes() == bytes(data[d.offset:])
    log.close()


def test_zero_filled_tail_and_repeated_drops_keep_every_copy(tmp_path: Path) -> None:
    path = tmp_path / "z.log"
    committed_log(path, 2).close()
    good = path.read_bytes()
    saved = []
    for _ in range(2):
        path.write_bytes(good + bytes(4096))
        log, payloads, recovery = RecordLog.open(str(path))
        assert len(payloads) == 2 and recovery.dropped is not None
        assert recovery.dropped.reason.startswith("zero-filled") and recovery.dropped.torn
        saved.append(recovery.dropped.saved_to)
        log.close()
    assert len(set(saved)) == 2 and all(os.path.exists(s) for s in saved)


def test_not_a_log_and_in_use_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "x.log").write_bytes(b"hello world")
    with pytest.raises(LogError, match="not a WormSpace log"):
        RecordLog.open(str(tmp_path / "x.log"))
    log, _, _ = RecordLog.open(str(tmp_path / "y.log"))
    with pytest.raises(LogError, match="in use"):
        RecordLog.open(str(tmp_path / "y.log"))
    log.close()


def test_commit_is_one_fsync_per_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, _ = DurableStore.open(str(tmp_path))
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    w = WorId(1, Kind.DATA, 0)
    store.persist_group([[WorRecord(w, WorState((i, 1)))] for i in range(1, 17)])
    assert len(calls) == 1
    store.persist([])  # nothing to make durable: no fsync
    assert len(calls) == 1
    store.persist([WorRecord(w, WorState((20, 1)))])
    assert len(calls) == 2
    store.close()


def random_requests(rng: random.Random, count: int) -> list:
    out: list = []
    e = 0  # requests follow the latest seal, as clients that re-fetched the configuration
    for _ in range(count):
        w = WorId(rng.randrange(40), Kind.DATA, rng.randrange(8))
        b = (rng.randrange(1, 5), rng.randrange(1, 4))
        kind = rng.random()
        if kind < 0.5:
            out.append(Prepare(e, w, b))
        elif kind < 0.96:
            out.append(Accept(e, w, b, rng.randbytes(rng.randrange(0, 40))))
        elif kind < 0.98:
            out.append(Trim(e, w.segment))
        else:
            e += 1
            out.append(Seal(e))
    return out


def test_acceptor_state_survives_reopen_and_compaction(tmp_path: Path) -> None:
    rng = random.Random(7)
    store, state, _ = DurableStore.open(str(tmp_path), compact_after=50)
    acc = Acceptor(state)
    compactions = 0
    for i, req in enumerate(random_requests(rng, 1500)):
        _, persist = acc.handle(req)
        store.persist(persist.records)
        compactions += store.maybe_compact(acc.state)
        if i % 500 == 499:  # restart from disk now and then
            store.close()
            store, state, recovery = DurableStore.open(str(tmp_path), compact_after=50)
            assert state == acc.state and recovery.dropped is None
            acc = Acceptor(state)
    assert compactions >= 2
    before = os.path.getsize(tmp_path / "acceptor.log")
    store.compact(acc.state)
    assert os.path.getsize(tmp_path / "acceptor.log") <= before
    assert not (tmp_path / "acceptor.log.tmp").exists()
    store.close()
    store, state, _ = DurableStore.open(str(tmp_path))
    assert state == acc.state
    assert state.trimmed and all(w.segment not in state.trimmed for w in state.wors)
    store.close()


def _contents(path: Path) -> list[object]:
    log, payloads, _ = RecordLog.open(str(path))
    log.close()
    return payloads


@pytest.mark.parametrize("failing", ["fsync", "flock", "replace"])
def test_a_rewrite_that_fails_before_the_rename_keeps_the_old_log_in_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    path = tmp_path / "acceptor.log"
    log = committed_log(path, 5)
    target = {"fsync": os, "flock": __import__("fcntl"), "replace": os}[failing]
    real = getattr(target, failing)

    def broken(*args: object, **kw: object) -> object:
        raise OSError(28, f"{failing} failed (injected)")

    monkeypatch.setattr(target, failing, broken)
    with pytest.raises(OSError, match="injected"):
        log.rewrite([payload(0)])
    monkeypatch.setattr(target, failing, real)
    # Appends still reach the file at the path: nothing written after the failure is lost.
    log.commit([payload(5)])
    log.close()
    assert _contents(path) == [payload(i) for i in range(6)]
    assert not (tmp_path / "acceptor.log.tmp").exists()


def test_a_snapshot_never_switched_in_is_removed_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "acceptor.log"
    log = committed_log(path, 5)
    pending = log.prepare_rewrite([payload(0)])  # a compaction's snapshot, written aside
    tmp = tmp_path / "acceptor.log.tmp"
    assert tmp.exists() and tmp.stat().st_size == pending.size
    # While the log is held, a second open is refused and touches neither file.
    with pytest.raises(LogError, match="in use"):
        RecordLog.open(str(path))
    assert tmp.exists()
    log.close()  # the process stops before the switch: the snapshot's fd goes with it
    os.close(pending.fd)
    log, payloads, recovery = RecordLog.open(str(path))
    log.close()
    assert payloads == [payload(i) for i in range(5)]  # the log, not the snapshot
    assert recovery.stale_snapshot == pending.size and recovery.dropped is None
    assert not tmp.exists()
    log, _, recovery = RecordLog.open(str(path))
    log.close()
    assert recovery.stale_snapshot is None


def test_a_rewrite_switches_to_the_new_file_even_if_the_dir_fsync_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "acceptor.log"
    log = committed_log(path, 5)
    import wormspace.impl.storage.log as logmod

    def broken(directory: str) -> None:
        raise OSError(5, "directory fsync failed (injected)")

    monkeypatch.setattr(logmod, "fsync_dir", broken)
    with pytest.raises(LogSwitchError, match="rename may not survive"):
        log.rewrite([payload(1), payload(3)])
    monkeypatch.undo()
    # The renamed file is the log now: later appends land in it, not in the replaced one.
    log.commit([payload(9)])
    log.close()
    assert _contents(path) == [payload(1), payload(3), payload(9)]
    assert isinstance(LogSwitchError("x"), LogError)


def test_compaction_reclaims_trimmed_segments(tmp_path: Path) -> None:
    store, state, _ = DurableStore.open(str(tmp_path))
    acc = Acceptor(state)
    for off in range(200):
        store.persist(acc.handle(Accept(0, WorId(1, Kind.DATA, off), (1, 1), b"x" * 100))[1].records)
    store.persist(acc.handle(Trim(0, 1))[1].records)
    grown = os.path.getsize(tmp_path / "acceptor.log")
    store.compact(acc.state)
    assert os.path.getsize(tmp_path / "acceptor.log") < grown // 50
    store.close()
    _, state, _ = DurableStore.open(str(tmp_path))
    assert state.trimmed == {1} and not state.wors


def test_a_checksummed_but_meaningless_record_is_a_storage_error(tmp_path: Path) -> None:
    log, _, _ = RecordLog.open(str(tmp_path / "acceptor.log"))
    log.commit([["w", 1, "data", 0, [1, 1], None, None], ["nonsense"]])
    log.close()
    with pytest.raises(StorageError, match="record #1"):
        DurableStore.open(str(tmp_path))


def test_memory_store_has_the_same_interface_and_says_it_is_not_durable() -> None:
    store, state, recovery = MemoryStore.open()
    assert not store.durable and DurableStore.durable and recovery.dropped is None
    acc = Acceptor(state)
    store.persist(acc.handle(Prepare(0, WorId(1, Kind.META), (1, 1)))[1].records)
    store.persist_group([acc.handle(Trim(0, 2))[1].records])
    store.compact(acc.state)
    assert len(store.records) == 2
    assert "NOT DURABLE" in (MemoryStore.__doc__ or "")


def _wor_records(n: int, seg: int = 1) -> list[WorRecord]:
    return [WorRecord(WorId(seg, Kind.DATA, off), WorState((1, 1), (1, 1), b"v%d" % off))
            for off in range(n)]


def test_a_group_commit_is_one_log_record_and_replays_as_its_records(tmp_path: Path) -> None:
    """persist_group writes the whole group as one checksummed log record (one msgpack call,
    one checksum); reopening replays every record of it, and a lone record stays a plain one
    (logs written before groups existed read the same)."""
    store, _, _ = DurableStore.open(str(tmp_path))
    recs = _wor_records(40)
    store.persist_group([recs[:25], recs[25:]])
    store.persist([recs[0]])  # one record: written plain
    assert store.kept == 41 and store.log.records == 2
    store.close()
    payloads = _contents(tmp_path / "acceptor.log")
    assert len(payloads) == 2 and payloads[0][0] == "g" and len(payloads[0][1]) == 40
    assert payloads[1][0] == "w"
    store, state, recovery = DurableStore.open(str(tmp_path))
    assert recovery.records == 2 and store.kept == 41
    assert state.wors == {r.wor: r.state for r in recs}
    store.close()


def test_a_torn_group_is_dropped_whole(tmp_path: Path) -> None:
    """A crash in the middle of a group's write loses the whole group, never a part of it: no
    record of it was acknowledged (the fsync had not returned)."""
    store, _, _ = DurableStore.open(str(tmp_path))
    recs = _wor_records(30)
    store.persist_group([recs[:10]])
    store.close()
    path = tmp_path / "acceptor.log"
    good = path.read_bytes()
    blob, count = DurableStore.encode_group(store, [recs[10:]])
    assert count == 20
    path.write_bytes(good + blob[: len(blob) // 2])
    store, state, recovery = DurableStore.open(str(tmp_path))
    assert recovery.dropped is not None and recovery.dropped.torn
    assert set(state.wors) == {r.wor for r in recs[:10]} and store.kept == 10
    store.close()


@pytest.mark.parametrize("group", [[], "x", None])
def test_a_malformed_group_record_is_a_storage_error(tmp_path: Path, group: object) -> None:
    log, _, _ = RecordLog.open(str(tmp_path / "acceptor.log"))
    log.commit([["g", group]])
    log.close()
    with pytest.raises(StorageError, match="record #0: a group record"):
        DurableStore.open(str(tmp_path))


def test_compaction_counts_the_records_inside_groups(tmp_path: Path) -> None:
    """The compaction rule counts acceptor records, not log records: 20 groups of 10
    rewrites of the same 10 WORs are 200 records over 10 live ones."""
    store, state, _ = DurableStore.open(str(tmp_path), compact_after=150)
    acc = Acceptor(state)
    for k in range(1, 21):
        batches = [acc.handle(Accept(0, WorId(1, Kind.DATA, off), (k, 1), b"x"))[1].records
                   for off in range(10)]
        store.persist_group(batches)
        if k == 14:
            assert not store.wants_compaction()  # 140 kept
    assert store.kept == 200 and store.log.records == 20 and store.wants_compaction()
    store.compact(acc.state)
    assert store.kept == store.live == 10 and not store.wants_compaction()
    store.close()


def test_compaction_writes_the_state_unsorted_in_group_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction builds its records straight from the state (``snapshot_plain``: the plain
    form of the unordered snapshot, which replay does not need sorted) and writes them as
    group log records of SNAPSHOT_GROUP: few log records, and the same state on reopening."""
    import wormspace.impl.storage.store as store_mod
    from wormspace.impl.core.records import record_to_plain

    monkeypatch.setattr(store_mod, "SNAPSHOT_GROUP", 16)  # several groups of a small state
    rng = random.Random(11)
    acc = Acceptor()
    for req in random_requests(rng, 3000):
        acc.handle(req)
    state = acc.state
    assert state.trimmed and state.epoch and len(state.wors) > 50
    assert state.snapshot_plain() == [record_to_plain(r) for r in state.snapshot(ordered=False)]
    assert sorted(map(repr, state.snapshot(ordered=False))) == sorted(map(repr, state.snapshot()))
    store, _, _ = DurableStore.open(str(tmp_path))
    store.compact(state)
    assert store.kept == store.live == len(state.snapshot())
    store.close()
    payloads = _contents(tmp_path / "acceptor.log")
    assert len(payloads) > 3 and all(p[0] == "g" and 0 < len(p[1]) <= 16 for p in payloads)
    _, reopened, _ = DurableStore.open(str(tmp_path))
    assert reopened == state

"""WormPaxos and the KV store against a real local cluster: every call, sticky leader,
linearizable reads across replicas, leader failover with hole filling, dueling proposers; and
leader-side batching against in-process servers: batches form under concurrency, a learner
agrees, a preempted or failed batch is retried (or fails) per command, malformed batches are
NO-OPs, ``max_batch=1`` is one entry per command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import msgpack
import pytest
from app_cluster import AppCluster
from inproc_server import ServerThread, make_config
from wormspace.impl.apps.wormpaxos import (
    END,
    MAX_BATCH,
    NOOP,
    KVStore,
    NotLeader,
    WormPaxos,
    _decode,
    decode_commands,
    decode_entry,
    encode_batch,
    encode_command,
    leader_meta,
    leader_of,
)
from wormspace.impl.core import Outcome
from wormspace.impl.net.client import Unavailable, WormSpaceClient
from wormspace.impl.trace import Recorder
from wormspace.refinement_tests.campaign import check_trace

SIZE = 64


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = AppCluster(tmp_path_factory.mktemp("kv"), segment_size=SIZE)
    yield c
    c.down()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _clients(path: str, n: int) -> list[WormSpaceClient]:
    return [WormSpaceClient.from_file(path) for _ in range(n)]


def test_every_kv_call_and_linearizable_reads(cluster):
    async def scenario():
        ca, cb = await _clients(cluster.path, 2)
        a, b = KVStore(ca, "A", base=10), KVStore(cb, "B", base=10)
        assert await b.get("x") is None
        await a.put("x", b"1")
        assert await b.get("x") == b"1"  # another replica sees an acknowledged put at once
        assert await a.cas("x", b"0", b"2") is False
        assert await a.cas("x", b"1", b"2") is True
        assert await a.cas("new", None, b"n") is True  # expected None = absent
        assert await a.delete("new") is True and await a.delete("new") is False
        assert await b.items() == {"x": b"2"}
        assert a.paxos.segment == 10 and leader_of(await ca.check(10)) == "A"
        # Sticky leader: the commands were single writes into A's pre-captured segment.
        assert a.paxos.stats.elections == 1 and a.paxos.next_apply == 10 * SIZE + 6
        for c in (ca, cb):
            await c.close()

    run(scenario())


def test_sticky_leader_extends_its_segment_under_concurrency(cluster):
    async def scenario():
        (ca,) = await _clients(cluster.path, 1)
        # max_batch=1: no batching, every concurrent proposal takes its own address at once.
        a = KVStore(ca, "A", base=20, max_batch=1)
        await asyncio.gather(*(a.put(f"k{i}", b"%d" % i) for i in range(150)))
        assert a.paxos.segment == 22  # 150 commands: three segments, all A's own
        assert a.paxos.stats.elections == 1 and a.paxos.stats.step_downs == 0
        assert a.paxos.stats.batches == 0
        # Every address holds exactly one command, no NO-OP and no END: no slot was wasted.
        vals = [await ca.read(a) for a in range(20 * SIZE, 20 * SIZE + 150)]
        assert sorted(decode_entry(v)[0] for v in vals) == ["cmd"] * 150
        (cb,) = await _clients(cluster.path, 1)
        b = KVStore(cb, "B", base=20)
        assert await b.items() == {f"k{i}": b"%d" % i for i in range(150)}
        await ca.close()
        await cb.close()

    run(scenario())


def test_failover_keeps_chosen_commands_and_fills_holes_with_noop(cluster):
    async def scenario():
        ca, cb = await _clients(cluster.path, 2)
        a, b = KVStore(ca, "A", base=30), KVStore(cb, "B", base=30)
        for i in range(3):
            await a.put(f"a{i}", b"x")
        p = a.paxos
        # A "crashes" mid-pipeline: slots 3 and 5 are written (chosen), 4 never is.
        slots = [await p.reserve_slot() for _ in range(3)]
        for (addr, cap), key in ((slots[0], "s3"), (slots[2], "s5")):
            entry = encode_command((p.proposer, 1000 + addr), msgpack.packb(["put", key, b"c"]))
            assert await ca.write(addr, entry, cap) is Outcome.OK
        hole = slots[1][0]
        # Before the failover a reader stops at the hole: the command after it is not yet
        # acknowledged, so it is not visible (and not lost).
        assert "s5" not in await b.items()
        await b.put("b", b"1")  # B elects itself: takeover of A's segment
        assert b.paxos.segment == 31
        # B had learned up to the hole (s3 included), so it took over from the hole: it kept
        # the command at s5 (chosen) and filled the hole with a NO-OP.
        seg, kept, noops = b.paxos.stats.takeovers[-1]
        assert (seg, kept, noops) == (30, 1, 1)
        assert await cb.read(hole) == NOOP
        assert decode_entry(await cb.read(hole + 1))[0] == "cmd"
        assert decode_entry(await cb.read(hole + 2))[0] == "end"
        state = await b.items()
        assert state == {"a0": b"x", "a1": b"x", "a2": b"x", "s3": b"c", "s5": b"c", "b": b"1"}
        # The deposed leader's next write is preempted; it steps down, re-elects, and its
        # command lands once, after B's.
        await a.put("a-again", b"y")
        assert a.paxos.stats.step_downs == 1 and a.paxos.segment == 32
        assert await b.items() == {**state, "a-again": b"y"}
        assert await a.items() == await b.items()
        for c in (ca, cb):
            await c.close()

    run(scenario())


def test_dueling_proposers_agree_and_apply_each_command_once(cluster):
    async def scenario():
        cs = await _clients(cluster.path, 3)
        stores = [KVStore(c, f"N{i}", base=40, max_attempts=20) for i, c in enumerate(cs)]

        async def worker(i: int) -> None:
            for j in range(8):
                await stores[i].paxos.propose(msgpack.packb(["put", f"n{i}-{j}", b"v"]))

        await asyncio.gather(*(worker(i) for i in range(3)))
        states = [await s.items() for s in stores]
        assert states[0] == states[1] == states[2]
        assert set(states[0]) == {f"n{i}-{j}" for i in range(3) for j in range(8)}
        applied = [s.paxos.stats.applied for s in stores]
        assert applied == [24, 24, 24]  # each command applied exactly once on each replica
        for c in cs:
            await c.close()

    run(scenario())


def test_a_leader_whose_segment_a_later_leader_ended_steps_down(cluster):
    """A wins segment S but stalls before capturing it; B, elected above it, takes S over and
    ends it (END at offset 0). When A captures S, the capture reveals the END: A must not lead
    S (a command after an END is in no one's log, and its proposer would wait forever)."""

    async def scenario():
        ca, cb = await _clients(cluster.path, 2)
        a, b = KVStore(ca, "A", base=300), KVStore(cb, "B", base=300)
        assert await ca.alloc(300, leader_meta("A", a.paxos.proposer))
        await b.put("x", b"1")
        assert b.paxos.segment == 301
        assert decode_entry(await cb.read(300 * SIZE))[0] == "end"
        with pytest.raises(NotLeader):
            await a.paxos._own(300)
        assert a.paxos.segment is None
        await asyncio.wait_for(a.put("y", b"2"), 10)
        assert await b.get("y") == b"2" and await a.get("x") == b"1"
        for c in (ca, cb):
            await c.close()

    run(scenario())


def test_a_fresh_replica_learns_short_terms_in_one_round_trip_each(cluster):
    """Short-lived leaders (one ``wormspace kv put`` each: one command and an END per
    segment): a fresh replica's linearizable get learns each such term in one round trip of
    three WOR reads (the next segment's check rides with the reads), not two round trips and a
    read batch mostly past the END (about 2 and 33 per term before)."""
    terms = 24

    async def scenario():
        for i in range(terms):
            async with WormSpaceClient.from_file(cluster.path) as c:
                await KVStore(c, f"L{i}", base=200).put(f"k{i}", b"%d" % i)
        async with WormSpaceClient.from_file(cluster.path) as c:
            calls, rounds, busy = [0], [0], [0]

            def counted(fn):
                async def wrapper(*args):
                    if busy[0] == 0:
                        rounds[0] += 1  # nothing else outstanding: a new round trip
                    busy[0] += 1
                    calls[0] += 1
                    try:
                        return await fn(*args)
                    finally:
                        busy[0] -= 1
                return wrapper

            c.read, c.check = counted(c.read), counted(c.check)
            kv = KVStore(c, "fresh", base=200)
            assert await kv.get("k0") == b"0"
            assert kv.paxos.next_apply == (200 + terms - 1) * SIZE + 1  # the last term: no END
            assert rounds[0] <= terms + 3, rounds[0]
            assert calls[0] <= 3 * terms + 10, calls[0]
            assert await kv.items() == {f"k{i}": b"%d" % i for i in range(terms)}

    run(scenario())


def test_kv_stores_at_nearby_bases_keep_to_their_own_segments(cluster):
    """Two stores at custom bases 500 and 503: an election's search for the end of A's run
    probes four segments ahead, into B's run. The segments' metadata (app and base) tells B's
    from A's, so A elects itself at 502, not past B's segments (whose takeover would write
    into B's log)."""

    async def scenario():
        for i in range(2):  # two short terms of A: segments 500 and 501
            async with WormSpaceClient.from_file(cluster.path) as c:
                await KVStore(c, f"A{i}", base=500).put(f"a{i}", b"A")
        async with WormSpaceClient.from_file(cluster.path) as c:
            await KVStore(c, "B0", base=503).put("b0", b"B")
        assert leader_of(await c_check(cluster.path, 503)) == "B0"
        async with WormSpaceClient.from_file(cluster.path) as c:
            a = KVStore(c, "A2", base=500)
            await a.put("a2", b"A")
            assert a.paxos.segment == 502
            assert await a.items() == {"a0": b"A", "a1": b"A", "a2": b"A"}
        async with WormSpaceClient.from_file(cluster.path) as c:
            b = KVStore(c, "B1", base=503)
            await b.put("b1", b"B")
            assert b.paxos.segment == 504
            assert await b.items() == {"b0": b"B", "b1": b"B"}

    async def c_check(path: str, segment: int) -> bytes | None:
        async with WormSpaceClient.from_file(path) as c:
            return await c.check(segment)

    run(scenario())


def test_kv_command_line(cluster):
    env = {**os.environ, "WORMSPACE_CLUSTER": cluster.path}

    def ws(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wormspace", "kv", *args, "--base", "50"],
                              capture_output=True, text=True, timeout=60, env=env)

    assert ws("put", "k", "v1").stdout.strip() == "OK"
    assert ws("get", "k").stdout.strip() == "v1"
    r = ws("cas", "k", "nope", "v2")
    assert r.returncode == 1 and "FAILED" in r.stdout
    assert ws("cas", "k", "v1", "v2").returncode == 0
    assert ws("dump").stdout.strip() == "k = v2"
    assert ws("delete", "k").stdout.strip() == "DELETED"
    r = ws("get", "k")
    assert r.returncode == 1 and r.stdout.strip() == "NOT_FOUND"
    r = subprocess.run([sys.executable, "-m", "wormspace", "kv", "get", "k", "--cluster",
                        "/nonexistent/cluster.toml"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "cluster.toml" in r.stderr and "Traceback" not in r.stderr


# -- batching, against in-process servers (memory stores) -------------------------------------------


@pytest.fixture(scope="module")
def inproc(tmp_path_factory):
    cfg = make_config(str(tmp_path_factory.mktemp("kv-inproc")), 3, segment_size=SIZE)
    servers = ServerThread(cfg)
    yield cfg
    servers.close()


def _seq_sm(applied: list[bytes]):
    """A state machine that appends each payload and returns its 1-based position."""
    def apply(payload: bytes) -> int:
        applied.append(payload)
        return len(applied)
    return apply


def _cmds(n: int, tag: str = "c") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


async def _log(client: WormSpaceClient, lo: int, hi: int) -> list[tuple[str, list]]:
    return [decode_commands(await client.read(x)) for x in range(lo, hi)]


def test_concurrent_proposals_form_batches_and_a_learner_agrees(inproc):
    async def scenario():
        ca, cb = WormSpaceClient(inproc), WormSpaceClient(inproc)
        la: list[bytes] = []
        lb: list[bytes] = []
        events: list[dict] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=2, recorder=Recorder("A", events))  # defaults
        cmds = _cmds(200)
        results = await asyncio.gather(*(a.propose(c) for c in cmds))
        # Every proposer got the result of its own command: its position in the applied order.
        assert [la[r - 1] for r in results] == cmds
        assert sorted(la) == sorted(cmds) and a.stats.applied == 200
        assert a.stats.duplicates == 0 and a.stats.step_downs == 0
        # Batches formed: far fewer log entries than commands.
        entries = a.next_apply - 2 * SIZE
        assert a.stats.batches > 0 and a.stats.batched_commands > a.stats.batches
        assert entries == 200 - a.stats.batched_commands + a.stats.batches < 50
        log = await _log(ca, 2 * SIZE, a.next_apply)
        assert {k for k, _ in log} == {"cmd", "batch"}
        assert [payload for _, cs in log for _, payload in cs] == la  # in log order
        # One apply event per command, ordered by (address, pos); pos > 0 inside batches.
        ap = [(e["index"], e["pos"]) for e in events if e["kind"] == "apply"]
        assert len(ap) == 200 and ap == sorted(set(ap)) and max(p for _, p in ap) > 0
        for e in events:
            if e["kind"] == "apply":
                assert decode_entry(bytes.fromhex(e["value"]))[0] == "cmd"
        # A replica that only learns reads the batches and reaches the same state.
        b = WormPaxos(cb, "B", _seq_sm(lb), base=2, recorder=Recorder("B", events))
        assert await b.sync() == a.next_apply
        assert lb == la and b.stats.applied == 200 and b.stats.duplicates == 0
        # The refinement check orders the applies by (address, pos): the SMR contract holds.
        assert check_trace(events, "wormpaxos", servers=3, segment_size=SIZE) == []
        for c in (ca, cb):
            await c.close()

    run(scenario())


def test_a_command_that_is_not_bytes_is_refused_at_once(inproc):
    """The leader applies its own entries from the proposals it encoded (not decoded again),
    which is exact only because a command is bytes: anything else would decode as a NO-OP on
    every other replica. So propose refuses it before anything is written."""
    async def scenario():
        ca = WormSpaceClient(inproc)
        applied: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(applied), base=14)
        for bad in ("text", bytearray(b"x"), None):
            with pytest.raises(TypeError, match="a command is bytes"):
                a.propose(bad)  # type: ignore[arg-type]
        assert await a.propose(b"ok") == 1 and applied == [b"ok"]
        await ca.close()

    run(scenario())


def test_max_batch_1_is_one_entry_per_command(inproc):
    async def scenario():
        ca = WormSpaceClient(inproc)
        la: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=10, max_batch=1)
        cmds = _cmds(100)
        results = await asyncio.gather(*(a.propose(c) for c in cmds))
        assert [la[r - 1] for r in results] == cmds
        assert a.stats.batches == 0 and a.next_apply - 10 * SIZE == 100  # segments 10 and 11
        assert [k for k, _ in await _log(ca, 10 * SIZE, a.next_apply)] == ["cmd"] * 100
        await ca.close()

    run(scenario())


def test_preempted_batch_is_retried_and_each_command_applied_once(inproc):
    """A rival takes over after A sent a batch to the next slot, before it lands: A's write is
    PREEMPTED (the rival's takeover ENDs the segment there), A steps down, and every command of
    the batch is retried and applied once."""
    async def scenario():
        ca, cb, cc = (WormSpaceClient(inproc) for _ in range(3))
        la: list[bytes] = []
        lb: list[bytes] = []
        lc: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=20, max_inflight=1)
        b = WormPaxos(cb, "B", _seq_sm(lb), base=20)
        real_write = ca.write
        seen: list[tuple[int, Outcome]] = []

        async def write(address, value, cid=None):
            if not seen and decode_commands(value)[0] == "batch":
                assert await b.elect()  # B's takeover captures A's unlearned addresses
                out = await real_write(address, value, cid)
                seen.append((address, out))
                return out
            return await real_write(address, value, cid)

        ca.write = write
        cmds = _cmds(20)
        results = await asyncio.gather(*(a.propose(c) for c in cmds))
        assert seen and seen[0][1] is Outcome.PREEMPTED
        assert await cc.read(seen[0][0]) == END  # B ended A's segment at the batch's address
        assert a.stats.step_downs == 1 and a.stats.elections == 2
        assert [la[r - 1] for r in results] == cmds
        assert sorted(la) == sorted(cmds) and a.stats.applied == 20
        c = WormPaxos(cc, "C", _seq_sm(lc), base=20)
        await c.sync()
        await b.sync()
        assert lc == lb == la
        for cl in (ca, cb, cc):
            await cl.close()

    run(scenario())


@pytest.mark.parametrize("base, kept", [(30, 100_000), (34, 1)])
def test_batch_kept_by_a_takeover_is_applied_once_though_its_proposers_retry(inproc, base, kept):
    """A's batch is chosen, but a rival's takeover (which finds a hole below it) preempts A
    before A hears back: the rival keeps the batch verbatim and fills the hole; A's proposers
    see NotLeader and retry, so a command is in the log twice (batch and retry), yet every
    replica applies each command once and every proposer gets its first result. With
    ``results_kept=1`` every replica forgets results as soon as a watermark allows: the retry
    comes after the batch in the log, but before any watermark that covers it."""
    async def scenario():
        ca, cb, cc = (WormSpaceClient(inproc) for _ in range(3))
        la: list[bytes] = []
        lb: list[bytes] = []
        lc: list[bytes] = []
        events: list[dict] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=base, max_inflight=2, results_kept=kept,
                      recorder=Recorder("A", events))
        b = WormPaxos(cb, "B", _seq_sm(lb), base=base, results_kept=kept,
                      recorder=Recorder("B", events))
        real_write = ca.write
        release = asyncio.Event()
        batch_at: list[tuple[int, bytes]] = []

        async def write(address, value, cid=None):
            kind = decode_commands(value)[0]
            if address == base * SIZE:  # A's first slot: held back, a hole for the rival
                await release.wait()
            elif kind == "batch" and not batch_at:
                out = await real_write(address, value, cid)
                assert out is Outcome.OK  # chosen
                batch_at.append((address, value))
                assert await b.elect()  # B captures from the hole: reveals our values
                return Outcome.PREEMPTED  # as if B's capture overtook our accept
            elif batch_at:
                release.set()  # A writes again: it has retried; let the held write go
            return await real_write(address, value, cid)

        ca.write = write
        cmds = _cmds(20)
        results = await asyncio.gather(*(a.propose(c) for c in cmds))
        addr, value = batch_at[0]
        assert addr == base * SIZE + 2 and await cc.read(addr) == value  # kept verbatim
        assert b.stats.takeovers == [(base, 2, 1)] and await cc.read(base * SIZE) == NOOP
        assert [la[r - 1] for r in results] == cmds
        assert sorted(la) == sorted(cmds) and a.stats.applied == 20
        c = WormPaxos(cc, "C", _seq_sm(lc), base=base, results_kept=kept,
                      recorder=Recorder("C", events))
        await c.sync()
        await b.sync()
        assert lc == lb == la and b.stats.applied == c.stats.applied == 20
        assert c.stats.duplicates >= 1  # a retried command of the batch is in the log again
        assert check_trace(events, "wormpaxos", servers=3, segment_size=SIZE) == []
        for cl in (ca, cb, cc):
            await cl.close()

    run(scenario())


def test_failed_batch_write_fails_each_of_its_commands(inproc):
    async def scenario():
        ca = WormSpaceClient(inproc)
        la: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=40, max_inflight=1)
        real_write = ca.write
        failed: list[list] = []

        async def write(address, value, cid=None):
            kind, commands = decode_commands(value)
            if kind == "batch" and not failed:
                failed.append([pid for pid, _ in commands])
                raise Unavailable("injected")
            return await real_write(address, value, cid)

        ca.write = write
        cmds = _cmds(20)
        results = await asyncio.gather(*(a.propose(c) for c in cmds), return_exceptions=True)
        bad = [i + 1 for i, r in enumerate(results) if isinstance(r, Unavailable)]
        assert bad and [(a.proposer, i) for i in bad] == failed[0]
        assert a.stats.step_downs == 1
        ok = [c for c, r in zip(cmds, results) if not isinstance(r, BaseException)]
        assert len(ok) + len(bad) == 20 and sorted(la) == sorted(ok)
        await ca.close()

    run(scenario())


def test_learner_applies_batch_entries_in_order_once_and_malformed_ones_as_noop(inproc):
    async def scenario():
        cw, cl = WormSpaceClient(inproc), WormSpaceClient(inproc)
        assert await cw.alloc(50, b"writer")
        a, b, c, d = (((9, i), f"x{i}".encode()) for i in range(1, 5))
        bad = msgpack.packb(["batch", [[9, 3, b"x3"], [9, "four", b"x4"]]])
        entries = [encode_batch([a, b]), encode_command(*a), bad, encode_batch([c, b, d]), END]
        for i, v in enumerate(entries):
            assert await cw.write(50 * SIZE + i, v) is Outcome.OK
        applied: list[bytes] = []
        events: list[dict] = []
        learner = WormPaxos(cl, "L", _seq_sm(applied), base=50, recorder=Recorder("L", events))
        await learner.sync()
        assert applied == [b"x1", b"x2", b"x3", b"x4"]
        assert learner.stats.applied == 4 and learner.stats.duplicates == 2
        s = 50 * SIZE
        assert [(e["index"], e["pos"]) for e in events if e["kind"] == "apply"] == [
            (s, 0), (s, 1), (s + 3, 0), (s + 3, 2)]
        for cl_ in (cw, cl):
            await cl_.close()

    run(scenario())


@pytest.mark.parametrize("entry", [
    ["batch"], ["batch", []], ["batch", [[1, 2]]], ["batch", [[1, 2, "text"]]],
    ["batch", [[1, True, b"x"]]], ["batch", [[1, 2, b"x"], [1, 2.0, b"y"]]],
    ["batch", [[1, 2, b"x"]], "extra"], ["batch", {"a": [1, 2, b"x"]}],
    ["batch", [1, 2, b"x"]], ["BATCH", [[1, 2, b"x"]]], ["batch", [[1, 2, b"x", b"y"]]],
    ["batch", [[1, 2, b"x"]] * (MAX_BATCH + 1)],
])
def test_malformed_batch_entries_decode_as_noop(entry):
    value = msgpack.packb(entry)
    assert decode_commands(value) == ("noop", [])
    assert decode_entry(value) == ("noop", None, None)


def test_entries_with_a_watermark_round_trip_and_a_bad_one_is_a_noop():
    """A proposer's entries carry its watermark (its seqs below it never come again); old
    entries without one still decode; a malformed one makes the entry a NO-OP everywhere."""
    cmds = [((7, i), b"p%d" % i) for i in range(3, 6)]
    assert _decode(encode_batch(cmds, (7, 3))) == ("batch", cmds, (7, 3))
    assert _decode(encode_batch(cmds)) == ("batch", cmds, None)
    assert _decode(encode_command((7, 5), b"p", 2)) == ("cmd", [((7, 5), b"p")], (7, 2))
    assert _decode(encode_command((7, 5), b"p")) == ("cmd", [((7, 5), b"p")], None)
    assert decode_entry(encode_command((7, 5), b"p", 5)) == ("cmd", (7, 5), b"p")
    for bad in (6, -1, "2", 2.0, None, True):
        assert decode_commands(msgpack.packb(["cmd", 7, 5, b"p", bad])) == ("noop", [])
    raw = [[7, 1, b"x"]]
    for bad in ([7], [7, -1], ["7", 2], [7, 2, 3], 5, None):
        assert decode_commands(msgpack.packb(["batch", raw, bad])) == ("noop", [])


def test_the_results_table_keeps_only_what_a_retry_may_still_ask_for(inproc):
    """Results are kept to answer a retried command once; each entry's watermark says which
    of its proposer's commands can never come again, and those go once the table passes
    results_kept: the leader's and a learner's tables stay small, and every command is
    still applied once."""
    async def scenario():
        ca, cb = WormSpaceClient(inproc), WormSpaceClient(inproc)
        la: list[bytes] = []
        lb: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=16, results_kept=40)
        for r in range(12):
            cmds = _cmds(30, f"r{r}-")
            results = await asyncio.gather(*(a.propose(c) for c in cmds))
            assert [la[x - 1] for x in results] == cmds
        assert a.stats.applied == 360 and a.stats.duplicates == 0
        assert len(a._results) <= 80 and a._low[a.proposer] > 300
        b = WormPaxos(cb, "B", _seq_sm(lb), base=16, results_kept=40)
        await b.sync()
        assert lb == la and len(b._results) <= 80
        for c in (ca, cb):
            await c.close()

    run(scenario())


def test_a_proposal_whose_proposer_left_while_waiting_for_a_slot_is_not_written(inproc):
    """A batch waits for its slot (an election, say) while its proposer is cancelled: the
    command is left out when the slot comes (a later entry's watermark may already have said
    it never comes again), and the slot is filled with a NO-OP."""
    async def scenario():
        ca = WormSpaceClient(inproc)
        applied: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(applied), base=18, max_inflight=1)
        assert await a.propose(b"first") == 1  # elected; the segment is captured
        gate, calls = asyncio.Event(), [0]
        take = a._take_slot

        async def slow_second_slot():
            calls[0] += 1
            if calls[0] == 2:
                await gate.wait()
            return await take()

        a._take_slot = slow_second_slot  # type: ignore[method-assign]
        keep = asyncio.ensure_future(a.propose(b"keep"))  # the one write in flight
        drop = asyncio.ensure_future(a.propose(b"drop"))  # queued: goes out after "keep"
        assert await keep == 2
        await asyncio.sleep(0.05)  # "drop"'s batch now waits for its slot
        drop.cancel()
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.sleep(0.1)
        hole = 18 * SIZE + 2
        assert decode_commands(await ca.read(hole)) == ("noop", [])
        assert await a.propose(b"after") == 3 and applied == [b"first", b"keep", b"after"]
        await ca.close()

    run(scenario())


def test_batch_entry_round_trip_and_limits():
    cmds = [((1, i), b"p%d" % i) for i in range(3)]
    assert decode_commands(encode_batch(cmds)) == ("batch", cmds)
    assert decode_entry(encode_batch(cmds)) == ("batch", None, None)
    assert decode_commands(encode_batch(cmds)[:-1]) == ("noop", [])  # truncated
    big = [((1, 1), b"")] * MAX_BATCH
    assert decode_commands(encode_batch(big))[0] == "batch"  # exactly MAX_BATCH is fine
    assert decode_commands(encode_command((1, 2), b"p")) == ("cmd", [((1, 2), b"p")])
    assert decode_commands(NOOP) == ("noop", []) and decode_commands(END) == ("end", [])

    class FakeClient:
        client_id, rec = 1, Recorder("x", None)

        class space:
            size = SIZE

    for bad in (0, MAX_BATCH + 1):
        with pytest.raises(ValueError, match="max_batch"):
            WormPaxos(FakeClient(), "A", lambda p: None, max_batch=bad)


def test_already_written_but_empty_read_retries_instead_of_hanging(inproc):
    """A write answering ALREADY_WRITTEN whose read then says EMPTY (impossible for a correct
    cluster, injected here) must not leave its proposers waiting: they retry and complete."""
    from wormspace.impl.core.ops import Outcome

    async def scenario():
        ca = WormSpaceClient(inproc)
        la: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=60, max_batch=1)
        real_write, real_read = ca.write, ca.read
        injected: list[int] = []

        async def write(address, value, cid=None):
            if not injected:
                injected.append(address)
                return Outcome.ALREADY_WRITTEN
            return await real_write(address, value, cid)

        async def read(address):
            return None if address in injected else await real_read(address)

        ca.write, ca.read = write, read
        result = await asyncio.wait_for(a.propose(b"x"), 10)
        assert la == [b"x"] and result == 1 and a.stats.step_downs == 1
        await ca.close()

    run(scenario())


def test_an_old_terms_preempted_write_does_not_depose_the_new_term(inproc):
    """A write of term 1 answering PREEMPTED after the replica was elected again (here its own
    takeover captured that slot) must not depose term 2: its proposals retry in term 2."""
    from wormspace.impl.core.ops import Outcome

    async def scenario():
        ca = WormSpaceClient(inproc)
        la: list[bytes] = []
        a = WormPaxos(ca, "A", _seq_sm(la), base=70, max_batch=1)
        await a.propose(b"first")  # term 1
        real_write = ca.write
        gate = asyncio.Event()
        held: list[int] = []

        async def write(address, value, cid=None):
            if not held:
                held.append(address)
                await gate.wait()
                return Outcome.PREEMPTED
            return await real_write(address, value, cid)

        ca.write = write
        old = asyncio.ensure_future(a.propose(b"old"))
        while not held:
            await asyncio.sleep(0.005)
        a._step_down("forced: as after another write's failure")
        await asyncio.wait_for(a.propose(b"new"), 10)  # term 2 (takes over term 1's slots)
        assert a.is_leader and a.stats.step_downs == 1
        gate.set()  # term 1's write answers PREEMPTED now
        await asyncio.wait_for(old, 10)
        assert a.is_leader and a.stats.step_downs == 1 and a.stats.elections == 2
        assert la == [b"first", b"new", b"old"]
        await ca.close()

    run(scenario())

"""WormLog and its sequencer against a real local cluster: every call, concurrent appenders,
fill vs a chosen value, trim, a sequencer process killed and replaced, client fallback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from app_cluster import AppCluster
from wormspace.impl.apps.sequencer import JUNK, Sequencer, SequencerServer, TermMeta
from wormspace.impl.apps.wormlog import EntryStatus, NoSequencer, WormLog
from wormspace.impl.core import Outcome
from wormspace.impl.net.client import WormSpaceClient
from wormspace.impl.net.segments import BadAddress

SIZE = 64


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = AppCluster(tmp_path_factory.mktemp("log"), segment_size=SIZE)
    yield c
    c.down()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _sequencer(path: str, name: str, base: int) -> tuple[SequencerServer, Sequencer,
                                                               WormSpaceClient]:
    c = WormSpaceClient.from_file(path)
    seq = Sequencer(c, name, base=base)
    srv = SequencerServer(seq, c.key)
    h, p = await srv.listen("127.0.0.1", 0)
    seq.address = f"{h}:{p}"
    await seq.start()
    return srv, seq, c


def test_every_call_and_concurrent_appenders(cluster):
    async def scenario():
        srv, seq, cs = await _sequencer(cluster.path, "seq-1", 100)
        c1, c2 = WormSpaceClient.from_file(cluster.path), WormSpaceClient.from_file(cluster.path)
        l1, l2 = WormLog(c1, base=100), WormLog(c2, base=100)
        # Two appenders, concurrently, across segment boundaries (pre-allocation kicks in).
        got = await asyncio.gather(*(lg.append(b"%d-%d" % (k, i)) for i in range(60)
                                     for k, lg in enumerate((l1, l2))))
        assert len(set(got)) == 120  # never the same address twice
        for a, (k, i) in zip(got, [(k, i) for i in range(60) for k in range(2)]):
            assert await l2.read(a) == await l1.read(a)
            e = await l1.read(a)
            assert e.status is EntryStatus.DATA and e.value == b"%d-%d" % (k, i)
        tail = await l1.check_tail()
        assert tail == max(got) + 1 and tail == seq.tail()
        assert (await l1.read(tail)).status is EntryStatus.EMPTY
        assert (await l1.read(10**9 * SIZE)).status is EntryStatus.EMPTY  # beyond the log
        with pytest.raises(BadAddress):
            await l1.read(5)  # below the log's region
        # fill: a hole becomes JUNK; a chosen value survives a fill.
        (hole, _cap), = await seq.grant(1)
        assert (await l2.fill(hole)).status is EntryStatus.JUNK
        assert await c2.read(hole) == JUNK
        e = await l2.fill(got[0])
        assert e.status is EntryStatus.DATA and e.value == b"0-0"
        # trim: whole segments below the prefix; the rest stays readable.
        with pytest.raises(BadAddress):
            await l1.trim(tail + SIZE * 10)
        segs = await l1.trim(101 * SIZE)
        assert segs == [100]
        assert (await l1.read(got[0])).status is EntryStatus.TRIMMED
        assert (await l1.read(101 * SIZE + 5)).status is EntryStatus.DATA
        assert await l1.trim(101 * SIZE) == [100]  # idempotent
        assert (await l2.read(got[0])).status is EntryStatus.TRIMMED
        for lg in (l1, l2):
            await lg.close()
        await srv.close()
        for c in (cs, c1, c2):
            await c.close()

    run(scenario())


def test_sequencer_failover_fills_the_dead_sequencers_segment(cluster):
    async def scenario():
        srv, seq, cs = await _sequencer(cluster.path, "seq-1", 200)
        c1 = WormSpaceClient.from_file(cluster.path)
        l1 = WormLog(c1, base=200)
        first = [await l1.append(b"a%d" % i) for i in range(5)]
        stale = await seq.grant(3)  # handed out, never written (their clients died)
        await srv.close()  # the sequencer dies
        srv2, seq2, cs2 = await _sequencer(cluster.path, "seq-2", 200)
        assert seq2.term is not None and seq2.term.start == 201 and seq2.took_over == [200]
        assert seq2.kept == 6  # seq-1's MARK and the 5 appends: chosen values survive
        # The old sequencer's unused addresses are JUNK now; its capture ids are preempted.
        assert [await c1.read(a) for a, _ in stale] == [JUNK] * 3
        assert await c1.write(stale[0][0], b"\x01late", stale[0][1]) is not None
        assert (await l1.read(stale[0][0])).status is EntryStatus.JUNK
        # The client rediscovers the new sequencer from the metadata and appends after it.
        a = await l1.append(b"after")
        assert a > max(first) and a // SIZE == 201 and l1.fallbacks == 0
        assert [(await l1.read(x)).value for x in first] == [b"a%d" % i for i in range(5)]
        assert TermMeta.decode(await c1.check(201)).seq == "seq-2"
        # A second failover: seq-2 filled its takeover (MARK written), so seq-3 takes over
        # only seq-2's own term.
        await srv2.close()
        srv3, seq3, cs3 = await _sequencer(cluster.path, "seq-3", 200)
        assert seq3.took_over == [201]
        await l1.close()
        await srv3.close()
        for c in (cs, cs2, cs3, c1):
            await c.close()

    run(scenario())


def test_a_sequencer_whose_segment_was_taken_over_before_it_captured_starts_again_above(
        cluster, monkeypatch):
    """s1 allocates its segment, then stalls before capturing it; s2 starts meanwhile (above
    it) and fills s1's segment with JUNK. s1 must not hand out those JUNK offsets (every append
    through it would fail): it starts again above s2, which it deposes."""
    from wormspace.impl.apps import sequencer as seqmod

    async def scenario():
        c1, c2 = WormSpaceClient.from_file(cluster.path), WormSpaceClient.from_file(cluster.path)
        s1, s2 = Sequencer(c1, "s1", base=600), Sequencer(c2, "s2", base=600)
        go = asyncio.Event()
        capture = seqmod.capture_offsets

        async def stalled(client, seg, lo, hi):
            if client is c1:
                await go.wait()
            return await capture(client, seg, lo, hi)

        monkeypatch.setattr(seqmod, "capture_offsets", stalled)
        t1 = asyncio.ensure_future(s1.start())
        while not await c1.check(600):
            await asyncio.sleep(0.01)
        assert (await s2.start()).start == 601 and s2.took_over == [600]
        go.set()
        term = await t1
        assert term.start == 602 and s1.took_over == [601]
        assert await c1.read(600 * SIZE + 1) == JUNK
        (address, cap), = await s1.grant(1)
        assert address // SIZE == 602 and cap.adopted is None
        assert await c1.write(address, b"\x01data", cap) is Outcome.OK
        assert await s2.stale(-1) is True  # s2 learns it was deposed
        for c in (c1, c2):
            await c.close()

    run(scenario())


def test_a_sequencer_whose_next_segment_was_taken_over_before_it_captured_is_deposed(
        cluster, monkeypatch):
    """s1 allocates its next segment in the background, then stalls before capturing it; s2
    starts meanwhile and fills both of s1's segments. s1's capture reveals JUNK: it is deposed
    at once instead of queueing JUNK offsets to hand out."""
    from wormspace.impl.apps import sequencer as seqmod

    async def scenario():
        c1, c2 = WormSpaceClient.from_file(cluster.path), WormSpaceClient.from_file(cluster.path)
        s1, s2 = Sequencer(c1, "s1", base=700), Sequencer(c2, "s2", base=700)
        assert (await s1.start()).start == 700
        go, stall = asyncio.Event(), [True]
        capture = seqmod.capture_offsets

        async def stalled(client, seg, lo, hi):
            if client is c1 and stall[0]:
                await go.wait()
            return await capture(client, seg, lo, hi)

        monkeypatch.setattr(seqmod, "capture_offsets", stalled)
        await s1.grant(SIZE - 10)  # less than a quarter left: s1 prepares segment 701
        while not await c1.check(701):
            await asyncio.sleep(0.01)
        assert (await s2.start()).start == 702 and s2.took_over == [700, 701]
        go.set()
        while s1._preparing is not None:
            await asyncio.sleep(0.01)
        assert s1.deposed is True and [seg for seg, _ in s1._segs] == [700]
        for c in (c1, c2):
            await c.close()

    run(scenario())


def test_client_falls_back_when_no_sequencer_answers(cluster):
    async def scenario():
        srv, _seq, cs = await _sequencer(cluster.path, "seq-1", 300)
        await srv.close()
        c1, c2 = WormSpaceClient.from_file(cluster.path), WormSpaceClient.from_file(cluster.path)
        strict = WormLog(c2, base=300, fallback=False, timeout=0.3)
        with pytest.raises(NoSequencer):
            await strict.append(b"x")
        l1 = WormLog(c1, base=300, timeout=0.3)
        a = await l1.append(b"via-fallback")
        assert l1.fallbacks == 1 and a // SIZE == 301
        assert (await strict.read(a)).value == b"via-fallback"
        await l1.close()
        await strict.close()
        for c in (cs, c1, c2):
            await c.close()

    run(scenario())


def test_log_command_line_with_a_sequencer_process(cluster):
    env = {**os.environ, "WORMSPACE_CLUSTER": cluster.path}
    ws = [sys.executable, "-m", "wormspace", "log"]
    proc = subprocess.Popen([*ws, "sequencer", "--listen", "127.0.0.1:0", "--id", "cli-seq",
                             "--base", "400"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "listening on 127.0.0.1:" in line and "segment 400" in line

        def log(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*ws, *args, "--base", "400", "--no-fallback"],
                                  capture_output=True, text=True, timeout=60, env=env)

        r = log("append", "one", "two")
        assert r.returncode == 0, r.stderr
        a1, a2 = map(int, r.stdout.split())
        assert a2 == a1 + 1
        assert log("read", str(a1), "--to", str(a2 + 2)).stdout.splitlines() == [
            f"{a1} DATA one", f"{a2} DATA two", f"{a2 + 1} EMPTY"]  # [ADDRESS, END)
        assert log("tail").stdout.strip() == str(a2 + 1)
        assert log("fill", str(a1)).stdout.startswith("DATA one")
        assert log("fill", str(a2 + 1)).stdout.strip() == "JUNK"
        assert log("trim", str(400 * SIZE)).stdout.strip() == "TRIMMED 0 segment(s)"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

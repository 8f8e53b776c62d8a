"""WormPaxos and the KV store against a real local cluster: every call, sticky leader,
linearizable reads across replicas, leader failover with hole filling, dueling proposers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import msgpack
import pytest
from app_cluster import AppCluster
from wormspace.impl.apps.wormpaxos import NOOP, KVStore, decode_entry, encode_command, leader_of
from wormspace.impl.core import Outcome
from wormspace.impl.net.client import WormSpaceClient

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
        a = KVStore(ca, "A", base=20)
        await asyncio.gather(*(a.put(f"k{i}", b"%d" % i) for i in range(150)))
        assert a.paxos.segment == 22  # 150 commands: three segments, all A's own
        assert a.paxos.stats.elections == 1 and a.paxos.stats.step_downs == 0
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
        slots = [await p._take_slot() for _ in range(3)]
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

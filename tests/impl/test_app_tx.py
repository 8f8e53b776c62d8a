"""WormTX against a real local cluster: commit, abort, no-wait locking with restart, a stalled
RM resolved by a NO write (E3 and A8), a chosen YES never overturned, WAL recovery of an
in-doubt RM, and the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from app_cluster import AppCluster
from wormspace.impl.apps.wormtx import (
    ABORT,
    COMMIT,
    NO_EXPECT,
    NO_LOCKED,
    NO_TIMEOUT,
    YES,
    Ops,
    ResourceManager,
    TxError,
    TxInfo,
    WormTX,
    force_vote,
)
from wormspace.impl.net.client import WormSpaceClient

SIZE = 64


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = AppCluster(tmp_path_factory.mktemp("tx"), segment_size=SIZE)
    yield c
    c.down()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class System:
    """Three RMs, each with its own client and WAL, and a TM client."""

    def __init__(self, path: str, wal: str, base: int, names=("a", "b", "c")) -> None:
        self.clients = [WormSpaceClient.from_file(path) for _ in range(len(names) + 1)]
        self.rms = {n: ResourceManager(n, c, os.path.join(wal, n), vote_timeout=0.3)
                    for n, c in zip(names, self.clients)}
        self.tx = WormTX(self.clients[-1], self.rms, base=base, vote_timeout=0.3)

    async def close(self) -> None:
        for rm in self.rms.values():
            rm.close()
        for c in self.clients:
            await c.close()


def assert_atomic(result, rms) -> None:
    """No RM commits while another aborts, and the outcome follows from the chosen votes."""
    assert set(result.outcomes.values()) == {result.decision}
    if result.decision == COMMIT:
        assert all(v == YES for v in result.votes.values())
    for name in result.outcomes:
        assert rms[name].outcomes[result.tx] == result.decision
        assert not any(t == result.tx for t in rms[name].locks.values())  # locks released


@pytest.mark.parametrize("variant", ["e3", "a8"])
def test_commit_and_abort(cluster, tmp_path, variant):
    async def scenario():
        s = System(cluster.path, str(tmp_path), base=100 if variant == "e3" else 200)
        r = await s.tx.run({"a": Ops({"x": b"1"}), "b": Ops({"y": b"2"}),
                            "c": Ops({"z": b"3"})}, variant=variant)
        assert r.decision == COMMIT and r.votes == {"a": YES, "b": YES, "c": YES}
        assert_atomic(r, s.rms)
        assert [s.rms[n].store for n in "abc"] == [{"x": b"1"}, {"y": b"2"}, {"z": b"3"}]
        meta = TxInfo.decode(r.tx, await s.clients[0].check(r.tx))
        assert meta == TxInfo(r.tx, ("a", "b", "c"), variant)
        r2 = await s.tx.run({"a": Ops({"x": b"9"}), "b": Ops({"y": b"9"}, {"y": b"wrong"})},
                            variant=variant)
        assert r2.decision == ABORT and r2.votes["b"] == NO_EXPECT and r2.attempts == 1
        assert_atomic(r2, s.rms)
        assert s.rms["a"].store == {"x": b"1"}  # a voted YES but did not apply
        assert s.rms["a"].fsyncs == 4  # (prepare, commit) + (prepare, abort)
        assert s.rms["b"].fsyncs == 2  # a NO vote writes nothing to the WAL (presumed abort)
        await s.close()

    run(scenario())


@pytest.mark.parametrize("variant", ["e3", "a8"])
def test_stalled_rm_is_resolved_by_a_no_write(cluster, tmp_path, variant):
    async def scenario():
        s = System(cluster.path, str(tmp_path), base=300 if variant == "e3" else 400)
        s.rms["c"].stall = 1.0  # c prepares (locks, WAL) and then stalls before voting
        r = await s.tx.run({"a": Ops({"x": b"1"}), "b": Ops({"y": b"1"}),
                            "c": Ops({"z": b"1"})}, variant=variant)
        assert r.decision == ABORT and r.forced == ["c"] and r.votes["c"] == NO_TIMEOUT
        assert r.votes["a"] == YES and r.votes["b"] == YES
        assert_atomic(r, s.rms)  # c woke up, was preempted, read NO and aborted too
        assert s.rms["c"].store == {} and s.rms["c"].locks == {}
        s.rms["c"].stall = 0.0
        r = await s.tx.run({"a": Ops({"x": b"2"}), "c": Ops({"z": b"2"})}, variant=variant)
        assert r.decision == COMMIT and s.rms["c"].store == {"z": b"2"}
        await s.close()

    run(scenario())


def test_a_chosen_yes_is_never_overturned(cluster, tmp_path):
    async def scenario():
        s = System(cluster.path, str(tmp_path), base=500)
        c = s.clients[0]
        info = await s.tx.begin(["a", "b"], "e3", c)
        caps = await c.capture_range(info.tx, 0, 2)
        vote = await s.rms["a"].prepare(info, Ops({"x": b"1"}), caps[0])
        assert vote == YES
        # b's peer times out on a (wrongly: a already voted) and tries to force NO.
        chosen, ours = await force_vote(s.clients[1], c.space.address(info.tx, 0))
        assert (chosen, ours) == (YES, False)
        assert await c.read(c.space.address(info.tx, 0)) == YES
        await s.close()

    run(scenario())


def test_no_wait_locking_restarts_and_never_deadlocks(cluster, tmp_path):
    async def scenario():
        s = System(cluster.path, str(tmp_path), base=600, names=("a", "b"))
        # Opposite lock orders, run concurrently many times: classic deadlock bait.
        jobs = []
        for i in range(6):
            jobs.append(s.tx.run({"a": Ops({"k": b"%d" % i}), "b": Ops({"k": b"%d" % i})},
                                 variant="e3", initiator="a"))
            jobs.append(s.tx.run({"b": Ops({"k": b"x%d" % i}), "a": Ops({"k": b"x%d" % i})},
                                 variant="e3", initiator="b"))
        results = await asyncio.gather(*jobs)
        for r in results:
            assert_atomic(r, s.rms)
            assert r.decision == COMMIT or all(v in (YES, NO_LOCKED, b"")
                                               for v in r.votes.values())
        assert sum(r.decision == COMMIT for r in results) >= 1
        assert sum(r.attempts for r in results) >= len(results)
        # Both RMs applied the same committed transactions, in the same final state.
        assert s.rms["a"].store == s.rms["b"].store
        assert s.rms["a"].locks == {} and s.rms["b"].locks == {}
        await s.close()

    run(scenario())


def test_wal_recovery_resolves_an_in_doubt_rm(cluster, tmp_path):
    async def scenario():
        s = System(cluster.path, str(tmp_path), base=700, names=("a", "b"))
        c = s.clients[0]
        info = await s.tx.begin(["a", "b"], "e3", c)
        caps = await c.capture_range(info.tx, 0, 2)
        assert await s.rms["a"].prepare(info, Ops({"x": b"1"}), caps[0]) == YES
        assert await s.rms["b"].prepare(info, Ops({"y": b"1"}), caps[1]) == YES
        # Both "crash" before learning the decision: reopen a from its WAL.
        s.rms["a"].close()
        a2 = ResourceManager("a", s.clients[0], str(tmp_path / "a"))
        assert info.tx in a2.prepared and a2.locks == {"x": info.tx}
        assert await a2.recover() == {info.tx: COMMIT}
        assert a2.store == {"x": b"1"} and a2.locks == {}
        a2.close()
        a3 = ResourceManager("a", s.clients[0], str(tmp_path / "a"))  # outcome is in the WAL
        assert a3.store == {"x": b"1"} and a3.prepared == {}
        a3.close()
        with pytest.raises(TxError):
            await s.tx.run({"nobody": Ops({"k": b"v"})})
        s.rms.pop("a")
        await s.close()

    run(scenario())


def test_tx_command_line(cluster, tmp_path):
    env = {**os.environ, "WORMSPACE_CLUSTER": cluster.path}
    wal = str(tmp_path / "wal")

    def tx(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wormspace", "tx", *args, "--wal", wal,
                               "--base", "800"], capture_output=True, text=True, timeout=60,
                              env=env)

    r = tx("run", "--set", "bank:alice=90", "--set", "shop:order=1")
    assert r.returncode == 0, r.stderr
    assert "COMMIT" in r.stdout.splitlines()[0]
    r = tx("run", "--set", "bank:alice=80", "--expect", "bank:alice=100", "--set",
           "shop:order=2", "--variant", "a8")
    assert r.returncode == 1 and "ABORT" in r.stdout
    r = tx("run", "--set", "bank:alice=70", "--set", "shop:order=3", "--stall", "shop",
           "--vote-timeout", "0.2")
    assert r.returncode == 1 and "written by a peer that timed out" in r.stdout
    assert tx("show").stdout.splitlines() == ["bank: {alice=90}", "shop: {order=1}"]
    r = tx("run", "--set", "nonsense")
    assert r.returncode == 3 and "RM:KEY=VALUE" in r.stderr

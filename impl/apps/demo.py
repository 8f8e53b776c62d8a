"""``wormspace demo``: a local cluster, each application briefly, a readable account, cleanup.

The cluster is stopped in every case (an error, Ctrl-C); so is the sequencer process the demo
starts. Everything runs on 127.0.0.1 with OS-picked ports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time

import msgpack

from ..net import local_cluster as lc
from ..net.client import WormSpaceClient
from .commands import show
from .wormlog import WormLog
from .wormpaxos import KVStore, encode_command
from .wormtx import Ops, ResourceManager, TxResult, WormTX


def say(text: str = "") -> None:
    """One line of the account."""
    print(text, flush=True)


def run_demo(data: str | None, nodes: int = 3, protocol: str = "paxos") -> int:
    """Start a cluster in ``data`` (default: a temp dir), run the apps, always stop it."""
    temp = data is None
    base = data or tempfile.mkdtemp(prefix="wormspace-demo-")
    config = None
    try:
        if os.path.exists(os.path.join(base, lc.CLUSTER_FILE)):
            config = lc.load_dir(base)
        else:
            config = lc.create(base, nodes, protocol, segment_size=64)
        pids = lc.up(config)
        assert config.path is not None
        say(f"== {config.protocol}-WOR cluster of {len(pids)} servers up in {base} "
            f"(durable, segment size {config.segment_size})")
        asyncio.run(_demo(config.path))
        say("\n== demo finished")
        return 0
    except KeyboardInterrupt:
        say("\n== interrupted")
        return 130
    except Exception as exc:  # report, then stop the cluster below
        sys.stderr.write(f"Error: demo failed: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        if config is not None:
            stopped = lc.down(config)
            say(f"== cluster stopped ({', '.join(f'{k} {v}' for k, v in stopped.items())})")
        if temp:
            shutil.rmtree(base, ignore_errors=True)


async def _demo(path: str) -> None:
    await _demo_kv(path)
    await _demo_log(path)
    await _demo_tx(path)


async def _demo_kv(path: str) -> None:
    say("\n== WormPaxos: a replicated KV store")
    ca, cb = WormSpaceClient.from_file(path), WormSpaceClient.from_file(path)
    try:
        a, b = KVStore(ca, "A"), KVStore(cb, "B")
        await a.put("x", b"1")
        t0 = time.perf_counter()
        for i in range(5):
            await a.put(f"k{i}", b"v%d" % i)
        ms = (time.perf_counter() - t0) * 1e3 / 5
        say(f"A elected itself (alloc of segment {a.paxos.segment}), captured the segment in one "
            f"round trip, then 6 puts ({ms:.1f} ms each, one write per command)")
        say(f"B get x -> {show(await b.get('x'))}   (linearizable: B learned up to the tail)")
        say(f"B cas x 1->2 -> {await b.cas('x', b'1', b'2')}; B took over as leader of segment "
            f"{b.paxos.segment}; A's unused addresses end with END")
        # A becomes leader again, then "crashes" with a hole: its write to slot n+1 is chosen,
        # slot n never written.
        await a.put("y", b"A-again")
        p = a.paxos
        (hole, _), (after, cap) = await p.reserve_slot(), await p.reserve_slot()
        await ca.write(after, encode_command((p.proposer, 10**6),
                                              msgpack.packb(["put", "z", b"chosen-before-crash"])),
                       cap)
        say(f"A crashes after its write at address {after} was chosen but before it wrote "
            f"address {hole} (a hole)")
        await b.put("w", b"B")
        seg, kept, noops = b.paxos.stats.takeovers[-1]
        say(f"B proposes -> leader failover: B allocated segment {b.paxos.segment}, captured "
            f"A's unfinished addresses in segment {seg}: kept {kept} chosen value(s), filled "
            f"{noops} hole(s) with NO-OP")
        say(f"B get z -> {show(await b.get('z'))}   (the chosen value survived the failover)")
        say(f"state on B: {dict(sorted((k, show(v)) for k, v in (await b.items()).items()))}")
        await a.put("y", b"A-back")
        say(f"A comes back and proposes: its old capture is preempted, it steps down "
            f"({a.paxos.stats.step_downs}x), re-elects (segment {a.paxos.segment}) and applies "
            f"everything B did: A get w -> {show(await a.get('w'))}")
    finally:
        await ca.close()
        await cb.close()


async def _start_sequencer(path: str, name: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wormspace", "log", "sequencer", "--cluster", path,
        "--listen", "127.0.0.1:0", "--id", name, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"sequencer {name} did not start within 20 s") from None
    if not line:
        await proc.wait()
        raise RuntimeError(f"sequencer {name} exited with {proc.returncode}")
    say(f"started {line}")
    return proc, line.split(" listening on ")[1].split(";")[0]


async def _stop(proc: asyncio.subprocess.Process | None) -> None:
    if proc is not None and proc.returncode is None:
        proc.kill()
        await proc.wait()


async def _demo_log(path: str) -> None:
    say("\n== WormLog: a shared log with a sequencer process")
    c1, c2 = WormSpaceClient.from_file(path), WormSpaceClient.from_file(path)
    p1 = p2 = None
    l1 = l2 = None
    try:
        p1, _addr = await _start_sequencer(path, "seq-1")
        l1, l2 = WormLog(c1), WormLog(c2)
        r = await asyncio.gather(*(lg.append(b"%s-%d" % (who, i)) for i in range(10)
                                   for who, lg in ((b"c1", l1), (b"c2", l2))))
        say(f"two clients appended 10 entries each concurrently: {len(set(r))} distinct "
            f"addresses {min(r)}..{max(r)} (2 round trips each: sequencer + write)")
        e = await l1.read(r[0])
        say(f"read {r[0]} -> {e.status.value.upper()} {show(e.value)}; tail -> "
            f"{await l2.check_tail()}")
        # A client takes an address and dies before writing it: a hole.
        grant = await l1._call("next", n=1)
        hole = grant["grants"][0][0]  # type: ignore[index]
        say(f"a client got address {hole} from the sequencer and died: read -> "
            f"{(await l2.read(hole)).status.value.upper()}; fill -> "
            f"{(await l2.fill(hole)).status.value.upper()}")
        e = await l2.fill(r[1])
        say(f"fill {r[1]} (already chosen) -> {e.status.value.upper()} {show(e.value)} "
            f"(a chosen value survives)")
        await _stop(p1)
        say("sequencer seq-1 killed (SIGKILL)")
        p2, _ = await _start_sequencer(path, "seq-2")
        a = await l1.append(b"after-failover")
        say(f"append after failover -> {a}; the client found seq-2 in the segment metadata")
        e = await l2.read(hole + 1)
        say(f"read {hole + 1} (pre-captured by seq-1, never handed out) -> "
            f"{e.status.value.upper()} (seq-2 filled seq-1's segment at failover)")
        tail = await l2.check_tail()
        segs = await l2.trim(a - a % c1.space.size)
        say(f"trim below {a - a % c1.space.size} -> trimmed segments {segs}; read {r[0]} -> "
            f"{(await l2.read(r[0])).status.value.upper()}; read {a} -> "
            f"{show((await l2.read(a)).value)}; tail {tail}")
    finally:
        for lg in (l1, l2):
            if lg is not None:
                await lg.close()
        await _stop(p1)
        await _stop(p2)
        await c1.close()
        await c2.close()


async def _demo_tx(path: str) -> None:
    say("\n== WormTX: atomic commit across three resource managers")
    wal = tempfile.mkdtemp(prefix="wormspace-demo-wal-")
    clients = [WormSpaceClient.from_file(path) for _ in range(4)]
    rms = {n: ResourceManager(n, c, os.path.join(wal, n), vote_timeout=0.3)
           for n, c in zip(("bank", "shop", "ledger"), clients)}
    try:
        tx = WormTX(clients[3], rms, vote_timeout=0.3)

        def account(r: TxResult) -> str:
            votes = ", ".join(f"{n}={show(v) if v else '(not awaited)'}"
                              + ("*" if n in r.forced else "")
                              for n, v in r.votes.items())
            outs = sorted(set(r.outcomes.values()))
            return (f"tx {r.tx} {r.variant.upper()}: votes {votes} -> {r.decision.upper()} "
                    f"(every RM: {'/'.join(outs)})")

        say(account(await tx.run({"bank": Ops({"alice": b"90"}), "shop": Ops({"order": b"1"}),
                                  "ledger": Ops({"entry1": b"alice-10"})}, variant="e3")))
        say(account(await tx.run({"bank": Ops({"alice": b"80"}, {"alice": b"100"}),
                                  "shop": Ops({"order": b"2"})}, variant="e3"))
            + "   (bank's precondition alice=100 failed)")
        rms["ledger"].stall = 0.8
        say(account(await tx.run({"bank": Ops({"alice": b"70"}), "ledger":
                                  Ops({"entry2": b"alice-20"})}, variant="e3"))
            + "   (* ledger stalled: bank captured its vote WOR and wrote NO)")
        rms["ledger"].stall = 0.0
        say(account(await tx.run({"bank": Ops({"alice": b"70"}), "ledger":
                                  Ops({"entry2": b"alice-20"})}, variant="a8"))
            + "   (A8: a TM wrote the decision WOR)")
        for n, rm in rms.items():
            say(f"  {n}: {dict(sorted((k, show(v)) for k, v in rm.store.items()))} "
                f"(WAL fsyncs: {rm.fsyncs})")
    finally:
        for rm in rms.values():
            rm.close()
        for c in clients:
            await c.close()
        shutil.rmtree(wal, ignore_errors=True)

"""The fault-injecting proxy (frames dropped, duplicated, reordered, delayed; partitions) and the
process faults of a local cluster (kill -9 and restart, SIGSTOP/SIGCONT, a torn log append)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from inproc_server import make_config
from wormspace.impl.core import Outcome
from wormspace.impl.net import local_cluster as lc
from wormspace.impl.net.client import SyncClient, Unavailable, WormSpaceClient
from wormspace.impl.net.cluster import ClusterConfig
from wormspace.impl.net.faultproxy import FaultProxy, ProxyError, proxy_cluster
from wormspace.impl.net.framing import HEADER, TAG_SIZE, FrameDecoder, encode_frame
from wormspace.impl.net.server import WormServer
from wormspace.impl.storage import MemoryStore
from wormspace.impl.trace import Recorder

KEY = b"k" * 32


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


class FrameSink:
    """A server that records the frames it receives and echoes each back."""

    def __init__(self) -> None:
        self.got: list[object] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            dec = FrameDecoder(KEY)
            while data := await r.read(65536):
                for obj in dec.feed(data):
                    self.got.append(obj)
                    w.write(encode_frame(KEY, obj))
            w.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


async def _sink_and_proxy(**faults: object) -> tuple[FrameSink, FaultProxy, list[dict]]:
    sink = FrameSink()
    port = await sink.start()
    events: list[dict] = []
    proxy = FaultProxy("s0", ("127.0.0.1", port), rng=random.Random(1),
                       recorder=Recorder("campaign", events))
    await proxy.start()
    if faults:
        proxy.set_faults(**faults)  # type: ignore[arg-type]
    return sink, proxy, events


async def _send(proxy: FaultProxy, objs: list[object], wait: float = 0.15) -> list[object]:
    r, w = await asyncio.open_connection(*proxy.address)
    w.write(b"".join(encode_frame(KEY, o) for o in objs))
    await w.drain()
    dec, back = FrameDecoder(KEY), []
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            data = await asyncio.wait_for(r.read(65536), max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
        if not data:
            break
        back += dec.feed(data)
    w.close()
    return back


def test_frames_pass_through_unchanged_without_faults():
    async def scenario() -> None:
        sink, proxy, events = await _sink_and_proxy()
        back = await _send(proxy, [{"i": n} for n in range(20)])
        assert sink.got == [{"i": n} for n in range(20)]
        assert back == sink.got
        assert proxy.stats["frames"] == 40 and events == []
        await proxy.close()

    run(scenario())


def test_loss_drops_whole_frames_and_records_each():
    async def scenario() -> None:
        sink, proxy, events = await _sink_and_proxy()
        proxy.set_faults(loss=0.5, directions=["up"])
        back = await _send(proxy, [{"i": n} for n in range(200)], wait=0.3)
        lost = proxy.stats["loss"]
        assert 60 < lost < 140  # about half, never a torn frame: the sink decoded every one
        assert len(sink.got) == 200 - lost and back == sink.got
        assert [e["fault"] for e in events] == ["loss"] * lost
        assert all(e["detail"]["dir"] == "up" and e["target"] == "s0" for e in events)
        await proxy.close()

    run(scenario())


def test_dup_sends_frames_twice_and_reorder_swaps_neighbours():
    async def scenario() -> None:
        sink, proxy, events = await _sink_and_proxy(dup=1.0, directions=["up"])
        await _send(proxy, [{"i": 1}, {"i": 2}])
        assert sink.got == [{"i": 1}, {"i": 1}, {"i": 2}, {"i": 2}]
        await proxy.close()

        sink, proxy, events = await _sink_and_proxy(reorder=1.0, directions=["up"])
        await _send(proxy, [{"i": n} for n in range(6)])
        # every other frame is held back and sent after its successor
        assert sink.got == [{"i": 1}, {"i": 0}, {"i": 3}, {"i": 2}, {"i": 5}, {"i": 4}]
        assert [e["fault"] for e in events] == ["reorder"] * 3
        # a held frame with no successor still leaves (after the hold time)
        await _send(proxy, [{"i": 9}])
        assert sink.got[-1] == {"i": 9}
        await proxy.close()

    run(scenario())


def test_delay_keeps_order_and_adds_latency():
    async def scenario() -> None:
        sink, proxy, events = await _sink_and_proxy(delay=(0.05, 0.1), directions=["up"])
        t0 = time.monotonic()
        back = await _send(proxy, [{"i": n} for n in range(10)], wait=0.5)
        assert sink.got == [{"i": n} for n in range(10)]  # delays never reorder a connection
        assert len(back) == 10 and time.monotonic() - t0 >= 0.05
        assert [e["fault"] for e in events] == ["delay"]  # the setting, once
        await proxy.close()

    run(scenario())


def test_bytes_that_are_not_frames_pass_through():
    async def scenario() -> None:
        _sink, proxy, _ = await _sink_and_proxy(loss=1.0)
        r, w = await asyncio.open_connection(*proxy.address)
        w.write(HEADER.pack(TAG_SIZE - 1) + b"junk")  # a length no frame has
        await w.drain()
        data = await asyncio.wait_for(r.read(100), 5)
        assert data == b""  # the sink's decoder rejected it and closed: it was not dropped
        w.close()
        assert proxy.stats["loss"] == 0
        await proxy.close()

    run(scenario())


def test_bad_settings_and_non_loopback_are_refused():
    with pytest.raises(ProxyError, match="loopback"):
        FaultProxy("s0", ("10.1.2.3", 7000))
    with pytest.raises(ProxyError, match="loopback"):
        FaultProxy("s0", ("127.0.0.1", 7000), host="0.0.0.0")
    p = FaultProxy("s0", ("127.0.0.1", 7000))
    with pytest.raises(ProxyError, match="probability"):
        p.set_faults(loss=1.5)
    with pytest.raises(ProxyError, match="delay"):
        p.set_faults(delay=(0.2, 0.1))
    with pytest.raises(ProxyError, match="direction"):
        p.set_faults(loss=0.1, directions=["sideways"])
    with pytest.raises(ProxyError, match="partition mode"):
        p.partition("maybe")


# -- in front of real (in-process) servers ---------------------------------------------------------


async def _servers(tmp: Path) -> tuple[list[WormServer], ClusterConfig]:
    config = make_config(str(tmp), 3, segment_size=8)
    servers = []
    for sid, spec in config.servers.items():
        store, state, _ = MemoryStore.open()
        srv = WormServer(config, sid, store, state)
        await srv.start(spec.host, spec.port)
        servers.append(srv)
    return servers, config


def test_clients_through_proxies_see_partitions_and_loss(tmp_path):
    async def scenario() -> None:
        servers, config = await _servers(tmp_path)
        events: list[dict] = []
        proxies, cconfig = await proxy_cluster(config, rng=random.Random(3),
                                               recorder=Recorder("campaign", events))
        assert {s.port for s in cconfig.servers.values()} == {p.port for p in proxies.values()}
        c = WormSpaceClient(cconfig, timeout=0.05, retries=2)
        assert await c.alloc(1, b"m") is True
        # one server cut off (frames dropped): a majority still answers
        proxies["s0"].partition("drop")
        assert await c.write(8, b"a") is Outcome.OK
        # two of three refused: no quorum, the call's outcome is unknown
        proxies["s1"].partition("refuse")
        with pytest.raises(Unavailable):
            await c.read(8)
        for p in proxies.values():
            p.heal()
        assert await c.read(8) == b"a"
        # heavy loss and duplication both ways: retries get every call through, answers right
        for p in proxies.values():
            p.set_faults(loss=0.3, dup=0.3)
        c2 = WormSpaceClient(cconfig, timeout=0.05, retries=6)
        assert await c2.write(9, b"b") is Outcome.OK
        assert await c2.read(9) == b"b" and await c2.read(8) == b"a"
        kinds = {e["fault"] for e in events}
        assert {"partition", "heal", "loss", "dup"} <= kinds
        await c.close()
        await c2.close()
        for p in proxies.values():
            await p.close()
        for s in servers:
            await s.close()

    run(scenario())


# -- process faults on a local cluster -------------------------------------------------------------


def test_kill_restart_pause_and_a_torn_append_on_a_real_cluster(tmp_path):
    config = lc.create(str(tmp_path / "c"), 3, segment_size=8)
    trace = tmp_path / "trace"
    lc.up(config, trace=str(trace))
    try:
        with SyncClient(config, timeout=0.1, retries=3) as c:
            assert c.alloc(1, b"m")
            assert c.write(8, b"before") is Outcome.OK
            # kill -9 then restart: the acknowledged write survives
            pid = lc.kill(config, "s0")
            assert lc.server_pid(config, "s0") is None
            with pytest.raises(lc.ClusterError, match="not running"):
                lc.pause(config, "s0")
            assert lc.restart(config, "s0", trace=str(trace)) != pid
            # SIGSTOP: the server answers nothing (but a majority does), then SIGCONT
            lc.pause(config, "s1")
            key = config.key()
            with pytest.raises(OSError):
                lc.ping(config.servers["s1"], key, timeout=0.3)
            assert c.write(9, b"paused") is Outcome.OK
            lc.resume(config, "s1")
            assert lc.ping(config.servers["s1"], key)["id"] == "s1"
            # a torn append: refused while running; after kill, detected and saved on restart
            with pytest.raises(lc.ClusterError, match="running"):
                lc.tear(config, "s2")
            lc.kill(config, "s2")
            log = lc.data_log(config, "s2")
            size = log.stat().st_size
            torn = lc.tear(config, "s2", random.Random(5))
            assert torn["offset"] == size and log.stat().st_size == size + torn["size"]
            lc.restart(config, "s2", trace=str(trace))
            text = (tmp_path / "c" / "s2.log").read_text()
            assert "log tail dropped" in text and "torn" in text
            assert log.stat().st_size == size  # cut back to the committed records
            assert list(log.parent.glob("acceptor.log.dropped-*"))
            # every server still serves what was acknowledged
            lc.kill(config, "s0")
            lc.kill(config, "s1")
            lc.restart(config, "s0")
            lc.restart(config, "s1")
            assert c.read(8) == b"before" and c.read(9) == b"paused"
            # a log cut inside its last (acknowledged) record: detected as torn, cut back
            lc.kill(config, "s1")
            log1 = lc.data_log(config, "s1")
            cut = lc.tear(config, "s1", random.Random(2), mode="truncate")
            assert log1.stat().st_size == cut["offset"] + cut["size"]
            lc.restart(config, "s1")
            assert log1.stat().st_size == cut["offset"]
            text = (tmp_path / "c" / "s1.log").read_text()
            assert f"log tail dropped at offset {cut['offset']} ({cut['size']} bytes): torn" \
                in text
            with pytest.raises(lc.ClusterError, match="mode"):
                lc.tear(config, "s1", mode="shred")
    finally:
        lc.down(config, timeout=2)
    # the servers' traces record the recovered state at each restart
    from wormspace.impl.trace import read

    s2 = read(trace / "s2.ndjson")
    assert any(e["kind"] == "persist" and e.get("recovered") for e in s2)

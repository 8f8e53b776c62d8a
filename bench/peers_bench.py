"""WormSpace side by side with two peers, in one script: etcd (3 members) and PySyncObj (3 nodes).

Everything runs on this machine, on 127.0.0.1 only; every load loop is bounded in time (``--cell``
seconds) and in count (``MAX_OPS``), and every process started here is stopped here.

* **WormSpace**, 3-server Paxos-WOR (``--memory``: NOT durable; and fsync, group commit):
  ``read``, ``write`` to a pre-captured WOR, ``capture+write`` at concurrency 1/16/64
  (``bench/net_bench.py``'s ``bench_mode``), WormPaxos ``propose`` at 1/16/64/256 (the KV store
  and ``run_cell`` of ``bench/apps_bench.py``), and WormLog ``append`` with 1, 2 and 3 Paxos-WOR
  replicas (``apps_bench.bench_log``).
* **etcd** (Debian's ``etcd-server``, started here): 3 members on loopback, data dirs in a temp
  dir, default settings (fsync of the WAL on every commit batch). Put-if-absent transactions
  (``Txn``: ``create_revision(key) == 0`` then ``Put``) on fresh keys, and linearizable ``Range``
  gets of written keys, at concurrency 1/16/64. Client: the etcd v3 gRPC API over one
  ``grpc.aio`` channel per ``--etcd-channels`` (round-robin), with the protobuf stubs that the
  ``aetcd`` package ships (``aetcd.rpc``), calling the stubs directly (no wrapper), against the
  leader's endpoint (no forwarding). Also on a tmpfs data dir (``/dev/shm``: fsync is a no-op
  there) as the counterpart of WormSpace ``--memory``, since etcd 3.4 has no no-fsync switch.
  If ``go`` and Debian's ``golang-etcd-server-dev`` are installed, also etcd's own Go client
  (clientv3 3.4, ``bench/peers/etcd_go/main.go``, built offline in GOPATH mode; ``--no-go``
  skips it) on the fsync cluster.
* **PySyncObj** (PyPI ``pysyncobj``): 3 nodes in 3 processes on loopback, a replicated counter;
  the load runs inside the leader's process (``bench/peers/pysyncobj_node.py``: one thread ticks
  Raft and issues ``incr()`` calls with callbacks, N in flight, N = 1 ... 1024); without a
  journal, and with its ``journalFile`` (which PySyncObj never fsyncs while running: see that
  file); with its default batching period (100 ms), a tuned one (2 ms), no batching, and with
  the load on a follower (see ``PYSYNCOBJ_CONFIGS``).

Prints one Markdown table per operation family with the peers' rows beside ours, the anchors from
the issue as reference rows, and the ratio against each goal; writes everything as JSON.

**Rounds** (``--rounds N``): this machine's speed drifts by up to 2x within an hour (the same
cell, the same code, minutes apart), for every system alike, so one pass that measures
WormSpace first and etcd ten minutes later can favour either. With N rounds every system is
measured N times, the order of the three sections alternating between rounds (etcd, PySyncObj,
WormSpace; then WormSpace, PySyncObj, etcd; ...). The tables show each cell's median over the
rounds; each goal is judged in every round on that round's own rows (a ratio of two systems
measured minutes apart), and the goal table gives the median ratio, the range, and in how
many rounds it was met.

    python bench/peers_bench.py [--cell 3] [--rounds 3] [--only wormspace,etcd,pysyncobj] \
        [--json bench/results/peers.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import apps_bench
import net_bench
from wormspace.impl.apps.wormpaxos import KVStore
from wormspace.impl.net import eventloop, local_cluster
from wormspace.impl.net.client import WormSpaceClient

HERE = os.path.dirname(os.path.abspath(__file__))
CONCS = [1, 16, 64]
#: Client processes for WormSpace's multi-process cells.
CLIENT_PROCS = 2
PAXOS_CONCS = [1, 16, 64, 256, 1024]  # 1,024: as many in flight as PySyncObj's best
INFLIGHT = [1, 16, 64, 256, 1024]
# PySyncObj: (store, journal, appendEntriesUseBatch, appendEntriesPeriod s, load on node).
# Defaults first (batching every 100 ms), then the best found by hand on this machine (batching
# every 2 ms: ~20K/s at 1,024 in flight, against ~16K at 0.5 ms and ~19K at 10 ms), no batching
# (every command sent at once: flat at ~0.7-1.6K/s), the journal, and the load on a follower
# (commands forwarded to the leader: the nearest thing to a remote client PySyncObj has).
PYSYNCOBJ_CONFIGS = [
    ("memory", False, True, 0.1, "leader"),
    ("memory", False, True, 0.002, "leader"),
    ("memory", False, False, 0.1, "leader"),
    ("journal (no fsync)", True, True, 0.002, "leader"),
    ("memory", False, True, 0.002, "follower"),
]
VALUE = b"v" * 8
MAX_OPS = 200_000  # per cell
STARTUP_FAILURES: list[str] = []  # WormSpace cluster starts that failed and were retried

# The anchors quoted in the issue (measured elsewhere "on this kind of machine").
ANCHORS = {
    "etcd_go_pia": {1: (364, 2.4), 16: (1628, 8.5), 64: (2359, 23.0)},  # ops/s, p50 ms
    "etcd_py_pia": "about 1.1-1.5K/s (Python grpc.aio client)",
    "etcd_get_p50_1": 0.67,  # ms, linearizable get at 1 client
    "pysyncobj_best": 4800,  # ops/s, 1,024 in flight, no fsync
}


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


# -- load average -------------------------------------------------------------------------------


class LoadSampler:
    """Samples /proc/loadavg every few seconds in a thread, labelled with the current section."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.section = "start"
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        with open("/proc/loadavg") as f:
            one, five, fifteen = (float(x) for x in f.read().split()[:3])
        self.samples.append({"t": round(time.time(), 1), "section": self.section,
                             "load1": one, "load5": five, "load15": fifteen})

    def __enter__(self) -> LoadSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self.sample()

    def summary(self) -> dict[str, Any]:
        ones = [s["load1"] for s in self.samples]
        by: dict[str, list[float]] = {}
        for s in self.samples:
            by.setdefault(s["section"], []).append(s["load1"])
        return {"cpus": os.cpu_count(), "load1_min": min(ones), "load1_max": max(ones),
                "load1_mean": round(statistics.mean(ones), 2),
                "at_start": self.samples[0], "at_end": self.samples[-1],
                "load1_mean_by_section": {k: round(statistics.mean(v), 2) for k, v in by.items()}}


# -- helpers ------------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stats(lat: list[float], took: float) -> dict[str, Any]:
    lat.sort()
    n = len(lat)
    return {"ops": n, "seconds": round(took, 2), "ops_per_s": round(n / took) if took else 0,
            "p50_ms": round(statistics.median(lat) * 1e3, 3) if n else None,
            "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1e3, 3) if n else None}


async def run_cell(op: Callable[[], Awaitable[bool]], conc: int, seconds: float
                   ) -> dict[str, Any]:
    """Like net_bench.run_cell (workers stop at the deadline or when ``op`` returns False), but
    also bounded by MAX_OPS."""
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline and len(lat) < MAX_OPS:
            t0 = time.perf_counter()
            if not await op():
                return
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return stats(lat, time.perf_counter() - t0)


def stop_proc(p: subprocess.Popen, grace: float = 5.0) -> None:
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


# -- WormSpace ----------------------------------------------------------------------------------


async def bench_wormpaxos(path: str, store: str, cell: float, thrifty: bool = False
                          ) -> list[dict[str, Any]]:
    """apps_bench.bench_paxos at PAXOS_CONCS instead of (1, 32)."""
    rows = []
    async with WormSpaceClient.from_file(path, timeout=2.0, thrifty=thrifty) as c:
        kv = KVStore(c, "bench")
        await kv.put("warm", VALUE)  # election + segment capture, outside the measurement
        n = 0

        async def put() -> None:
            nonlocal n
            n += 1
            await kv.put(f"k{n % 1000}", VALUE)

        for conc in PAXOS_CONCS:
            r = await apps_bench.run_cell(put, conc, cell)
            rows.append({"system": "WormSpace", "op": "WormPaxos propose", "store": store,
                         "concurrency": conc, **r, "elections": kv.paxos.stats.elections})
            if thrifty:
                rows[-1].update(thrifty=True, client="python asyncio, 1 process, thrifty")
            log(rows[-1])
    return rows


@contextmanager
def ws_cluster(nodes: int, memory: bool, tries: int = 3) -> Iterator[str]:
    """apps_bench.cluster (Paxos-WOR), tried again if a server fails to start: on this shared
    machine ``local_cluster.up`` has, rarely, reported "server sN exited during start-up" with
    an empty log. ``up`` stops the servers it started before it raises."""
    for attempt in range(tries):
        cm = apps_bench.cluster(nodes, "paxos", memory)
        try:
            path = cm.__enter__()
        except local_cluster.ClusterError as exc:
            log(f"cluster start failed (attempt {attempt + 1}/{tries}): {exc}")
            STARTUP_FAILURES.append(str(exc)[:300])
            if attempt == tries - 1:
                raise
            time.sleep(1)
            continue
        try:
            yield path
        except BaseException:
            if not cm.__exit__(*sys.exc_info()):
                raise
        else:
            cm.__exit__(None, None, None)
        return


def bench_wormspace(cell: float, sampler: LoadSampler) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for store in ("memory", "fsync"):
        mem = store == "memory"
        sampler.section = f"wormspace {store} read/write"
        with ws_cluster(3, mem) as path:
            for r in eventloop.run(net_bench.bench_mode(path, store, CONCS, cell)):
                rows.append({"system": "WormSpace", **r, "store": r.pop("mode")})
        # The same cells with the client load split over CLIENT_PROCS processes (the Python
        # client is CPU-bound on one core; etcd's Go client uses every core it has).
        sampler.section = f"wormspace {store} read/write, {CLIENT_PROCS} client processes"
        with ws_cluster(3, mem) as path:
            for r in eventloop.run(net_bench.bench_mode(
                    path, store, [c for c in CONCS if c >= CLIENT_PROCS], cell, CLIENT_PROCS)):
                rows.append({"system": "WormSpace", **r, "store": r.pop("mode"),
                             "client": f"python asyncio, {r['procs']} processes"})
        sampler.section = f"wormspace {store} wormpaxos"
        with ws_cluster(3, mem) as path:
            rows += eventloop.run(bench_wormpaxos(path, store, cell))
        if not mem:
            # Thrifty phases (each phase to a majority first: less CPU, each write on exactly
            # a majority); reported beside the default, never in its place.
            sampler.section = f"wormspace {store} thrifty"
            with ws_cluster(3, mem) as path:
                for r in eventloop.run(net_bench.bench_mode(path, store, CONCS, cell,
                                                            thrifty=True)):
                    rows.append({"system": "WormSpace", **r, "store": r.pop("mode"),
                                 "client": "python asyncio, 1 process, thrifty"})
            with ws_cluster(3, mem) as path:
                rows += eventloop.run(bench_wormpaxos(path, store, cell, thrifty=True))
        sampler.section = f"wormspace {store} wormlog"
        for n in (1, 2, 3):
            with ws_cluster(n, mem) as path:
                r = eventloop.run(apps_bench.bench_log(path, f"Paxos-WOR, {n}", store, cell))
                rows.append({"system": "WormSpace", "op": "WormLog append", "store": store,
                             "replicas": n, "concurrency": 1,
                             **{k: r[k] for k in ("ops", "ops_per_s", "p50_ms", "p99_ms")}})
    return rows


# -- etcd ---------------------------------------------------------------------------------------


class EtcdCluster:
    """A 3-member etcd cluster on 127.0.0.1, data in ``base``; always stop() it."""

    def __init__(self, base: str, n: int = 3) -> None:
        self.base = base
        self.n = n
        self.procs: list[subprocess.Popen] = []
        ports = free_ports(2 * n)
        self.client_ports = ports[:n]
        self.peer_ports = ports[n:]

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.client_ports]

    def start(self) -> None:
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        for i in range(self.n):
            c = f"http://127.0.0.1:{self.client_ports[i]}"
            p = f"http://127.0.0.1:{self.peer_ports[i]}"
            logf = open(os.path.join(self.base, f"e{i}.log"), "wb")
            self.procs.append(subprocess.Popen(
                ["etcd", "--name", f"e{i}", "--data-dir", os.path.join(self.base, f"e{i}"),
                 "--listen-client-urls", c, "--advertise-client-urls", c,
                 "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--initial-cluster-token", f"peers-bench-{os.getpid()}",
                 "--logger", "zap", "--log-outputs", "stderr"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if not k.startswith("ETCD")}))
            logf.close()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            stop_proc(p)

    async def leader_endpoint(self, timeout: float = 30.0) -> str:
        """Wait until every member answers and one is the leader; return the leader's."""
        from aetcd import rpc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"etcd exited with {p.returncode}; see {self.base}/*.log")
            try:
                ids = []
                leader = None
                for ep in self.endpoints:
                    async with rpc.insecure_channel(ep) as ch:
                        st = await rpc.MaintenanceStub(ch).Status(rpc.StatusRequest(), timeout=1)
                    ids.append(st.header.member_id)
                    leader = st.leader
                if leader and leader in ids:
                    return self.endpoints[ids.index(leader)]
            except Exception:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"etcd cluster did not elect a leader in {timeout} s")


async def bench_etcd_cells(endpoint: str, store: str, cell: float, channels: int
                           ) -> list[dict[str, Any]]:
    from aetcd import rpc
    chans = [rpc.insecure_channel(endpoint) for _ in range(channels)]
    stubs = [rpc.KVStub(ch) for ch in chans]
    rows: list[dict[str, Any]] = []
    rr = 0

    def stub() -> Any:
        nonlocal rr
        rr += 1
        return stubs[rr % channels]

    def pia_request(key: bytes) -> Any:
        return rpc.TxnRequest(
            compare=[rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key,
                                 create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=VALUE))],
            failure=[])

    try:
        # Keys to read, written (put-if-absent) outside the measurement; also warms channels.
        read_keys = [b"read/%d" % i for i in range(1024)]
        sem = asyncio.Semaphore(64)

        async def prefill(k: bytes) -> None:
            async with sem:
                r = await stub().Txn(pia_request(k), timeout=10)
                assert r.succeeded, k

        await asyncio.gather(*(prefill(k) for k in read_keys))
        seq = 0
        for conc in CONCS:
            async def pia() -> bool:
                nonlocal seq
                seq += 1
                r = await stub().Txn(pia_request(b"pia/%d" % seq), timeout=10)
                assert r.succeeded  # every key is fresh: the put must happen
                return True

            ri = 0

            async def get() -> bool:
                nonlocal ri
                ri = (ri + 1) % len(read_keys)
                r = await stub().Range(rpc.RangeRequest(key=read_keys[ri]), timeout=10)
                assert r.kvs and r.kvs[0].value == VALUE
                return True

            for name, op in (("put-if-absent", pia), ("get (linearizable)", get)):
                r = await run_cell(op, conc, cell)
                rows.append({"system": "etcd", "op": name, "store": store, "concurrency": conc,
                             "client": f"python grpc.aio x{channels}", **r})
                log(rows[-1])
    finally:
        for ch in chans:
            await ch.close()
    return rows


def bench_etcd(cell: float, channels: int, sampler: LoadSampler, go_client: str | None
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    if shutil.which("etcd") is None:
        info["error"] = "etcd not found (apt-get install etcd-server)"
        return rows, info
    info["version"] = subprocess.run(["etcd", "--version"], capture_output=True, text=True
                                     ).stdout.splitlines()[0]
    stores = [("fsync", None)]
    if os.path.isdir("/dev/shm"):
        stores.append(("tmpfs", "/dev/shm"))
    for store, parent in stores:
        sampler.section = f"etcd {store}"
        with tempfile.TemporaryDirectory(prefix="peers-etcd-", dir=parent) as d:
            cl = EtcdCluster(d)
            cl.start()
            try:
                ep = asyncio.run(cl.leader_endpoint())
                log(f"etcd ({store}) leader at {ep}")
                rows += asyncio.run(bench_etcd_cells(ep, store, cell, channels))
                if go_client and store == "fsync":
                    sampler.section = f"etcd {store} go client"
                    rows += run_go_client(go_client, ep, store, cell)
            finally:
                cl.stop()
    return rows, info


def build_go_client() -> tuple[str | None, str]:
    """bench/peers/etcd_go/main.go, against Debian's etcd client sources (GOPATH, offline)."""
    src = os.path.join(HERE, "peers", "etcd_go", "main.go")
    if not os.path.exists(src) or shutil.which("go") is None:
        return None, "no Go toolchain or no bench/peers/etcd_go/main.go"
    if not os.path.isdir("/usr/share/gocode/src/go.etcd.io/etcd/clientv3"):
        return None, "no etcd clientv3 sources (apt-get install golang-etcd-server-dev)"
    out = os.path.join(tempfile.gettempdir(), f"peers-etcd-go-{os.getpid()}")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": "",
           "GOPROXY": "off", "CGO_ENABLED": "0"}
    r = subprocess.run(["go", "build", "-o", out, src], env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        return None, f"go build failed: {r.stderr.strip()[-800:]}"
    return out, "built with Debian's golang-go and golang-etcd-server-dev (clientv3 3.4)"


def run_go_client(binary: str, ep: str, store: str, cell: float) -> list[dict[str, Any]]:
    r = subprocess.run([binary, "-endpoint", ep, "-seconds", str(cell),
                        "-conc", ",".join(map(str, CONCS)), "-max-ops", str(MAX_OPS)],
                       capture_output=True, text=True, timeout=60 + 4 * len(CONCS) * cell)
    if r.returncode != 0:
        log(f"go client failed: {r.stderr[-500:]}")
        return []
    rows = []
    for line in r.stdout.splitlines():
        d = json.loads(line)
        rows.append({"system": "etcd", "store": store, "client": "go clientv3", **d})
        log(rows[-1])
    return rows


# -- PySyncObj ----------------------------------------------------------------------------------


class SyncObjCluster:
    def __init__(self, base: str, journal: bool, batch: bool, period: float, n: int = 3
                 ) -> None:
        ports = free_ports(n)
        addrs = [f"127.0.0.1:{p}" for p in ports]
        self.procs: list[subprocess.Popen] = []
        node = os.path.join(HERE, "peers", "pysyncobj_node.py")
        for i, a in enumerate(addrs):
            cmd = [sys.executable, node, a, *[b for b in addrs if b != a]]
            if journal:
                cmd += ["--journal", os.path.join(base, f"n{i}.journal")]
            if not batch:
                cmd.append("--no-batch")
            cmd += ["--period", str(period)]
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               stderr=open(os.path.join(base, f"n{i}.log"), "wb"),
                                               text=True))

    def call(self, i: int, msg: dict, timeout: float = 30.0) -> dict:
        p = self.procs[i]
        assert p.stdin and p.stdout
        p.stdin.write(json.dumps(msg) + "\n")
        p.stdin.flush()
        # The node answers within the cell time plus its bounded drain; guard anyway.
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            line = p.stdout.readline()
        finally:
            timer.cancel()
        if not line:
            raise RuntimeError(f"pysyncobj node {i} died (rc {p.poll()})")
        return json.loads(line)

    def leader(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = [self.call(i, {"cmd": "status"}) for i in range(len(self.procs))]
            leaders = [i for i, s in enumerate(st) if s["leader"]]
            if len(leaders) == 1 and all(s["has_leader"] for s in st):
                return leaders[0]
            time.sleep(0.3)
        raise RuntimeError("PySyncObj cluster did not elect a leader")

    def stop(self) -> None:
        for p in self.procs:
            try:
                if p.poll() is None and p.stdin:
                    p.stdin.write('{"cmd": "quit"}\n')
                    p.stdin.flush()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                stop_proc(p)


def bench_pysyncobj(cell: float, sampler: LoadSampler) -> tuple[list[dict[str, Any]], dict]:
    import pysyncobj
    info = {"version": getattr(pysyncobj, "__version__", None)
            or subprocess.run([sys.executable, "-m", "pip", "show", "pysyncobj"],
                              capture_output=True, text=True).stdout.split("Version: ")[-1]
            .split()[0]}
    rows: list[dict[str, Any]] = []
    for store, journal, batch, period, where in PYSYNCOBJ_CONFIGS:
        settings = (f"batch, period {period * 1e3:g} ms" if batch else "no batch")
        sampler.section = f"pysyncobj {store}, {settings}, on {where}"
        with tempfile.TemporaryDirectory(prefix="peers-syncobj-") as d:
            cl = SyncObjCluster(d, journal, batch, period)
            try:
                li = cl.leader()
                node = li if where == "leader" else (li + 1) % len(cl.procs)
                log(f"pysyncobj ({sampler.section}): leader is node {li}, load on node {node}")
                cl.call(node, {"cmd": "bench", "inflight": 16, "seconds": 0.5,
                               "max_ops": 5000})
                for n in INFLIGHT:
                    r = cl.call(node, {"cmd": "bench", "inflight": n, "seconds": cell,
                                       "max_ops": MAX_OPS}, timeout=cell + 30)
                    rows.append({"system": "PySyncObj", "op": "replicated incr()",
                                 "store": store, "settings": settings,
                                 "client": f"in {where} process", "concurrency": n, **r})
                    log(rows[-1])
            finally:
                cl.stop()
    return rows, info


# -- report -------------------------------------------------------------------------------------


def _f(x: Any, nd: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def find(rows: list[dict], **kw: Any) -> dict | None:
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def _target(t: Any) -> str:
    return t if isinstance(t, str) else f"{t:g}x"


def best(rs: list[dict], **kw: Any) -> dict | None:
    """The fastest of the matching rows (each system with its best client setting)."""
    match = [r for r in rs if all(r.get(k) == v for k, v in kw.items())]
    return max(match, key=lambda r: r["ops_per_s"], default=None)


def _write_goals(ws: list[dict], et: list[dict], variant: str) -> list[dict]:
    """The write goals of issue #6 for WormSpace rows ``ws`` (``variant`` tags their names)."""
    goals: list[dict] = []
    for op, goal in (("capture+write", 2.0), ("write", 4.0)):
        for conc in CONCS:
            ours = best(ws, op=op, store="fsync", concurrency=conc)
            for ref_name, ref in (
                    ("etcd put-if-absent, measured (python grpc.aio)",
                     find(et, op="put-if-absent", store="fsync", concurrency=conc,
                          client=next((r["client"] for r in et if r["client"].startswith(
                              "python")), None))),
                    ("etcd put-if-absent, measured (go clientv3)",
                     find(et, op="put-if-absent", store="fsync", concurrency=conc,
                          client="go clientv3")),
                    ("etcd put-if-absent, anchor (Go client)",
                     {"ops_per_s": ANCHORS["etcd_go_pia"][conc][0]})):
                if ours is None or ref is None or not ref["ops_per_s"]:
                    continue
                ratio = ours["ops_per_s"] / ref["ops_per_s"]
                goals.append({"goal": f"{op} fsync vs etcd put-if-absent{variant}",
                              "concurrency": conc, "ours": ours["ops_per_s"], "ours_client": ours["client"],
                              "ref": ref["ops_per_s"],
                              "ref_name": ref_name, "ratio": round(ratio, 2), "target": goal,
                              "met": ratio >= goal})
    # the headline: best throughput over concurrencies
    for op, goal in (("capture+write", 2.0), ("write", 4.0)):
        ours = max((r["ops_per_s"] for r in ws if r["op"] == op and r["store"] == "fsync"),
                   default=None)
        for ref_name, refs in (
                ("etcd put-if-absent, measured, best client/conc",
                 [r["ops_per_s"] for r in et if r["op"] == "put-if-absent"
                  and r["store"] == "fsync"]),
                ("etcd put-if-absent, anchor, Go client best",
                 [v[0] for v in ANCHORS["etcd_go_pia"].values()])):
            if ours and refs:
                ratio = ours / max(refs)
                goals.append({"goal": f"{op} fsync vs etcd put-if-absent{variant}",
                              "concurrency": "best", "ours": ours, "ref": max(refs), "ref_name": ref_name,
                              "ratio": round(ratio, 2), "target": goal, "met": ratio >= goal})
    return goals


def report(rows: list[dict], lines: list[str]) -> list[dict]:
    """Appends Markdown to ``lines``; returns the goal comparisons."""
    goals: list[dict] = []
    hdr = "| system | op | store | client | conc | ops/s | p50 ms | p99 ms | ops |"
    sep = "|---|---|---|---|---|---|---|---|---|"

    def table_row(r: dict) -> str:
        return (f"| {r['system']} | {r['op']} | {r['store']} | {r.get('client', '-')} | "
                f"{r['concurrency']} | {_f(r['ops_per_s'])} | {_f(r['p50_ms'])} | "
                f"{_f(r['p99_ms'])} | {_f(r['ops'])} |")

    ws = [r for r in rows if r["system"] == "WormSpace"]
    et = [r for r in rows if r["system"] == "etcd"]
    py = [r for r in rows if r["system"] == "PySyncObj"]
    for r in ws:
        r.setdefault("client", "python asyncio, 1 process")

    # 1. Writes.
    lines += ["### Writes: WormSpace write / capture+write vs etcd put-if-absent txn", "", hdr, sep]
    for conc in CONCS:
        for r in ws:
            if r["op"] in ("capture+write", "write") and r["concurrency"] == conc:
                lines.append(table_row(r))
        for r in et:
            if r["op"] == "put-if-absent" and r["concurrency"] == conc:
                lines.append(table_row(r))
        a = ANCHORS["etcd_go_pia"][conc]
        lines.append(f"| etcd 3.4 (anchor, issue) | put-if-absent | fsync | Go client | {conc} | "
                     f"{a[0]:,} | {a[1]} | - | - |")
    lines.append(f"| etcd 3.4 (anchor, issue) | put-if-absent | fsync | Python grpc.aio | 1-64 | "
                 f"{ANCHORS['etcd_py_pia']} | - | - | - |")
    lines.append("")
    # The goals with the default client (every phase to every server, as etcd replicates
    # every entry to every member), then with thrifty phases (each write on a majority only).
    plain = [r for r in ws if not r.get("thrifty")]
    thrifty = [r for r in ws if r.get("thrifty")]
    for variant, wrows in (("", plain), (" [thrifty]", thrifty)):
        if wrows:
            goals += _write_goals(wrows, et, variant)
    # 2. Reads.
    lines += ["### Reads: WormSpace read vs etcd linearizable get", "", hdr, sep]
    for conc in CONCS:
        for r in ws:
            if r["op"] == "read" and r["concurrency"] == conc:
                lines.append(table_row(r))
        for r in et:
            if r["op"] == "get (linearizable)" and r["concurrency"] == conc:
                lines.append(table_row(r))
    lines.append(f"| etcd 3.4 (anchor, issue) | get (linearizable) | fsync | ? | 1 | - | "
                 f"{ANCHORS['etcd_get_p50_1']} | - | - |")
    lines.append("")
    for store in ("fsync", "memory"):
        ours = find(ws, op="read", store=store, concurrency=1)
        refs = [(f"etcd get p50 at 1 client, measured ({r['client']}, {r['store']})",
                 r["p50_ms"]) for r in et
                if r["op"] == "get (linearizable)" and r["concurrency"] == 1]
        refs.append(("etcd get p50 at 1 client, anchor", ANCHORS["etcd_get_p50_1"]))
        for ref_name, ref in refs:
            if ours and ours["p50_ms"] and ref:
                ratio = ref / ours["p50_ms"]  # >= 1: ours no slower
                goals.append({"goal": f"read p50 at 1 client ({store}) no slower than etcd get",
                              "concurrency": 1, "ours": ours["p50_ms"], "ref": ref,
                              "ref_name": ref_name, "ratio": round(ratio, 2), "target": 1.0,
                              "met": ratio >= 1.0, "unit": "ms (ratio = etcd p50 / ours)"})

    # 3. Replicated state machine.
    lines += ["### Replicated state machine: WormPaxos propose vs PySyncObj (Raft)", "",
              "concurrency = calls in flight from one client process (PySyncObj: inside the "
              "leader's process)", "", hdr, sep]
    for r in ws:
        if r["op"] == "WormPaxos propose":
            lines.append(table_row(r))
    for r in py:
        lines.append(table_row({**r, "store": f"{r['store']}, {r['settings']}"}))
    lines.append(f"| PySyncObj (anchor, issue) | replicated op | memory (no fsync) | - | 1,024 | "
                 f"{ANCHORS['pysyncobj_best']:,} | - | - | - |")
    lines.append("")
    py_best = max(py, key=lambda r: r["ops_per_s"], default=None)
    for variant, prows in (("", plain), (" [thrifty]", thrifty)):
        ours = max((r["ops_per_s"] for r in prows if r["op"] == "WormPaxos propose"
                    and r["store"] == "fsync"), default=None)
        best_setting = (f"{py_best['store']}, {py_best['settings']}, {py_best['client']}, "
                        f"{py_best['concurrency']} in flight" if py_best else "")
        for ref_name, ref, detail in (
                ("PySyncObj best measured", py_best["ops_per_s"] if py_best else None,
                 best_setting),
                ("PySyncObj best, anchor", ANCHORS["pysyncobj_best"], "")):
            if ours and ref:
                ratio = ours / ref
                # ref_name stays the same whichever setting won (rounds are matched on it)
                goals.append({"goal": f"WormPaxos propose fsync (best conc) vs PySyncObj "
                                      f"best{variant}",
                              "concurrency": "best", "ours": ours, "ref": ref,
                              "ref_name": ref_name + (f" ({detail})" if detail else ""),
                              "ref_key": ref_name, "ratio": round(ratio, 2), "target": 2.0,
                              "met": ratio >= 2.0})

    # 4. WormLog.
    lines += ["### WormLog append latency vs replica count (Paxos-WOR, concurrency 1)", "",
              "| store | replicas | p50 ms | p99 ms | ops/s | ops |", "|---|---|---|---|---|---|"]
    for r in ws:
        if r["op"] == "WormLog append":
            lines.append(f"| {r['store']} | {r['replicas']} | {_f(r['p50_ms'])} | "
                         f"{_f(r['p99_ms'])} | {_f(r['ops_per_s'])} | {_f(r['ops'])} |")
    lines.append("")
    for store in ("memory", "fsync"):
        one = find(ws, op="WormLog append", store=store, replicas=1)
        three = find(ws, op="WormLog append", store=store, replicas=3)
        if one and three and one["p50_ms"] and three["p50_ms"]:
            ratio = three["p50_ms"] / one["p50_ms"]
            goals.append({"goal": f"WormLog append p50 flat in replicas ({store})",
                          "concurrency": 1, "ours": three["p50_ms"], "ref": one["p50_ms"],
                          "ref_name": "p50 with 1 replica", "ratio": round(ratio, 2),
                          "target": "<= 1.2 (3 replicas / 1 replica)", "met": ratio <= 1.2,
                          "unit": "ms"})

    return goals


def goals_table(goals: list[dict], lines: list[str]) -> None:
    """The goals of one set of rows (one round, or the medians of every round)."""
    lines += ["| goal | conc | ours | reference | ratio | target | met |",
              "|---|---|---|---|---|---|---|"]
    for g in goals:
        lines.append(f"| {g['goal']} | {g['concurrency']} | {_f(g['ours'])}"
                     + (f" ({g['ours_client']})" if g.get("ours_client") else "") + " | "
                     f"{_f(g['ref'])} ({g['ref_name']}) | {g['ratio']:.2f}x | "
                     f"{_target(g['target'])} | "
                     f"{'met' if g['met'] else 'NOT met'} |")
    lines.append("")


#: The fields that name a cell (everything else in a row is a measurement).
_CELL_KEYS = ("system", "op", "store", "client", "settings", "concurrency", "inflight",
              "replicas", "thrifty", "procs")


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per cell: the median ops/s, p50 and p99 over the rounds (in first-seen order),
    with ``rounds`` (how many) and ``ops_per_s_rounds`` (each round's ops/s)."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault(tuple(r.get(k) for k in _CELL_KEYS), []).append(r)
    out = []
    for rs in cells.values():
        m = {k: v for k, v in rs[0].items() if k != "round"}
        for k in ("ops_per_s", "p50_ms", "p99_ms"):
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                med = statistics.median(vals)
                m[k] = round(med) if k == "ops_per_s" else round(med, 3)
        m["ops"] = sum(r.get("ops") or 0 for r in rs)
        m["rounds"] = len(rs)
        m["ops_per_s_rounds"] = [r.get("ops_per_s") for r in rs]
        out.append(m)
    return out


def goals_by_round(per_round: list[list[dict]]) -> list[dict]:
    """Each goal over the rounds: its ratio in every round, the median, and the rounds met."""
    keyed: dict[tuple, list[dict]] = {}
    for goals in per_round:
        for g in goals:
            key = (g["goal"], str(g["concurrency"]), g.get("ref_key", g["ref_name"]))
            keyed.setdefault(key, []).append(g)
    out = []
    for (goal, conc, ref_name), gs in keyed.items():
        ratios = [g["ratio"] for g in gs]
        out.append({"goal": goal, "concurrency": conc, "ref_name": ref_name,
                    "target": gs[0]["target"], "ratios": ratios,
                    "median": round(statistics.median(ratios), 2),
                    "met_rounds": sum(bool(g["met"]) for g in gs), "rounds": len(gs)})
    return out


def rounds_table(summary: list[dict], lines: list[str]) -> None:
    lines += ["| goal | conc | reference | ratio per round | median | target | met in |",
              "|---|---|---|---|---|---|---|"]
    for g in summary:
        lines.append(f"| {g['goal']} | {g['concurrency']} | {g['ref_name']} | "
                     f"{' / '.join(f'{x:.2f}' for x in g['ratios'])} | {g['median']:.2f}x | "
                     f"{_target(g['target'])} | {g['met_rounds']} of {g['rounds']} rounds |")
    lines.append("")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cell", type=float, default=3.0, help="seconds per cell (default 3)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every system this many times, alternating the order")
    ap.add_argument("--only", default="wormspace,etcd,pysyncobj")
    ap.add_argument("--etcd-channels", type=int, default=1,
                    help="grpc.aio channels (HTTP/2 connections) to the etcd leader")
    ap.add_argument("--no-go", action="store_true", help="skip the Go etcd client")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "peers.json"))
    args = ap.parse_args()
    net_bench.stop_on_sigterm()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    parts = set(args.only.split(","))
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {"cell_s": args.cell, "python": platform.python_version(),
                            "rounds": args.rounds, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    t_start = time.monotonic()
    with LoadSampler() as sampler:
        go_bin, go_note = (None, "skipped (--no-go)")
        if "etcd" in parts and not args.no_go:
            sampler.section = "go build"
            go_bin, go_note = build_go_client()
        log(f"go client: {go_note}")

        def run_etcd(k: int) -> list[dict[str, Any]]:
            erows, meta["etcd"] = bench_etcd(args.cell, args.etcd_channels, sampler, go_bin)
            meta["etcd"]["go_client"] = go_note
            return erows

        def run_pysyncobj(k: int) -> list[dict[str, Any]]:
            prows, meta["pysyncobj"] = bench_pysyncobj(args.cell, sampler)
            return prows

        sections = [(name, fn) for name, fn in (("etcd", run_etcd),
                                                 ("pysyncobj", run_pysyncobj),
                                                 ("wormspace", lambda k: bench_wormspace(
                                                     args.cell, sampler)))
                    if name in parts]
        try:
            for k in range(1, args.rounds + 1):
                order = sections if k % 2 else sections[::-1]
                log(f"round {k} of {args.rounds}: {', '.join(name for name, _ in order)}")
                for name, fn in order:
                    sampler.section = f"round {k}: {name}"
                    for r in fn(k):
                        rows.append({**r, "round": k})
        finally:
            if go_bin:
                os.unlink(go_bin)
    meta["loadavg"] = sampler.summary()
    meta["load_samples"] = sampler.samples
    meta["took_s"] = round(time.monotonic() - t_start, 1)
    meta["wormspace_cluster_start_retries"] = STARTUP_FAILURES
    la = meta["loadavg"]
    lines = [f"All on one {la['cpus']}-CPU machine, loopback only, {args.cell:g} s per cell, "
             f"8-byte values; servers and clients share the cores. 1-minute load average during "
             f"the run: min {la['load1_min']}, mean {la['load1_mean']}, max {la['load1_max']} "
             f"(whole run {meta['took_s']} s)."
             + (f" {args.rounds} rounds: every number below is a cell's median over them."
                if args.rounds > 1 else ""), ""]
    goals = report(median_rows(rows), lines)
    lines += ["### Goals" + (" (on the medians of the rounds)" if args.rounds > 1 else ""), ""]
    goals_table(goals, lines)
    per_round = []
    for k in range(1, args.rounds + 1):
        per_round.append(report([r for r in rows if r["round"] == k], []))
    by_round = goals_by_round(per_round)
    if args.rounds > 1:
        lines += ["### Goals round by round (each round's ratio from that round's own rows)", ""]
        rounds_table(by_round, lines)
    print("\n".join(lines))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "rows": rows, "goals": goals, "goals_by_round": by_round,
                   "anchors": {
            "etcd_go_pia": {str(k): {"ops_per_s": v[0], "p50_ms": v[1]}
                            for k, v in ANCHORS["etcd_go_pia"].items()},
            "etcd_py_pia": ANCHORS["etcd_py_pia"], "etcd_get_p50_1_ms": ANCHORS["etcd_get_p50_1"],
            "pysyncobj_best_ops_per_s": ANCHORS["pysyncobj_best"]}}, f, indent=2)
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

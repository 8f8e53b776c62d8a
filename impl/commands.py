"""Command-line subcommands of the implementation (``wormspace server``, ``cluster``, ``wor``;
``kv``, ``log``, ``tx`` and ``demo`` come from :mod:`.apps.commands`).

``register(subparsers)`` is called by ``wormspace.main`` to add them; each subcommand sets
``func`` to a function taking the parsed arguments and returning an exit code.

Exit codes of ``cluster`` and ``wor``: 0 done; 1 the call ended with a WormSpace condition
(PREEMPTED, ALREADY_WRITTEN, TRIMMED, NOT_ALLOCATED, SEALED, contention); 3 the cluster could not
be used (bad cluster or key file, servers unreachable, wrong key, a server failed to start).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

EXIT_CONDITION = 1
EXIT_CLUSTER = 3
ENV_CLUSTER = "WORMSPACE_CLUSTER"
ENV_TRACE = "WORMSPACE_TRACE_DIR"


def register(subparsers: Any) -> None:
    """Add the implementation's subcommands to the ``wormspace`` parser."""
    p = subparsers.add_parser("server", help="run one WormSpace server (asyncio, one process)")
    p.add_argument("--id", required=True, help="this server's id in the cluster file")
    p.add_argument("--cluster", required=True, metavar="FILE", help="the cluster file")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="address to listen on (default: this server's address in the file)")
    p.add_argument("--data", metavar="DIR",
                   help="data directory (default: this server's data in the cluster file)")
    p.add_argument("--memory", action="store_true",
                   help="keep acceptor state in memory only: NOT DURABLE, for benchmarks")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _trace_options(p)
    p.set_defaults(func=cmd_server)

    c = subparsers.add_parser("cluster", help="start, stop or inspect a local cluster")
    csub = c.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    cu = csub.add_parser("up", help="start a local cluster in background processes")
    cu.add_argument("--data", required=True, metavar="DIR", help="cluster directory")
    cu.add_argument("--nodes", type=int, help="number of servers (new cluster; default 3)")
    cu.add_argument("--protocol", choices=["paxos", "chain"],
                    help="Paxos-WOR (2f+1 servers) or Chain-WOR (f+1); default paxos")
    cu.add_argument("--replica-sets", type=int, default=1, metavar="P",
                    help="spread the servers over P replica sets (segment s -> set s mod P)")
    cu.add_argument("--segment-size", type=int, default=1024, metavar="SIZE")
    cu.add_argument("--memory", action="store_true",
                    help="servers keep state in memory only: NOT DURABLE, for benchmarks")
    _trace_options(cu)
    cu.set_defaults(func=cmd_cluster_up)
    cd = csub.add_parser("down", help="stop a local cluster")
    cd.add_argument("--data", required=True, metavar="DIR")
    cd.set_defaults(func=cmd_cluster_down)
    cs = csub.add_parser("status", help="show each server's process and status")
    g = cs.add_mutually_exclusive_group()
    g.add_argument("--data", metavar="DIR")
    g.add_argument("--cluster", metavar="FILE")
    cs.set_defaults(func=cmd_cluster_status)

    w = subparsers.add_parser("wor", help="low-level WormSpace client calls (for manual use)")
    wsub = w.add_subparsers(dest="wor_command", metavar="CALL", required=True)

    def call(name: str, help: str) -> argparse.ArgumentParser:
        sp = wsub.add_parser(name, help=help)
        sp.add_argument("--cluster", metavar="FILE", default=os.environ.get(ENV_CLUSTER),
                        help=f"cluster file (default ${ENV_CLUSTER})")
        sp.add_argument("--timeout", type=float, default=0.5, metavar="SECONDS",
                        help="per-attempt timeout (default 0.5; 6 retries)")
        sp.set_defaults(func=cmd_wor)
        parser: argparse.ArgumentParser = sp
        return parser

    call("capture", "capture the WOR at ADDRESS; prints the capture id").add_argument(
        "address", type=int)
    sp = call("write", "write VALUE at ADDRESS (captures first unless --cid or --unsafe)")
    sp.add_argument("address", type=int)
    sp.add_argument("value", help="the value (UTF-8 text; prefix hex: for bytes)")
    sp.add_argument("--cid", help="capture id printed by `wor capture`")
    sp.add_argument("--unsafe", action="store_true", help="the unsafe write (cid 0)")
    call("read", "read the value at ADDRESS").add_argument("address", type=int)
    sp = call("alloc", "allocate SEGMENT with metadata META (first writer wins)")
    sp.add_argument("segment", type=int)
    sp.add_argument("meta")
    call("check", "print SEGMENT's metadata (or NOT_ALLOCATED)").add_argument("segment", type=int)
    call("trim", "trim SEGMENT").add_argument("segment", type=int)
    call("seal", "seal every configuration epoch below EPOCH").add_argument("epoch", type=int)
    sp = call("listen", "print writes chosen in SEGMENT (bounded by --count and --for)")
    sp.add_argument("segment", type=int)
    sp.add_argument("--count", type=int, default=10, help="stop after this many (default 10)")
    sp.add_argument("--for", dest="seconds", type=float, default=10.0,
                    help="stop after this many seconds (default 10)")
    call("status", "print each server's status")

    # The applications (WormPaxos KV, WormLog, WormTX) and the demo.
    from .apps import commands as app_commands

    app_commands.register(subparsers)


def _trace_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", metavar="DIR", default=os.environ.get(ENV_TRACE) or None,
                   help=f"record trace events in DIR/<server id>.ndjson (default ${ENV_TRACE})")
    p.add_argument("--bug", action="append", default=[], metavar="NAME",
                   help="switch on a planted bug (refinement tests only; repeatable): "
                        "serve_trimmed, ack_before_persist")


# -- server ----------------------------------------------------------------------------------------


def cmd_server(args: argparse.Namespace) -> int:
    """``wormspace server``."""
    from .net import cluster as cluster_file
    from .net import eventloop
    from .net.server import bugs_from_names, run_server
    from .storage import LogError, StorageError

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{args.id}] %(message)s")
    log = logging.getLogger("wormspace.server")
    try:
        bugs = bugs_from_names(args.bug)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        config = cluster_file.load(args.cluster)
        spec = config.servers.get(args.id)
        if spec is None:
            raise cluster_file.ClusterFileError(
                f"{args.cluster}: no server {args.id!r} (servers: {', '.join(config.servers)})")
        host, port = (cluster_file.parse_address(args.listen, "--listen") if args.listen
                      else (spec.host, spec.port))
        data = args.data or spec.data
        memory = args.memory or config.memory
        if not memory and not data:
            raise cluster_file.ClusterFileError(
                f"server {args.id}: no data directory (give --data, or data = in the file)")
        config.key()  # fail now, with a clear message, if the key file is bad
        code: int = eventloop.run(run_server(config, args.id, host, port, data, memory,
                                           trace=args.trace, bugs=bugs))
        return code
    except cluster_file.ClusterFileError as exc:
        log.error("%s", exc)
        return EXIT_CLUSTER
    except (LogError, StorageError) as exc:
        log.error("cannot open the data directory: %s", exc)
        return EXIT_CLUSTER


# -- cluster ---------------------------------------------------------------------------------------


def cmd_cluster_up(args: argparse.Namespace) -> int:
    """``wormspace cluster up``."""
    from .net import local_cluster as lc
    from .net.cluster import ClusterFileError
    from .net.server import bugs_from_names

    try:
        bugs_from_names(args.bug)
    except ValueError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 2
    path = os.path.join(args.data, lc.CLUSTER_FILE)
    try:
        if os.path.exists(path):
            config = lc.load_dir(args.data)
            n = len(config.servers)
            if (args.nodes is not None and args.nodes != n) or (
                args.protocol is not None and args.protocol != config.protocol
            ):
                sys.stderr.write(f"Error: {path} describes a {n}-server {config.protocol} "
                                 "cluster; use another --data directory for a different one\n")
                return EXIT_CLUSTER
        else:
            config = lc.create(args.data, args.nodes or 3, args.protocol or "paxos",
                               replica_sets=args.replica_sets, segment_size=args.segment_size,
                               memory=args.memory)
        pids = lc.up(config, trace=args.trace, bugs=args.bug)
    except (ClusterFileError, lc.ClusterError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER
    mode = "IN MEMORY, NOT DURABLE" if config.memory else "durable"
    print(f"{config.protocol}-WOR cluster of {len(pids)} servers up ({mode})")
    for sid, pid in pids.items():
        print(f"  {sid}  {config.servers[sid].address}  pid {pid}")
    if args.trace:
        print(f"Tracing to {os.path.abspath(args.trace)}/<server id>.ndjson")
    print(f"Cluster file: {config.path}")
    print(f"  export {ENV_CLUSTER}={config.path}")
    return 0


def cmd_cluster_down(args: argparse.Namespace) -> int:
    """``wormspace cluster down``."""
    from .net import local_cluster as lc
    from .net.cluster import ClusterFileError

    try:
        config = lc.load_dir(args.data)
    except ClusterFileError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER
    for sid, what in lc.down(config).items():
        print(f"  {sid}  {what}")
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    """``wormspace cluster status``: process (for local clusters) and ping of each server."""
    from .net import cluster as cluster_file
    from .net import local_cluster as lc

    try:
        if args.data:
            config = lc.load_dir(args.data)
        else:
            config = cluster_file.load(_cluster_path(args.cluster))
        key = config.key()
    except cluster_file.ClusterFileError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER
    up = 0
    print(f"{config.protocol}-WOR cluster {config.path}")
    for sid, spec in config.servers.items():
        pid = lc.server_pid(config, sid) if args.data else None
        try:
            info = lc.ping(spec, key)
            mode = "durable" if info.get("durable") else "IN MEMORY"
            state, up = f"up ({mode}, pid {info.get('pid')})", up + 1
        except (OSError, lc.ClusterError) as exc:
            state = f"DOWN ({exc})" + (f"; process {pid} alive" if pid else "")
        print(f"  {sid}  {spec.address}  {state}")
    return 0 if up == len(config.servers) else EXIT_CLUSTER


def _cluster_path(path: str | None) -> str:
    from .net.cluster import ClusterFileError

    if not path:
        raise ClusterFileError(f"no cluster file: give --cluster FILE or set ${ENV_CLUSTER}")
    return path


# -- wor -------------------------------------------------------------------------------------------


def _value(text: str) -> bytes:
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    return text.encode()


def _show(value: bytes) -> str:
    try:
        text = value.decode()
        if text.isprintable() and not text.startswith("hex:"):
            return text
    except UnicodeDecodeError:
        pass
    return "hex:" + value.hex()


def cmd_wor(args: argparse.Namespace) -> int:
    """``wormspace wor CALL``."""
    from .net import client as cl
    from .net.cluster import ClusterFileError
    from .net.segments import BadAddress

    try:
        client = cl.WormSpaceClient.from_file(_cluster_path(args.cluster), timeout=args.timeout)
    except ClusterFileError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER

    async def run() -> int:
        async with client:
            return await _wor_call(client, args)

    try:
        return asyncio.run(run())
    except (cl.Trimmed, cl.NotAllocated, cl.Sealed, cl.Contention) as exc:
        print(f"{exc.code}: {exc}")
        return EXIT_CONDITION
    except (cl.Unavailable, cl.WrongKey, cl.ServerError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER
    except (BadAddress, ValueError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER


async def _wor_call(client: Any, args: argparse.Namespace) -> int:
    from .core.ops import Outcome
    from .net.client import UNSAFE, Capture

    name = args.wor_command
    if name == "capture":
        cap = await client.capture(args.address)
        print(f"cid {cap.token()}" + ("" if cap.adopted is None else
                                      f"  (adopted {_show(cap.adopted)}: a write finishes it)"))
        return 0
    if name == "write":
        cid: Capture | int | None = None
        if args.cid and args.unsafe:
            raise ValueError("give --cid or --unsafe, not both")
        if args.cid:
            cid = Capture.from_token(args.address, args.cid)
        elif args.unsafe:
            cid = UNSAFE
        outcome = await client.write(args.address, _value(args.value), cid)
        print(outcome.value.upper())
        return 0 if outcome is Outcome.OK else EXIT_CONDITION
    if name == "read":
        value = await client.read(args.address)
        print("EMPTY" if value is None else _show(value))
        return 0
    if name == "alloc":
        won = await client.alloc(args.segment, _value(args.meta))
        meta = await client.check(args.segment)
        print(("OK" if won else "ALREADY_ALLOCATED") + f" meta={_show(meta or b'')}")
        return 0 if won else EXIT_CONDITION
    if name == "check":
        meta = await client.check(args.segment)
        print("NOT_ALLOCATED" if meta is None else f"ALLOCATED meta={_show(meta)}")
        return 0
    if name == "trim":
        await client.trim(args.segment)
        print("TRIMMED")
        return 0
    if name == "seal":
        await client.seal(args.epoch)
        print(f"SEALED epochs below {args.epoch}")
        return 0
    if name == "listen":
        return await _listen(client, args)
    if name == "status":
        for sid, info in (await client.status()).items():
            print(f"{sid}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
        return 0
    raise AssertionError(name)


async def _listen(client: Any, args: argparse.Namespace) -> int:
    got = 0
    done = asyncio.Event()

    def on_write(address: int, value: bytes) -> None:
        nonlocal got
        got += 1
        print(f"{address} {_show(value)}", flush=True)
        if got >= args.count:
            done.set()

    listener = await client.listen(args.segment, on_write)
    try:
        await asyncio.wait_for(done.wait(), args.seconds)
    except TimeoutError:
        pass
    await listener.close()
    return 0


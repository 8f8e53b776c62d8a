"""The applications' subcommands: ``wormspace kv``, ``log``, ``tx`` and ``demo``.

Client commands take ``--cluster FILE`` (default ``$WORMSPACE_CLUSTER``). Exit codes as for
``wor``: 0 done; 1 a WormSpace or application condition (a failed cas, an aborted transaction,
TRIMMED...); 3 the cluster cannot be used (bad cluster file, unreachable, wrong key).

Each command is a short-lived process, so ``kv`` writes elect a leader per call (one segment
each) and ``tx`` runs its RMs in-process, with their WALs under ``--wal DIR``; a long-running
program uses the library for a sticky leader (see ``demo`` and ``bench/apps_bench.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import KV_BASE, LOG_BASE, TX_BASE

EXIT_CONDITION = 1
EXIT_CLUSTER = 3
ENV_CLUSTER = "WORMSPACE_CLUSTER"


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="FILE", default=os.environ.get(ENV_CLUSTER),
                   help=f"cluster file (default ${ENV_CLUSTER})")
    p.add_argument("--timeout", type=float, default=0.5, metavar="SECONDS",
                   help="per-attempt timeout of WormSpace calls (default 0.5; 6 retries)")


def register(subparsers: Any) -> None:
    """Add ``kv``, ``log``, ``tx`` and ``demo`` to the ``wormspace`` parser."""
    kv = subparsers.add_parser("kv", help="WormPaxos replicated key-value store")
    ksub = kv.add_subparsers(dest="kv_command", metavar="ACTION", required=True)
    kv_calls: list[tuple[str, str, list[str]]] = [
        ("put", "set KEY to VALUE", ["key", "value"]),
        ("get", "print KEY's value (linearizable)", ["key"]),
        ("delete", "remove KEY", ["key"]),
        ("cas", "set KEY to NEW if it is EXPECTED ('-': absent / delete)",
         ["key", "expected", "new"]),
        ("dump", "print every key and value", []),
    ]
    for name, text, kv_args in kv_calls:
        sp = ksub.add_parser(name, help=text)
        for a in kv_args:
            sp.add_argument(a)
        _client_args(sp)
        sp.add_argument("--id", default=f"cli-{os.getpid()}", help="this replica's name")
        sp.add_argument("--base", type=int, default=KV_BASE, metavar="SEGMENT",
                        help=f"first segment of the KV log (default {KV_BASE})")
        sp.set_defaults(func=cmd_kv)

    lg = subparsers.add_parser("log", help="WormLog shared log and its sequencer")
    lsub = lg.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    sp = lsub.add_parser("sequencer", help="run a sequencer (until SIGTERM/SIGINT)")
    _client_args(sp)
    sp.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                    help="address to serve on (default 127.0.0.1:0, any free port)")
    sp.add_argument("--id", default=f"seq-{os.getpid()}", help="this sequencer's name")
    log_calls: list[tuple[str, str, str | None]] = [
        ("append", "append VALUEs; prints each one's address", "value"),
        ("read", "print the entry at ADDRESS (or ADDRESS..--to)", "address"),
        ("tail", "print the tail (next address to be handed out)", None),
        ("fill", "fill ADDRESS with junk (a chosen value survives)", "address"),
        ("trim", "trim every segment entirely below PREFIX", "prefix"),
    ]
    for name, text, arg in log_calls:
        sp2 = lsub.add_parser(name, help=text)
        if arg == "value":
            sp2.add_argument(arg, nargs="+")
        elif arg is not None:
            sp2.add_argument(arg, type=int)
        if name == "read":
            sp2.add_argument("--to", type=int, metavar="END", help="read [ADDRESS, END)")
        _client_args(sp2)
        sp2.add_argument("--sequencer", metavar="HOST:PORT",
                         help="sequencer address (default: found in the log's metadata)")
        sp2.add_argument("--no-fallback", action="store_true",
                         help="fail instead of becoming a sequencer when none answers")
    for sp3 in lsub.choices.values():
        sp3.add_argument("--base", type=int, default=LOG_BASE, metavar="SEGMENT",
                         help=f"first segment of the log (default {LOG_BASE})")
        sp3.set_defaults(func=cmd_log)

    tx = subparsers.add_parser("tx", help="WormTX transactions across resource managers")
    tsub = tx.add_subparsers(dest="tx_command", metavar="ACTION", required=True)
    sp = tsub.add_parser("run", help="run one transaction across in-process RMs")
    _client_args(sp)
    sp.add_argument("--set", action="append", default=[], metavar="RM:KEY=VALUE",
                    help="write KEY=VALUE at resource manager RM (repeat)")
    sp.add_argument("--expect", action="append", default=[], metavar="RM:KEY=VALUE",
                    help="vote NO at RM unless KEY is VALUE ('-': absent) (repeat)")
    sp.add_argument("--variant", choices=["e3", "a8"], default="e3")
    sp.add_argument("--stall", action="append", default=[], metavar="RM",
                    help="make RM stall before voting (its peers write NO for it)")
    sp.add_argument("--vote-timeout", type=float, default=0.5, metavar="SECONDS")
    sp2 = tsub.add_parser("show", help="print each RM's committed state (from its WAL)")
    sp2.add_argument("rms", nargs="*", metavar="RM", help="RMs to show (default: all)")
    for sp4 in (sp, sp2):
        sp4.add_argument("--wal", metavar="DIR",
                         help="RM WAL directory (default: tx-wal next to the cluster file)")
        sp4.add_argument("--base", type=int, default=TX_BASE, metavar="SEGMENT")
        sp4.set_defaults(func=cmd_tx)
    sp2.add_argument("--cluster", metavar="FILE", default=os.environ.get(ENV_CLUSTER))

    demo = subparsers.add_parser(
        "demo", help="start a local cluster, run WormPaxos, WormLog and WormTX, stop it")
    demo.add_argument("--data", metavar="DIR", help="cluster directory (default: a temp dir)")
    demo.add_argument("--nodes", type=int, default=3)
    demo.add_argument("--protocol", choices=["paxos", "chain"], default="paxos")
    demo.set_defaults(func=cmd_demo)


# -- shared ---------------------------------------------------------------------------------------


def _value(text: str) -> bytes:
    return bytes.fromhex(text[4:]) if text.startswith("hex:") else text.encode()


def show(value: bytes | None) -> str:
    """A value for printing: text if printable, else ``hex:...``."""
    if value is None:
        return "(none)"
    try:
        text = value.decode()
        if text.isprintable() and not text.startswith("hex:"):
            return text
    except UnicodeDecodeError:
        pass
    return "hex:" + value.hex()


def _run_client(args: argparse.Namespace,
                body: Callable[[Any], Awaitable[int]]) -> int:
    """Open a client for ``--cluster``, run ``body(client)``, map errors to exit codes."""
    from ..net import client as cl
    from ..net.cluster import ClusterFileError
    from ..net.segments import BadAddress
    from .wormlog import NoSequencer
    from .wormpaxos import NotLeader
    from .wormtx import TxError

    try:
        if not args.cluster:
            raise ClusterFileError(f"no cluster file: give --cluster FILE or set ${ENV_CLUSTER}")
        client = cl.WormSpaceClient.from_file(args.cluster, timeout=args.timeout)
    except ClusterFileError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER

    async def run() -> int:
        async with client:
            return await body(client)

    try:
        return asyncio.run(run())
    except (cl.Trimmed, cl.NotAllocated, cl.Sealed, cl.Contention) as exc:
        print(f"{exc.code}: {exc}")
        return EXIT_CONDITION
    except (NotLeader, NoSequencer) as exc:
        print(f"{type(exc).__name__}: {exc}")
        return EXIT_CONDITION
    except (cl.Unavailable, cl.WrongKey, cl.ServerError, cl.ServerUnreachable) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER
    except (BadAddress, TxError, ValueError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        return 130


# -- kv -------------------------------------------------------------------------------------------


def cmd_kv(args: argparse.Namespace) -> int:
    """``wormspace kv ACTION``."""
    from .wormpaxos import KVStore

    async def body(client: Any) -> int:
        kv = KVStore(client, args.id, base=args.base)
        name = args.kv_command
        if name == "put":
            await kv.put(args.key, _value(args.value))
            print("OK")
        elif name == "get":
            value = await kv.get(args.key)
            print("NOT_FOUND" if value is None else show(value))
            return 0 if value is not None else EXIT_CONDITION
        elif name == "delete":
            print("DELETED" if await kv.delete(args.key) else "NOT_FOUND")
        elif name == "cas":
            exp = None if args.expected == "-" else _value(args.expected)
            new = None if args.new == "-" else _value(args.new)
            ok = await kv.cas(args.key, exp, new)
            print("OK" if ok else "FAILED (the current value differs)")
            return 0 if ok else EXIT_CONDITION
        elif name == "dump":
            for k, v in sorted((await kv.items()).items()):
                print(f"{k} = {show(v)}")
        return 0

    return _run_client(args, body)


# -- log ------------------------------------------------------------------------------------------


def cmd_log(args: argparse.Namespace) -> int:
    """``wormspace log ACTION``."""
    if args.log_command == "sequencer":
        return _cmd_sequencer(args)
    from .wormlog import WormLog

    async def body(client: Any) -> int:
        wl = WormLog(client, sequencer=args.sequencer, base=args.base,
                     fallback=not args.no_fallback)
        try:
            name = args.log_command
            if name == "append":
                for v in args.value:
                    print(await wl.append(_value(v)))
                if wl.fallbacks:
                    print(f"(no sequencer answered: this process took over as sequencer "
                          f"{wl.local.seq_id if wl.local else ''})", file=sys.stderr)
            elif name == "read":
                end = args.to if args.to is not None else args.address + 1
                if end - args.address > 10000:
                    raise ValueError("read at most 10000 addresses at once")
                for e in await wl.read_range(args.address, end):
                    tail = f" {show(e.value)}" if e.value is not None else ""
                    print(f"{e.address} {e.status.value.upper()}{tail}")
            elif name == "tail":
                print(await wl.check_tail())
            elif name == "fill":
                e = await wl.fill(args.address)
                print(e.status.value.upper() + (f" {show(e.value)} (a chosen value survives)"
                                                 if e.value is not None else ""))
            elif name == "trim":
                segs = await wl.trim(args.prefix)
                print(f"TRIMMED {len(segs)} segment(s)" + (f" {segs[0]}..{segs[-1]}"
                                                            if segs else ""))
            return 0
        finally:
            await wl.close()

    return _run_client(args, body)


def _cmd_sequencer(args: argparse.Namespace) -> int:
    import logging

    from ..net import gctune
    from ..net.cluster import ClusterFileError, load, parse_address
    from .sequencer import run_sequencer

    logging.basicConfig(level="INFO", stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{args.id}] %(message)s")
    try:
        if not args.cluster:
            raise ClusterFileError(f"no cluster file: give --cluster FILE or set ${ENV_CLUSTER}")
        load(args.cluster).key()
        host, port = parse_address(args.listen, "--listen")
    except ClusterFileError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER

    def ready(address: str, term: Any, seq: Any) -> None:
        print(f"sequencer {args.id} listening on {address}; segment {term.start}; "
              f"filled {seq.took_over or 'nothing'}", flush=True)
        gctune.tune()  # a long-running process, from here on serving (impl/net/gctune.py)

    return _run_client(args, lambda _c: run_sequencer(args.cluster, args.id, host, port,
                                                      base=args.base, ready=ready))


# -- tx -------------------------------------------------------------------------------------------


def _rm_spec(text: str, what: str) -> tuple[str, str, str]:
    rm, sep, rest = text.partition(":")
    key, eq, value = rest.partition("=")
    if not (sep and eq and rm and key):
        raise ValueError(f"{what} {text!r}: expected RM:KEY=VALUE")
    return rm, key, value


def _wal_dir(args: argparse.Namespace) -> str:
    if args.wal:
        return str(args.wal)
    if not args.cluster:
        raise ValueError(f"give --wal DIR (or --cluster FILE / ${ENV_CLUSTER})")
    return os.path.join(os.path.dirname(os.path.abspath(args.cluster)), "tx-wal")


def cmd_tx(args: argparse.Namespace) -> int:
    """``wormspace tx run|show``."""
    from .wormtx import COMMIT, Ops, ResourceManager, TxError, WormTX

    try:
        wal = _wal_dir(args)
    except ValueError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER
    if args.tx_command == "show":
        return _tx_show(wal, args.rms)
    try:
        ops: dict[str, Ops] = {}
        for s in args.set:
            rm, k, v = _rm_spec(s, "--set")
            ops.setdefault(rm, Ops()).writes[k] = _value(v)
        for s in args.expect:
            rm, k, v = _rm_spec(s, "--expect")
            ops.setdefault(rm, Ops()).expect[k] = None if v == "-" else _value(v)
        if not ops:
            raise ValueError("nothing to do: give --set RM:KEY=VALUE")
    except ValueError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER

    async def body(client: Any) -> int:
        from ..net.client import WormSpaceClient

        rms: dict[str, ResourceManager] = {}
        try:
            for name in sorted(ops):
                c = WormSpaceClient(client.config, timeout=client.timeout)
                rms[name] = ResourceManager(name, c, os.path.join(wal, name),
                                            vote_timeout=args.vote_timeout)
            for name, rm in rms.items():
                for tx, d in (await rm.recover()).items():
                    print(f"RM {name}: resolved in-doubt transaction {tx}: {d.upper()}")
                rm.stall = 2 * args.vote_timeout if name in args.stall else 0.0
            r = await WormTX(client, rms, base=args.base,
                             vote_timeout=args.vote_timeout).run(ops, variant=args.variant)
            print(f"transaction {r.tx} ({r.variant.upper()}, attempt {r.attempts}): "
                  f"{r.decision.upper()}")
            for name in sorted(rms):
                forced = " (written by a peer that timed out)" if name in r.forced else ""
                print(f"  {name}: vote {show(r.votes[name])}{forced}; outcome "
                      f"{r.outcomes[name]}; state {_fmt(rms[name].store)}")
            return 0 if r.decision == COMMIT else EXIT_CONDITION
        finally:
            for rm in rms.values():
                rm.close()
                await rm.client.close()

    try:
        return _run_client(args, body)
    except TxError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_CLUSTER


def _fmt(store: dict[str, bytes]) -> str:
    return "{" + ", ".join(f"{k}={show(v)}" for k, v in sorted(store.items())) + "}"


def _tx_show(wal: str, names: list[str]) -> int:
    from .wormtx import ResourceManager, TxError

    if not os.path.isdir(wal):
        sys.stderr.write(f"Error: no WAL directory {wal}\n")
        return EXIT_CLUSTER
    for name in names or sorted(os.listdir(wal)):
        try:
            rm = ResourceManager(name, None, os.path.join(wal, name))  # type: ignore[arg-type]
        except TxError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            return EXIT_CLUSTER
        doubt = f"; in doubt: {sorted(rm.prepared)}" if rm.prepared else ""
        print(f"{name}: {_fmt(rm.store)}{doubt}")
        rm.close()
    return 0


# -- demo -----------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """``wormspace demo``."""
    from .demo import run_demo

    return run_demo(args.data, args.nodes, args.protocol)

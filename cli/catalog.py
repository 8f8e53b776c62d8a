"""The catalog: every registered specification and model, by name.

Targets are imported only when used, so ``wormspace list`` stays fast.
"""

from __future__ import annotations

from wormspace.checker.registry import Entry, Param

_RM = Param(3, "number of resource managers")

ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="tcommit",
        kind="spec",
        target="wormspace.spec.tcommit:TCommit",
        description="atomic commit (Gray & Lamport's TCommit); the spec WormTX refines",
        params={"rm": _RM},
    ),
    Entry(
        name="twophase",
        kind="model",
        target="wormspace.model.examples.twophase:TwoPhase",
        description="two-phase commit (Gray & Lamport's TwoPhase)",
        params={
            "rm": _RM,
            "bug": Param("", "a seeded bug", ("", "commit_without_all_prepared")),
        },
        refines="tcommit",
    ),
)

_PAXOS_BUGS = ("", "accept_below_promise", "ignore_promised_values", "read_without_repair",
               "half_quorum", "shared_ballots", "forget_promise")

ENTRIES += (
    Entry(
        name="wor",
        kind="spec",
        target="wormspace.spec.wor:WOR",
        description="the atomic write-once register (capture, write, read; docs/layers/wor.md)",
        params={"clients": Param(2, "number of clients"), "values": Param(2, "number of values")},
    ),
    Entry(
        name="wor.paxos",
        kind="model",
        target="wormspace.model.wor.paxos:PaxosWOR",
        description="Paxos-WOR: acceptors, message-set network, capture/write/read with repair",
        params={
            "acceptors": Param(3, "number of acceptors (2f+1)"),
            "clients": Param(2, "number of clients"),
            "values": Param(2, "number of values"),
            "rounds": Param(1, "ballots per client"),
            # Unsafe writes (cid 0) multiply the state space (2 clients, 1 value: 396,615
            # states with them); the default configuration leaves them out.
            "unsafe": Param(False, "allow the unsafe write (cid 0)"),
            "bug": Param("", "a seeded bug", _PAXOS_BUGS),
            "give_up": Param("any", "when a client may time out: any time, or once preempted",
                             ("any", "preempted")),
            "live": Param(-1, "with --liveness: acceptors 0..live-1 are fair (-1: a majority)"),
        },
        refines="wor",
        proof="wormspace.model.wor.paxos_z3:proof_suite",
        conformance="wormspace.model.wor.paxos_z3:conformance",
    ),
    Entry(
        name="wor.chain",
        kind="model",
        target="wormspace.model.wor.chain:ChainWOR",
        description="Chain-WOR: f+1 nodes, capture and write head to tail, read from the tail",
        params={
            "nodes": Param(2, "chain length (f+1)"),
            "clients": Param(2, "number of clients"),
            "values": Param(2, "number of values"),
            "rounds": Param(1, "captures per client"),
            "crashes": Param(1, "node crashes allowed (a crashed node blocks writes)"),
        },
        refines="wor",
        proof="wormspace.model.wor.chain_z3:proof_suite",
        conformance="wormspace.model.wor.chain_z3:conformance",
    ),
)

_WOS_PARAMS = {
    "segments": Param(1, "segments"),
    "size": Param(1, "addresses per segment"),
    "clients": Param(2, "clients"),
    "values": Param(1, "data values"),
    "metas": Param(2, "metadata values"),
    "replica_sets": Param(1, "replica sets P (segment s is served by s mod P)"),
    "epochs": Param(2, "configurations (epochs - 1 seals)"),
    "ops": Param(2, "operations per client (free menu)"),
    "timeouts": Param(False, "clients may give up"),
    "menu": Param("alloc,check,trim,capture,write,read", "operations clients choose from"),
    # Scripts keep the state space small while every interleaving and every register
    # behaviour is explored. The default races two allocs, trims, and checks (it exercises
    # all four seeded bugs); the report adds a workload that captures, writes and reads data.
    "workload": Param("alloc1,write1,trim/alloc2,check",
                      "per-client scripts separated by '/'; '' = free menu"),
}

ENTRIES += (
    Entry(
        name="wos",
        kind="spec",
        target="wormspace.spec.wos:WOS",
        description="the atomic WormSpace interface: alloc/check/trim, capture/write/read, "
        "batch ranges, seal (docs/layers/wos.md)",
        params=_WOS_PARAMS,
    ),
    Entry(
        name="wos.segments",
        kind="model",
        target="wormspace.model.wos.segments:Segments",
        description="WormSpace segments over WORs (lower=wor: layered; lower=wor.paxos: flat)",
        params={
            **_WOS_PARAMS,
            "lower": Param("wor", "the WOR model underneath", ("wor", "wor.paxos")),
            "acceptors": Param(3, "Paxos acceptors (lower=wor.paxos)"),
            "rounds": Param(1, "Paxos ballots per client (lower=wor.paxos)"),
            "bug": Param("", "a seeded bug", ("", "alloc_without_capture", "trim_not_completed",
                                              "batch_write_unchecked", "sealed_accept",
                                              "notify_unwritten")),
        },
        refines="wos",
        proof="wormspace.model.wos.segments_z3:proof_suite",
        conformance="wormspace.model.wos.segments_z3:conformance",
    ),
)

_WORMPAXOS_BUGS = ("", "no_hole_filling", "no_capture", "ack_before_apply")

ENTRIES += (
    Entry(
        name="smr",
        kind="spec",
        target="wormspace.spec.smr:SMR",
        description="the atomic replicated state machine: one log, replicas apply prefixes; "
        "linearizable = acknowledged in real-time order (spec/smr.py)",
        params={"replicas": Param(2, "replicas"), "commands": Param(2, "commands"),
                "positions": Param(2, "log positions"),
                "linearizable": Param(True, "acknowledge only above a decided prefix")},
    ),
    Entry(
        name="apps.wormpaxos",
        kind="model",
        target="wormspace.model.apps.wormpaxos:WormPaxos",
        description="WormPaxos: SMR over the atomic WormSpace (sticky leader with takeover, "
        "or rotating Mencius-like turns)",
        params={
            "procs": Param(2, "replicas"),
            "leaders": Param(2, "processes that may lead (the first ones)"),
            "commands": Param(2, "commands"),
            "segments": Param(2, "segments"),
            "size": Param(2, "addresses per segment"),
            "crashes": Param(1, "processes that may fail"),
            "policy": Param("sticky", "leadership policy", ("sticky", "rotating")),
            "bug": Param("", "a seeded bug (ack_before_apply needs policy=rotating)",
                         _WORMPAXOS_BUGS),
        },
        refines="smr",
        proof="wormspace.model.apps.wormpaxos_z3:proof_suite",
        conformance="wormspace.model.apps.wormpaxos_z3:conformance",
    ),
)

ENTRIES += (
    Entry(name="sharedlog", kind="spec", target="wormspace.spec.sharedlog:SharedLog",
          description="the atomic shared log: append/read/fill/check_tail/trim (docs/layers/wormlog.md)",
          params={"clients": Param(2, "clients"), "values": Param(1, "values"),
                  "addresses": Param(2, "addresses")}),
    Entry(name="apps.wormlog", kind="model", target="wormspace.model.apps.wormlog:WormLog",
          description="WormLog: sequencers pre-capture segments, clients append with one write, "
          "readers fill holes, failover by alloc; over the atomic WOS",
          params={"segments": Param(2, "segments"), "size": Param(2, "addresses per segment"),
                  "sequencers": Param(2, "sequencers (failover = alloc of the next segment)"),
                  "values": Param(1, "values (client c appends c % values + 1)"),
                  "workload": Param("append,append/read,tail,trim",
                                    "per-client scripts separated by '/': append, read, tail, trim[K]"),
                  "bug": Param("", "a seeded bug", ("", "duplicate_address", "fill_overwrites",
                                                    "append_ignores_preempted", "stale_tail"))},
          refines="sharedlog", proof="wormspace.model.apps.wormlog_z3:proof_suite",
          conformance="wormspace.model.apps.wormlog_z3:conformance"),
)

ENTRIES += (
    Entry(
        name="apps.wormtx",
        kind="model",
        target="wormspace.model.apps.wormtx:WormTX",
        description="WormTX atomic commit over the atomic WOS: E3 (vote WORs, listen, timed-out "
        "RMs force NO) or A8 (TMs writing one decision WOR); refines tcommit",
        params={
            "rm": _RM,
            "variant": Param("E3", "E3: no coordinator; A8: transaction managers", ("E3", "A8")),
            "precaptured": Param(False, "E3: the starter's capture_range hands each RM its vote WOR"),
            "tms": Param(2, "A8: transaction managers (TM 0 primary, the rest backups)"),
            "flaky": Param(False, "WOS operations may answer TIMEOUT"),
            "bug": Param("", "a seeded bug", ("", "timeout_overwrites_yes", "partial_commit",
                                              "empty_read_aborts")),
        },
        refines="tcommit",
        proof="wormspace.model.apps.wormtx_z3:proof_suite",
        conformance="wormspace.model.apps.wormtx_z3:conformance",
    ),
)

ENTRIES += (
    Entry(
        name="impl.core",
        kind="model",
        target="wormspace.refinement_tests.core_model:CoreWOR",
        description="the real impl/core Paxos-WOR code (acceptor, client ops, ballots) in a "
        "modelled network with crashes, explored exhaustively; refines wor",
        params={
            "acceptors": Param(3, "acceptors"),
            "clients": Param(2, "clients"),
            "values": Param(2, "values"),
            "rounds": Param(1, "attempts per operation (retries at a higher ballot)"),
            "crashes": Param(1, "acceptor crashes that lose unpersisted records "
                             "(ack_before_persist; with a correct core a restart loses nothing)"),
            "ops": Param(1, "operations per client from the free menu (workload='')"),
            "workload": Param("write1/write2|read", "per-client menus separated by '/', "
                              "alternatives by '|'"),
            "timeouts": Param(True, "clients may give up (Unavailable, or PREEMPTED early once refused)"),
            "bug": Param("", "a planted bug of impl/core/bugs.py",
                         ("", "ack_before_persist", "arbitrary_adopt", "read_without_repair",
                          "reuse_capture_id")),
        },
        refines="wor",
    ),
)

BY_NAME = {e.name: e for e in ENTRIES}

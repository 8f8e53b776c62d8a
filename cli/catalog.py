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

BY_NAME = {e.name: e for e in ENTRIES}

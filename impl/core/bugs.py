"""Planted bugs: switches that make the cores wrong on purpose, for refinement tests.

All are off by default. A trace checker that cannot catch a planted bug is not checking much;
each switch below breaks one thing the models and specs promise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bugs:
    """Which planted bugs are on (pass to Acceptor, ops and BallotCounter)."""

    #: Acceptor: the reply may be sent before its records are persisted (``Persist.deferred``).
    ack_before_persist: bool = False
    #: Proposer: adopt the lowest-ballot accepted value among promises, not the highest.
    arbitrary_adopt: bool = False
    #: Reader: return the highest accepted value seen without completing (repairing) the write.
    read_without_repair: bool = False
    #: Client: a new capture reuses the previous capture id instead of a higher one.
    reuse_capture_id: bool = False
    #: Acceptor: ignore the trimmed mark and serve the segment (from its dropped, empty state).
    serve_trimmed: bool = False


NO_BUGS = Bugs()

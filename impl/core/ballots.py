"""Ballot (capture id) allocation for one client: pure, deterministic, no clock."""

from __future__ import annotations

from .bugs import NO_BUGS, Bugs
from .messages import Ballot, InvalidMessage


class BallotCounter:
    """Hands out ballots ``(round, client_id)`` with strictly increasing rounds.

    ``client_id`` must be non-zero and unique per client: that makes every ballot unique, and
    ballot ``(0, 0)`` stays reserved for the unsafe write.
    """

    def __init__(self, client_id: int, *, bugs: Bugs = NO_BUGS) -> None:
        if type(client_id) is not int or client_id <= 0:
            raise InvalidMessage(f"client_id must be a positive int, got {client_id!r}")
        self.client_id = client_id
        self.round = 0
        self.bugs = bugs

    def next(self, above: Ballot | None = None) -> Ballot:
        """A fresh ballot, higher than every earlier one and than ``above`` (a ballot that
        preempted us, so the retry can win)."""
        if self.bugs.reuse_capture_id and self.round > 0:
            return (self.round, self.client_id)  # planted bug: the same capture id again
        self.round += 1
        if above is not None and above[0] >= self.round:
            self.round = above[0] + 1
        return (self.round, self.client_id)

"""Helpers the applications share over the WormSpace client: segment scans and batch capture.

Applications allocate segments in order from a base segment (leader terms, sequencer terms,
transactions), so "the last allocated segment" is found by checking segments upwards.
"""

from __future__ import annotations

from ..core.messages import MAX_RANGE
from ..net.client import Capture, Trimmed, WormSpaceClient


async def is_allocated(client: WormSpaceClient, segment: int) -> bool:
    """Whether ``segment`` was allocated (a trimmed segment was, so it counts)."""
    try:
        return await client.check(segment) is not None
    except Trimmed:
        return True


async def last_allocated(client: WormSpaceClient, start: int) -> int | None:
    """The highest allocated segment of the run starting at ``start`` (None: ``start`` is free).

    Relies on the applications' rule that segments are allocated contiguously from their base:
    everyone allocates "last + 1", so the first free segment ends the run.
    """
    if not await is_allocated(client, start):
        return None
    s = start
    while await is_allocated(client, s + 1):
        s += 1
    return s


async def capture_offsets(client: WormSpaceClient, segment: int, lo: int, hi: int) -> list[Capture]:
    """Capture offsets ``[lo, hi)`` of ``segment`` in as few range captures as the wire allows."""
    caps: list[Capture] = []
    for a in range(lo, hi, MAX_RANGE):
        caps += await client.capture_range(segment, a, min(hi, a + MAX_RANGE))
    return caps


async def write_offsets(client: WormSpaceClient, segment: int, lo: int, values: list[bytes],
                        caps: list[Capture]) -> list[object]:
    """``write_range`` in chunks of at most MAX_RANGE offsets (per-offset outcomes)."""
    out: list[object] = []
    for i in range(0, len(values), MAX_RANGE):
        out += await client.write_range(segment, lo + i, values[i:i + MAX_RANGE],
                                        caps[i:i + MAX_RANGE])
    return out

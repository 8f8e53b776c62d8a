"""Helpers the applications share over the WormSpace client: segment scans and batch capture.

Applications allocate segments in order from a base segment (leader terms, sequencer terms,
transactions), so "the last allocated segment" is found by a galloping search upwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import msgpack

from ..core.messages import MAX_RANGE
from ..net.client import Capture, Trimmed, WormSpaceClient
from . import KV_BASE, LOG_BASE, TX_BASE


async def is_allocated(client: WormSpaceClient, segment: int) -> bool:
    """Whether ``segment`` was allocated (a trimmed segment was, so it counts)."""
    return await _in_run(client, segment, None)


def app_meta(app: str, fields: Mapping[str, object], base: int | None) -> bytes:
    """A segment's metadata as an application writes it: ``{"app": app, **fields, "base":
    base}`` in msgpack (no ``base`` key if None); :func:`member_of` reads it back."""
    meta: dict[str, object] = {"app": app, **fields}
    if base is not None:
        meta["base"] = base
    out: bytes = msgpack.packb(meta)
    return out


def member_of(app: str, base: int) -> Callable[[bytes], bool]:
    """Whether a segment's metadata says it belongs to ``app``'s run from ``base``.

    Every application writes ``{"app": ..., "base": ...}`` into the metadata of the segments
    it allocates. Metadata of another application, or of the same one from another base, is
    not ours; metadata without those keys (written before they existed, or not an
    application's) cannot be told apart and counts as ours, as every allocated segment did.
    """

    def ours(meta: bytes) -> bool:
        try:
            m = msgpack.unpackb(meta)
        except Exception:
            return True
        if not isinstance(m, dict):
            return True
        if "app" in m and m["app"] != app:
            return False
        return bool(m.get("base", base) == base)

    return ours


async def _in_run(client: WormSpaceClient, segment: int,
                  ours: Callable[[bytes], bool] | None) -> bool:
    """Whether ``segment`` is allocated and, if ``ours`` is given, its metadata is ours (a
    trimmed segment counts: its metadata is gone)."""
    try:
        meta = await client.check(segment)
    except Trimmed:
        return True
    return meta is not None and (ours is None or ours(meta))


#: Segments probed together in each round trip of :func:`last_allocated`.
_PROBES = 4


def region_end(start: int) -> int | None:
    """The first default application base above ``start`` (None above the last one): where
    the region holding ``start`` ends in the default layout (KV, log, transactions)."""
    above = [b for b in (KV_BASE, LOG_BASE, TX_BASE) if b > start]
    return min(above) if above else None


async def last_allocated(client: WormSpaceClient, start: int, limit: int | None = -1,
                         ours: Callable[[bytes], bool] | None = None) -> int | None:
    """The highest allocated segment of the run starting at ``start`` (None: ``start`` is free).

    Relies on the applications' rule that segments are allocated contiguously from their base:
    everyone allocates "last + 1", and an allocation (even a trimmed one) is never undone, so
    the allocated segments are always one run ``[start, last]`` and the first free segment ends
    it. So the search gallops, then narrows, probing :data:`_PROBES` segments together (one
    round trip): while every probe is allocated it probes ahead as far again as the run is
    proven long (``lo + w, lo + 2w, ..., lo + 4w`` with ``4w`` about ``lo - start``), then it
    splits the gap below the first free probe into five until it is one segment wide. A run of
    ``n`` segments costs about ``1.4 log2(n)`` round trips instead of ``n + 1`` (a run of
    10,000 segments: 19 round trips and 71 checks instead of 10,001).

    It probes up to about twice the run's length past ``start``, so it may meet segments of
    another run (another application's, or the same application's from a nearby custom base).
    ``ours`` (see :func:`member_of`) tells them apart by their metadata: a segment it rejects
    counts as free, and the applications pass it. Probes also never reach ``limit``
    (default: :func:`region_end`, so the default layout's regions are never crossed; None: no
    limit). Without ``ours``, a foreign run closer than twice this run's length past ``start``
    would pass for part of it.

    Concurrent allocations may grow the run during the search; the answer is then a segment
    that was the run's last at some moment during the call (``last`` allocated, ``last + 1``
    seen free), which is what the linear scan gave and what callers already retry on.
    """
    if limit == -1:
        limit = region_end(start)
    if limit is not None and start >= limit:
        raise ValueError(f"segment {start} is at or past the limit {limit}")
    if not await _in_run(client, start, ours):
        return None
    top = None if limit is None else limit - 1  # the highest segment we may probe
    lo, hi = start, None  # lo: known allocated (for good); hi: seen free (None: not yet)
    while True:
        if hi is None:  # galloping: probe ahead as far as the run is proven long
            w = max(1, (lo - start + 1) // _PROBES)
            points = [lo + k * w for k in range(1, _PROBES + 1)]
            if top is not None:
                points = sorted({min(p, top) for p in points} - {lo})
                if not points:
                    return lo  # the run fills its region
        else:  # narrowing: split (lo, hi) into _PROBES + 1 parts
            if hi - lo <= 1:
                return lo
            step = -(-(hi - lo) // (_PROBES + 1))
            points = [p for p in (lo + k * step for k in range(1, _PROBES + 1)) if p < hi]
        seen = await asyncio.gather(*(_in_run(client, p, ours) for p in points))
        # An allocated probe proves the run reaches it (contiguous, never undone), even if a
        # lower probe read as free before a concurrent allocation: take the highest one.
        j = max((i for i, a in enumerate(seen) if a), default=-1)
        if j >= 0:
            lo = points[j]
        if j + 1 < len(points):
            hi = points[j + 1]


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

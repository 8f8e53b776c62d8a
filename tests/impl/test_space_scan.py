"""``last_allocated``: the applications' search for the end of their run of segments.

Driven against a scripted client (``check`` answers from a set of allocated segments), so the
answer and the number of checks in sequence (round trips) can be asserted exactly.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st
from wormspace.impl.apps import KV_BASE, LOG_BASE, TX_BASE
from wormspace.impl.apps.space import _PROBES, last_allocated, member_of, region_end
from wormspace.impl.net.client import Trimmed


class ScriptedSpace:
    """Answers ``check`` like a WormSpace client: metadata for allocated segments, Trimmed for
    trimmed ones, None for free ones. Counts checks and rounds of concurrent checks."""

    def __init__(self, allocated: set[int], trimmed: set[int] = frozenset(),  # type: ignore[assignment]
                 grow_on_check: int = 0, metas: dict[int, bytes] | None = None) -> None:
        self.allocated = set(allocated)
        self.metas = metas or {}
        self.trimmed = set(trimmed)
        self.grow_on_check = grow_on_check  # allocate this many more segments after each check
        self.checks = 0
        self.rounds = 0
        self.probed: list[int] = []
        self._in_flight = 0

    async def check(self, segment: int) -> bytes | None:
        if self._in_flight == 0:
            self.rounds += 1  # a new round trip: nothing else was outstanding
        self._in_flight += 1
        await asyncio.sleep(0)
        self._in_flight -= 1
        self.checks += 1
        self.probed.append(segment)
        answer: bytes | None
        if segment in self.trimmed:
            answer = None
        elif segment in self.allocated:
            answer = self.metas.get(segment, b"meta")
        else:
            answer = None
        for _ in range(self.grow_on_check):  # someone else allocates "last + 1" meanwhile
            if self.allocated:
                self.allocated.add(max(self.allocated) + 1)
        if segment in self.trimmed:
            raise Trimmed(f"segment {segment} is trimmed")
        return answer


def scan(space: ScriptedSpace, start: int, limit: int | None = -1,
         ours: Callable[[bytes], bool] | None = None) -> int | None:
    return asyncio.run(last_allocated(space, start, limit, ours))  # type: ignore[arg-type]


def test_free_start_is_none() -> None:
    space = ScriptedSpace(set())
    assert scan(space, 7) is None
    assert space.checks == 1


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 1000), n=st.integers(1, 20_000), trimmed=st.integers(0, 20_000))
def test_finds_the_last_of_the_run(start: int, n: int, trimmed: int) -> None:
    """The answer is the run's last segment, trimmed prefix or not, in O(log n) round trips
    (a linear scan takes n + 1: this bound fails for it from n = 9 on)."""
    run = set(range(start, start + n))
    space = ScriptedSpace(run, trimmed=set(range(start, start + min(trimmed, n))))
    assert scan(space, start) == start + n - 1
    bound = 2 * math.ceil(math.log2(n + 1)) + 3
    assert space.rounds <= bound, (n, space.rounds, bound)
    # It never probes farther than twice the run's length past start (plus the first round).
    assert max(space.probed) <= start + max(2 * n, _PROBES), (n, max(space.probed))


def test_a_long_log_costs_a_few_round_trips() -> None:
    space = ScriptedSpace(set(range(10_000)), trimmed=set(range(9_000)))
    assert scan(space, 0) == 9_999
    assert space.rounds <= 25
    assert space.checks <= 100


def test_small_runs_cost_what_the_linear_scan_did_or_little_more() -> None:
    for n in range(1, 9):
        space = ScriptedSpace(set(range(100, 100 + n)))
        assert scan(space, 100) == 100 + n - 1
        assert space.rounds <= 4, (n, space.rounds)


def test_a_run_growing_during_the_search() -> None:
    """Other processes allocate while we search: the answer was the run's last at some moment
    (allocated, and at least the last of the run when the search began)."""
    for n in (1, 2, 5, 17, 300):
        space = ScriptedSpace(set(range(n)), grow_on_check=1)
        got = scan(space, 0)
        assert got is not None
        assert got in space.allocated
        assert n - 1 <= got <= max(space.allocated)


def test_probes_answered_out_of_order() -> None:
    """A probe that reads as allocated above one that read as free (allocated in between):
    the allocated one proves the run reaches it, so the search goes on from there."""

    class Racy(ScriptedSpace):
        async def check(self, segment: int) -> bytes | None:
            answer = await super().check(segment)
            if segment == 2:  # free when checked; then 2, 3 and 4 are allocated
                self.allocated |= {2, 3, 4}
            return answer

    space = Racy({0, 1})
    assert scan(space, 0) == 4


def test_the_default_regions_are_never_crossed() -> None:
    """A KV run that nearly fills its region, with the log's region allocated right after it:
    without the limit, a probe past the region would read a log segment as "allocated"."""
    n = LOG_BASE - 3
    space = ScriptedSpace(set(range(KV_BASE, n)) | set(range(LOG_BASE, LOG_BASE + 5_000)))
    assert scan(space, KV_BASE) == n - 1
    assert max(space.probed) < LOG_BASE
    assert scan(ScriptedSpace(space.allocated), KV_BASE, limit=None) != n - 1  # why: the limit


def test_a_full_region_and_bad_starts() -> None:
    space = ScriptedSpace(set(range(LOG_BASE - 40, LOG_BASE + 10)))
    assert scan(space, LOG_BASE - 40) == LOG_BASE - 1
    assert max(space.probed) == LOG_BASE - 1
    assert scan(ScriptedSpace(set(range(10))), 0, limit=10) == 9
    assert region_end(KV_BASE) == LOG_BASE and region_end(LOG_BASE) == TX_BASE
    assert region_end(TX_BASE) is None
    try:
        scan(ScriptedSpace(set()), 10, limit=10)
    except ValueError as exc:
        assert "limit" in str(exc)
    else:
        raise AssertionError("a start at the limit must be refused")


def meta(app: str, base: int | None) -> bytes:
    m: dict[str, object] = {"app": app, "nonce": 1}
    if base is not None:
        m["base"] = base
    return msgpack.packb(m)  # type: ignore[no-any-return]


def test_a_nearby_run_of_another_base_or_application_is_not_taken_for_ours() -> None:
    """KV stores at custom bases 400 and 412: a probe of the first run's search lands in the
    second run (10 segments, probes reach twice that). The metadata tells them apart."""
    a, b = range(400, 410), range(412, 416)
    metas = {s: meta("wormpaxos", 400) for s in a} | {s: meta("wormpaxos", 412) for s in b}
    space = ScriptedSpace(set(a) | set(b), metas=metas)
    assert scan(space, 400, limit=None) != 409  # without: the other run passes for ours
    assert scan(space, 400, limit=None, ours=member_of("wormpaxos", 400)) == 409
    assert scan(space, 412, limit=None, ours=member_of("wormpaxos", 412)) == 415
    # Another application's segments right above: the same.
    metas |= {s: meta("wormtx", 412) for s in b}
    assert scan(ScriptedSpace(set(a) | set(b), metas=metas), 400, limit=None,
                ours=member_of("wormpaxos", 400)) == 409


def test_member_of_reads_the_metadata() -> None:
    ours = member_of("wormlog", 7)
    assert ours(meta("wormlog", 7)) is True
    assert ours(meta("wormlog", 8)) is False  # the same application from another base
    assert ours(meta("wormpaxos", 7)) is False  # another application
    assert ours(meta("wormlog", None)) is True  # written before bases were recorded
    assert ours(msgpack.packb({"leader": "x"})) is True  # no application named: cannot tell
    assert ours(b"\xc1 not msgpack") is True and ours(b"bench") is True


def test_custom_bases_farther_apart_than_twice_the_run() -> None:
    """Custom bases (no default limit between them): a run of n at base 0 and another
    application's run from base 2n + 8 on are told apart."""
    for n in (1, 3, 10, 77, 1000):
        other = 2 * n + 8
        space = ScriptedSpace(set(range(n)) | set(range(other, other + 3 * n)))
        assert scan(space, 0, limit=None) == n - 1, n

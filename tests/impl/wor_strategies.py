"""Hypothesis strategies for protocol requests (shared by the acceptor and framing tests)."""

from __future__ import annotations

from hypothesis import strategies as st
from wormspace.impl.core import (
    ZERO_BALLOT,
    Accept,
    AcceptRange,
    Kind,
    Prepare,
    PrepareRange,
    Read,
    Seal,
    Trim,
    WorId,
)

wors = st.builds(
    WorId, st.integers(0, 2), st.just(Kind.DATA), st.integers(0, 3)
) | st.builds(WorId, st.integers(0, 2), st.sampled_from([Kind.META, Kind.TRIM]))
ballots = st.tuples(st.integers(0, 4), st.integers(0, 3))
nonzero = ballots.filter(lambda b: b != ZERO_BALLOT)
values = st.sampled_from([b"a", b"b", b""])
epochs = st.integers(0, 2)
requests = st.one_of(
    st.builds(Prepare, epochs, wors, nonzero),
    st.builds(Accept, epochs, wors, ballots, values),
    st.builds(Read, epochs, wors),
    st.builds(Trim, epochs, st.integers(0, 2)),
    st.builds(Seal, epochs),
    st.builds(lambda e, s, lo, b: PrepareRange(e, s, lo, lo + 2, b),
              epochs, st.integers(0, 2), st.integers(0, 2), nonzero),
    st.builds(lambda e, s, lo, b, v: AcceptRange(e, s, lo, lo + 2, b, (v, v)),
              epochs, st.integers(0, 2), st.integers(0, 2), ballots, values),
)

"""Helpers for *exact* symmetry reduction: orbit representatives.

With ``--symmetry`` the checker stores and counts one state per orbit of the model's symmetry
group, using ``Model.canonical``. The representative must be exact (a function of the orbit
alone); a heuristic representative, such as sorting only part of a state, over-counts (this is
how Stateright's sort-based symmetry ends up with more states than TLC's ``SYMMETRY``).

Two ways to be exact:

* when each symmetric element (a resource manager, an acceptor) owns a slot of "local" data and
  the rest of the state is global, the orbit is determined by the multiset of local slots:
  sorting the slots is exact (:func:`canonical_tuple_perm`, :func:`sort_slots`);
* otherwise take the least image over the whole group (:func:`canonical_min`), with an
  injective sort key (frozensets turned into sorted tuples, for example).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

S = TypeVar("S")


def permutations(n: int) -> list[tuple[int, ...]]:
    """All permutations of ``range(n)`` (the symmetric group, as tuples)."""
    return list(itertools.permutations(range(n)))


def canonical_tuple_perm(t: tuple[Any, ...]) -> tuple[Any, ...]:
    """Representative of a tuple whose positions are interchangeable: the sorted tuple."""
    return tuple(sorted(t))


def sort_slots(slots: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Sort per-element local slots; exact when the slots are all an element owns."""
    return sorted(slots)


def canonical_min(
    s: S,
    group: Sequence[Any],
    apply: Callable[[Any, S], S],
    key: Callable[[S], Any] | None = None,
) -> S:
    """The image of ``s`` under the element of ``group`` whose image has the least ``key``.

    Exact as long as ``key`` is injective on states.
    """
    best = s
    best_key: Any = key(s) if key else s
    for g in group:
        image = apply(g, s)
        k: Any = key(image) if key else image
        if k < best_key:
            best, best_key = image, k
    return best

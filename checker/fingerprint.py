"""State fingerprints: 64-bit, stable across processes, and the TLC collision estimate.

The fingerprint of a state is Python's built-in ``hash`` of it. For the values states are made
of (ints, bools, tuples and frozensets of those) that hash is a deterministic 64-bit function
of the value, the same in every process and independent of ``PYTHONHASHSEED``; it runs in C, so
fingerprinting costs about as much as the tuple hash a plain ``set`` lookup needs anyway.
What breaks stability is a ``str`` or ``bytes`` (salted per process), ``None`` (hashed by
address before Python 3.12), floats (``hash(0.0) == hash(0)``: distinct states collide) and
objects hashed by identity, so :func:`validate_state` rejects them, naming the offending path.

One known arithmetic quirk: ``hash(-1) == hash(-2)``, so two states that differ only by a -1
versus a -2 in the same position would collide; the validator rejects -1 for that reason.
"""

from __future__ import annotations

import sys
from typing import Any

_STABLE_ATOMS = (int,)  # bool is a subclass of int
_NONE_STABLE = sys.version_info >= (3, 12)


class UnstableStateError(ValueError):
    """A state contains a value whose hash is not a stable 64-bit fingerprint."""


def fingerprint(state: Any) -> int:
    """The 64-bit fingerprint of a (validated) state."""
    return hash(state)


def validate_state(state: Any, path: str = "state") -> None:
    """Raise :class:`UnstableStateError` if ``state`` is not made of fingerprintable values.

    Allowed: ``int`` (except -1), ``bool``, ``tuple`` and ``frozenset`` of allowed values
    (and ``None`` on Python 3.12+).
    """
    if isinstance(state, bool):
        return
    if isinstance(state, int):
        if state == -1:
            raise UnstableStateError(
                f"{path} is -1, which hashes like -2 (fingerprints would collide); "
                "use another sentinel"
            )
        return
    if isinstance(state, tuple):
        for i, x in enumerate(state):
            validate_state(x, f"{path}[{i}]")
        return
    if isinstance(state, frozenset):
        for x in state:
            validate_state(x, f"{path} element {x!r}")
        return
    if state is None and _NONE_STABLE:
        return
    kind = type(state).__name__
    hint = {
        "str": "strings are hashed with a per-process salt; use small-int index constants",
        "bytes": "bytes are hashed with a per-process salt; use ints",
        "NoneType": "None is hashed by address on this Python; use 0 or another int",
        "float": "floats collide with ints (hash(1.0) == hash(1)); use ints",
        "list": "lists are mutable and unhashable; use tuples",
        "set": "sets are mutable and unhashable; use frozensets",
        "dict": "dicts are unhashable; use tuples of pairs",
    }.get(kind, "use ints, bools, tuples and frozensets (readable names go in variables())")
    raise UnstableStateError(f"{path} is a {kind} ({state!r:.60}): {hint}")


def collision_probability(distinct: int, generated: int) -> float:
    """TLC's optimistic estimate that two distinct states shared a fingerprint."""
    return distinct * max(generated - distinct, 0) / 2.0**64

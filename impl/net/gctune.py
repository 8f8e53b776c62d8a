"""The cyclic garbage collector's settings for long-running servers and load-generating clients.

A request allocates many container objects (messages, envelopes, futures, callbacks) that die by
reference counting within an event-loop turn or a few. CPython's collector still counts them:
with its default first threshold (700 net allocations) it runs every few requests, finds the
objects of the requests in flight alive, promotes them, and the promotions trigger full
collections, which walk everything that lives long: an acceptor's state (every WOR touched:
frozen dataclasses, all tracked) or a WormPaxos replica's table of results. Measured
(``bench/RESULTS.md``, "The garbage collector"): about a fifth of a server's Python per request
and a third of a WormPaxos leader's CPU per command.

:func:`tune` raises the first threshold to :data:`GEN0` (fewer, larger young collections, most
of whose objects are already gone) and freezes what exists at that point (moved to the
permanent generation: a server's recovered state is never walked again). Our request paths
leave no per-request cycles (``gc.DEBUG_SAVEALL`` finds none, see ``docs/impl.md``), so the
collector has little to find anyway; it still runs, for the cycles that do occur (exceptions
with tracebacks, say). ``WORMSPACE_GC=default`` leaves the collector as Python sets it.
"""

from __future__ import annotations

import gc
import os

#: The first-generation threshold :func:`tune` sets (Python's default is 700).
GEN0 = 50_000


def tune() -> bool:
    """Collect, freeze what exists, raise the first threshold; False (nothing changed) if
    ``WORMSPACE_GC=default``. Call once start-up (and recovery) is done."""
    if os.environ.get("WORMSPACE_GC", "").strip().lower() == "default":
        return False
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0, gen1, gen2)
    return True

"""Applications over the WormSpace client API (WORMSPACE.md section 3).

* :mod:`.wormpaxos` -- WormPaxos (Multi-Paxos / state-machine replication) and a KV store on it.
* :mod:`.wormlog` and :mod:`.sequencer` -- WormLog, a CORFU-style shared log with a soft-state
  sequencer process.
* :mod:`.wormtx` -- WormTX, non-blocking atomic commit over vote WORs (variants E3 and A8).
* :mod:`.commands` -- the ``kv``, ``log``, ``tx`` and ``demo`` subcommands.

Each application owns a region of the address space, starting at its own base segment, so the
three can share one cluster (see :data:`KV_BASE`, :data:`LOG_BASE`, :data:`TX_BASE`).
"""

#: Default first segment of each application's region (disjoint, so one cluster serves all).
KV_BASE = 0
LOG_BASE = 1 << 20
TX_BASE = 2 << 20

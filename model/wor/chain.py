"""Chain-WOR: a write-once register on f+1 nodes in a chain, refining the atomic WOR
(``spec/wor.py``).

Node 0 is the head, node f the tail. Every node keeps durable state ``(cap, val)``: the highest
capture id it has seen and the value written to it (0 for none).

* ``capture`` travels head to tail; each node adopts the capture id if it is higher than its
  own, else the capture is preempted. It returns ``CAPTURED`` when it passes the tail.
* ``write(v, cid)`` travels head to tail. The head decides the value the write carries: its own
  value if it already has one (a half-finished earlier write, which the new writer must finish,
  as a Paxos writer finishes the value its promises reveal), else ``v``. Each node accepts only
  if its capture id is still ``cid`` (no later capture passed it); past the tail the write
  returns ``OK`` if it carried ``v``, else ``ALREADY_WRITTEN``.
* ``read`` is answered by the tail (linearizable: the tail holds only values every node holds).
* A node may crash (at most ``crashes`` of them) and stays down: a capture, write or read that
  needs it blocks (the client may give up), but safety holds. Reconfiguration is not modelled.

Each client step moves its operation one node along the chain (the position is part of the
client's state, since a chain's links are FIFO: an operation cannot overtake another on a
link). The unsafe write (cid 0) is not modelled. Ghost variables, read only by the refinement
mapping, are as in ``paxos.py``: the latest completed capture (id, client), the values writes
were invoked with, and per client a bit (while capturing: a later capture completed; while
writing: the capture was the latest when the write began; while reading: the register was
empty when the read began).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError, Refinement
from wormspace.spec import wor as spec

# Client phases. HOLD: idle, holding the capture id of its last capture. WRITTEN: the write
# passed the tail and has not responded yet.
IDLE, HOLD, CAPTURING, WRITING, WRITTEN, READING = range(6)
PHASE_NAMES = ("idle", "hold", "capturing", "writing", "written", "reading")

# State layout: (nodes, down, clients, ghost)
#   nodes    per node (cap, val)
#   down     bitmask of crashed nodes
#   clients  per client (phase, rounds used, arg, pos, carried, ret, ghost bit)
#   ghost    (latest completed capture id, its client + 1, proposed-values bitmask)
Node = tuple[int, int]
Cli = tuple[int, int, int, int, int, int, int]
State = tuple[tuple[Node, ...], int, tuple[Cli, ...], tuple[int, int, int]]


@dataclass
class ChainWOR(Model[State]):
    """Chain-WOR with ``nodes`` = f+1 nodes, ``clients`` clients, ``values`` values, ``rounds``
    captures per client and at most ``crashes`` crashed nodes."""

    nodes: int = 2
    clients: int = 2
    values: int = 2
    rounds: int = 1
    crashes: int = 1

    def __post_init__(self) -> None:
        if min(self.nodes, self.clients, self.values, self.rounds) < 1 or self.crashes < 0:
            raise ParameterError("wor.chain: nodes, clients, values, rounds must be >= 1 and "
                                 "crashes >= 0")
        self.name = "wor.chain"
        self.params = {"nodes": self.nodes, "clients": self.clients, "values": self.values,
                       "rounds": self.rounds, "crashes": self.crashes}
        self._perms = list(permutations(range(1, self.values + 1)))

    @property
    def tail(self) -> int:
        return self.nodes - 1

    def cid(self, c: int, rounds_used: int) -> int:
        """The capture id of client ``c``'s latest capture (0 before any)."""
        return (rounds_used - 1) * self.clients + c + 1 if rounds_used else 0

    # -- model interface -------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        return [(((0, 0),) * self.nodes, 0, ((IDLE, 0, 0, 0, 0, spec.NONE, 0),) * self.clients,
                 (0, 0, 0))]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("Capture", self._capture, ("c",)),
            Action("CaptureStep", self._capture_step, ("c", "node")),
            Action("Write", self._write, ("c", "v")),
            Action("WriteStep", self._write_step, ("c", "node")),
            Action("WriteReturn", self._write_return, ("c", "ret")),
            Action("Read", self._read, ("c",)),
            Action("ReadTail", self._read_tail, ("c",)),
            Action("Timeout", self._timeout, ("c",)),
            Action("Crash", self._crash, ("node",)),
        ]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "Theorem1": lambda s: len({v for _c, v in s[0] if v}) <= 1,
            "WrittenPrefix": lambda s: all(s[0][i][1] or not s[0][i + 1][1]
                                           for i in range(self.nodes - 1)),
            "CapturesDescend": lambda s: all(s[0][i][0] >= s[0][i + 1][0]
                                             for i in range(self.nodes - 1)),
            "ReadReturnsWritten": lambda s: all(
                x[5] < spec.VALUE or x[5] - spec.VALUE == s[0][-1][1] for x in s[2]),
            "OkMeansWritten": lambda s: all(x[5] != spec.OK or x[2] == s[0][-1][1] for x in s[2]),
        }

    def refinement(self) -> Refinement[State, spec.State]:
        return Refinement(spec.WOR(self.clients, self.values), self.to_spec,
                          "register = the tail's value; a write takes effect when it passes the "
                          "tail; a capture when it passes the tail")

    # -- actions ---------------------------------------------------------------------------

    def _up(self, s: State, n: int) -> bool:
        return not s[1] >> n & 1

    def _capture(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c, (ph, rnd, *_rest) in enumerate(s[2]):
            if ph in (IDLE, HOLD) and rnd < self.rounds:
                yield (c,), _cli(s, c, (CAPTURING, rnd + 1, 0, 0, 0, spec.NONE, 0))

    def _capture_step(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        nodes, _down, cl, (top, owner, prop) = s
        for c, (ph, rnd, arg, pos, _car, _ret, e) in enumerate(cl):
            if ph != CAPTURING or not self._up(s, pos):
                continue
            i = self.cid(c, rnd)
            cap, val = nodes[pos]
            if i <= cap:  # a later capture passed this node: preempted
                yield (c, pos), _cli(s, c, (IDLE, rnd, 0, 0, 0, spec.PREEMPTED, 0))
                continue
            t = _node(s, pos, (i, val))
            if pos < self.tail:
                yield (c, pos), _cli(t, c, (CAPTURING, rnd, arg, pos + 1, 0, spec.NONE, e))
                continue
            # Past the tail: captured, and (ghost) the latest completed capture, which marks
            # the captures still pending as overlapping a later one.
            t = _cli(t, c, (HOLD, rnd, 0, 0, 0, spec.CAPTURED, 0))
            cl2 = tuple(x[:6] + (1,) if x[0] == CAPTURING else x for x in t[2])
            yield (c, pos), (t[0], t[1], cl2, (i, c + 1, prop) if i > top else (top, owner, prop))

    def _write(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        top, owner, prop = s[3]
        for c, (ph, rnd, *_rest) in enumerate(s[2]):
            if ph != HOLD:
                continue
            live = int(owner == c + 1)
            for v in range(1, self.values + 1):
                t = _cli(s, c, (WRITING, rnd, v, 0, 0, spec.NONE, live))
                yield (c, v), (t[0], t[1], t[2], (top, owner, prop | 1 << v))

    def _write_step(self, s: State) -> Iterator[tuple[tuple[int, int], State]]:
        nodes = s[0]
        for c, (ph, rnd, arg, pos, car, _ret, e) in enumerate(s[2]):
            if ph != WRITING or not self._up(s, pos):
                continue
            cap, val = nodes[pos]
            if pos == 0:  # the head decides the value: its own if it has one
                car = val or arg
            if cap != self.cid(c, rnd) or val not in (0, car):
                yield (c, pos), _cli(s, c, (IDLE, rnd, arg, 0, 0, spec.PREEMPTED, 0))
                continue
            t = _node(s, pos, (cap, car))
            nxt = (WRITTEN, rnd, arg, 0, car, spec.NONE, e) if pos == self.tail else \
                (WRITING, rnd, arg, pos + 1, car, spec.NONE, e)
            yield (c, pos), _cli(t, c, nxt)

    def _write_return(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        for c, (ph, rnd, arg, _pos, car, _ret, _e) in enumerate(s[2]):
            if ph == WRITTEN:
                ret = spec.OK if car == arg else spec.ALREADY_WRITTEN
                yield (c, spec.ret_name(ret)), _cli(s, c, (IDLE, rnd, arg, 0, 0, ret, 0))

    def _read(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        empty = int(s[0][self.tail][1] == 0)
        for c, (ph, rnd, *_rest) in enumerate(s[2]):
            if ph in (IDLE, HOLD):
                yield (c,), _cli(s, c, (READING, rnd, 0, 0, 0, spec.NONE, empty))

    def _read_tail(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        if not self._up(s, self.tail):
            return
        res = spec.read_result(s[0][self.tail][1])
        for c, (ph, rnd, *_rest) in enumerate(s[2]):
            if ph == READING:
                yield (c,), _cli(s, c, (IDLE, rnd, 0, 0, 0, res, 0))

    def _timeout(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        for c, (ph, rnd, arg, *_rest) in enumerate(s[2]):
            if ph not in (IDLE, HOLD):
                yield (c,), _cli(s, c, (IDLE, rnd, arg, 0, 0, spec.TIMEOUT, 0))

    def _crash(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        if bin(s[1]).count("1") >= self.crashes:
            return
        for n in range(self.nodes):
            if self._up(s, n):
                yield (n,), (s[0], s[1] | 1 << n, s[2], s[3])

    # -- refinement mapping ----------------------------------------------------------------

    def to_spec(self, s: State) -> spec.State:
        """The refinement mapping onto ``spec.WOR``."""
        nodes, _down, cl, (_top, owner, prop) = s
        reg = nodes[self.tail][1]
        out = []
        for ph, _rnd, arg, _pos, car, ret, e in cl:
            if ph in (IDLE, HOLD):
                out.append((spec.IDLE, arg, 0, int(ph == HOLD), ret))
            elif ph == CAPTURING:
                out.append((spec.CAPTURE, 0, e, 0, spec.NONE))
            elif ph in (WRITING, WRITTEN):
                done = spec.OK if ph == WRITTEN and car == arg else 0
                out.append((spec.WRITE, arg, done, e, spec.NONE))
            else:
                res = spec.EMPTY if e else spec.read_result(reg)
                out.append((spec.READ, 0, res, 0, spec.NONE))
        return (reg, owner, prop, tuple(out))

    # -- symmetry and display --------------------------------------------------------------

    def canonical(self, s: State) -> State:
        """Exact representative under permutations of the values (nodes and clients are not
        interchangeable: positions in the chain and capture ids tell them apart)."""
        return min((self._permute(s, pv) for pv in self._perms), key=_order)

    def _permute(self, s: State, pv: tuple[int, ...]) -> State:
        def v_(v: int) -> int:
            return pv[v - 1] if v else 0

        nodes, down, cl, (top, owner, prop) = s
        cl2 = tuple((ph, r, v_(a), p, v_(car), spec.VALUE + v_(ret - spec.VALUE)
                     if ret >= spec.VALUE else ret, e) for ph, r, a, p, car, ret, e in cl)
        prop2 = sum(1 << v_(v) for v in range(1, self.values + 1) if prop >> v & 1)
        return (tuple((cap, v_(val)) for cap, val in nodes), down, cl2, (top, owner, prop2))

    def variables(self, s: State) -> Mapping[str, Any]:
        nodes, down, cl, (top, _owner, _prop) = s
        return {
            "nodes": {f"n{i}": f"cap={cap} val={'v' + str(val) if val else '-'}"
                      + (" DOWN" if down >> i & 1 else "") for i, (cap, val) in enumerate(nodes)},
            "clients": {f"c{c}": f"{PHASE_NAMES[ph]} cid={self.cid(c, r)}"
                        + (f" arg=v{a}" if a else "") + (f" at=n{p}" if ph in (CAPTURING, WRITING)
                                                         else "")
                        + (f" carries=v{car}" if car else "") + f" ret={spec.ret_name(ret)}"
                        for c, (ph, r, a, p, car, ret, _e) in enumerate(cl)},
            "latest_capture": top,
        }


def _order(s: State) -> Any:
    return s


def _cli(s: State, c: int, x: Cli) -> State:
    return (s[0], s[1], s[2][:c] + (x,) + s[2][c + 1:], s[3])


def _node(s: State, n: int, x: Node) -> State:
    return (s[0][:n] + (x,) + s[0][n + 1:], s[1], s[2], s[3])

"""The atomic replicated state machine (SMR): the contract WormPaxos implements, and a checker
of recorded histories against it.

**The model** (:class:`SMR`, registered as ``smr``). Clients propose commands; each proposal
is an operation with an invocation and a response. The system keeps *one log* of decided
entries, each a command or a NO-OP; a position is decided at most once, in any order (a log
may have holes for a while); every replica applies the decided entries *in log order*, so
what a replica has applied is a prefix of the log. Actions:

* ``Invoke(c)``: a client proposes command ``c`` (idle -> pending);
* ``Decide(i, v)``: position ``i`` takes ``v``: a NO-OP, or a command that is not in the log and
  not yet answered. An idle command may be decided in the same step as it is invoked (one
  step for the two; stuttering-equivalent to ``Invoke`` then ``Decide``), so that a module
  whose invocation and write are one step maps onto one spec step;
* ``Respond(c)``: a pending command that is in the log is acknowledged; with ``linearizable``
  only once every position below it is decided;
* ``Apply(r)``: replica ``r`` applies the next position, once it is decided;
* ``Terminated``: the stutter of a finished run (the bounded log is full and applied).

Why the ``linearizable`` rule gives real-time order: when ``c1`` is acknowledged every position
up to its own is decided, so a command invoked after that can only be decided at a free
position, which lies above ``c1``. Without the rule an acknowledged command may still be
overtaken by a later one decided below it (the order is then only a total order, not real
time).

State (plain ints and tuples)::

    (log, status, applied)
    log      per position: 0 (undecided), a command 1..K, or NOOP (= K + 1)
    status   per command: IDLE, PENDING, DONE
    applied  per replica: the tuple of entries it applied (a prefix of the log)

**The history checker** (:func:`check_history`): for traces recorded on a real cluster. Input
is plain data (see :class:`Proposal` and the function's docstring); output is a list of
readable violations, empty when the history is explained. It runs in O(n log n).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError

IDLE, PENDING, DONE = range(3)
STATUS_NAMES = ("idle", "pending", "done")

State = tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, ...], ...]]


@dataclass
class SMR(Model[State]):
    """The atomic SMR for ``replicas`` replicas, ``commands`` commands and a log of
    ``positions`` positions (see the module docstring)."""

    replicas: int = 2
    commands: int = 2
    positions: int = 2
    linearizable: bool = True

    def __post_init__(self) -> None:
        if min(self.replicas, self.commands, self.positions) < 1:
            raise ParameterError("smr: replicas, commands and positions must be at least 1")
        self.name = "smr"
        self.noop = self.commands + 1
        self.params = {"replicas": self.replicas, "commands": self.commands,
                       "positions": self.positions, "linearizable": self.linearizable}

    # -- model interface ---------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        return [((0,) * self.positions, (IDLE,) * self.commands, ((),) * self.replicas)]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("Invoke", self._invoke, ("c",)),
            Action("Decide", self._decide, ("i", "v")),
            Action("Respond", self._respond, ("c",)),
            Action("Apply", self._apply, ("r",)),
            Action("Terminated", self._terminated, ()),
        ]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "AppliedIsLogPrefix": lambda s: all(a == s[0][:len(a)] for a in s[2]),
            "LoggedOnce": lambda s: all(s[0].count(c) <= 1 for c in range(1, self.noop)),
            "LoggedWasProposed": lambda s: all(s[1][v - 1] != IDLE for v in s[0]
                                               if 0 < v < self.noop),
            "DoneIsLogged": lambda s: all(c + 1 in s[0] for c, st in enumerate(s[1])
                                          if st == DONE),
        }

    def variables(self, s: State) -> Mapping[str, Any]:
        log, status, applied = s
        return {
            "log": [self.show(v) for v in log],
            "status": {f"c{c + 1}": STATUS_NAMES[x] for c, x in enumerate(status)},
            "applied": {f"r{r}": [self.show(v) for v in a] for r, a in enumerate(applied)},
        }

    def show(self, v: int) -> str:
        """An entry, readably: ``-`` (undecided), ``noop``, ``c1``..."""
        return "-" if v == 0 else "noop" if v == self.noop else f"c{v}"

    # -- actions -----------------------------------------------------------------------------

    def _invoke(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        log, status, applied = s
        for c, st in enumerate(status):
            if st == IDLE:
                yield (c + 1,), (log, _set(status, c, PENDING), applied)

    def _decide(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        log, status, applied = s
        for i, v in enumerate(log):
            if v:
                continue
            yield (i, "noop"), (_set(log, i, self.noop), status, applied)
            for c, st in enumerate(status):
                if st != DONE and c + 1 not in log:
                    yield (i, f"c{c + 1}"), (_set(log, i, c + 1), _set(status, c, PENDING), applied)

    def _respond(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        log, status, applied = s
        for c, st in enumerate(status):
            if st == PENDING and c + 1 in log:
                i = log.index(c + 1)
                if not self.linearizable or all(log[:i]):
                    yield (c + 1,), (log, _set(status, c, DONE), applied)

    def _apply(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        log, status, applied = s
        for r, a in enumerate(applied):
            if len(a) < len(log) and log[len(a)]:
                yield (r,), (log, status, applied[:r] + (a + (log[len(a)],),) + applied[r + 1:])


    def _terminated(self, s: State) -> list[tuple[tuple[()], State]]:
        """The stutter of a finished run (the log is full and every replica applied all of it),
        so that the end of the bounded log is not reported as a deadlock."""
        log, _status, applied = s
        return [((), s)] if all(log) and all(len(a) == len(log) for a in applied) else []


def _set(t: tuple[int, ...], i: int, v: int) -> tuple[int, ...]:
    return t[:i] + (v,) + t[i + 1:]


# -- checking recorded histories -----------------------------------------------------------------

#: The result of an acknowledged proposal; any other result (an error, a time-out, ``None``
#: for no answer) means "not acknowledged": the command may or may not be in the log.
OK = "OK"


@dataclass(frozen=True)
class Proposal:
    """One ``propose(command)`` operation as a client saw it.

    ``command`` identifies the command (any hashable: the implementation's ``(proposer, seq)``
    id, or the payload); the same command may be proposed more than once (a retry).
    ``invoke`` and ``response`` are times on one clock (``response`` is ``None`` if the call
    never returned); ``result`` is :data:`OK` when the proposal was acknowledged.
    """

    client: Hashable
    command: Hashable
    invoke: float
    response: float | None = None
    result: Any = None

    @property
    def acknowledged(self) -> bool:
        """The call returned, with :data:`OK`."""
        return self.response is not None and self.result == OK


#: What :func:`check_history` accepts per proposal: a :class:`Proposal` or a mapping with its
#: field names (``client``, ``command``, ``invoke``, optional ``response`` and ``result``).
ProposalLike = Proposal | Mapping[str, Any]


def check_history(proposals: Sequence[ProposalLike],
                  applies: Mapping[Hashable, Sequence[tuple[int, Hashable]]],
                  linearizable: bool = False,
                  show: Callable[[int], str] = str) -> list[str]:
    """Check a recorded SMR history; ``[]`` if explained, else readable violations.

    ``proposals``: every proposal a client made (:class:`Proposal`, or a dict with the same
    keys). ``applies``: per replica, the ``(index, command)`` pairs its state machine applied,
    in the order it applied them; ``index`` is the log position (an int >= 0). NO-OPs and
    other non-commands may be left out, so indices may skip, but they must increase.

    Checks, each reported with the replica, index and commands involved:

    * **order**: each replica applies at increasing indices;
    * **agreement**: no two replicas applied different commands at one index;
    * **prefix**: every replica's applied sequence is a prefix of one sequence (the merge of
      all replicas'): a replica that applied index ``j`` applied every command merged at an
      index below ``j``;
    * **proposed**: every applied command was proposed;
    * **once** (the design's rule): a command is applied at most once, at one index: the log
      may hold a retried command twice, but replicas apply only its first occurrence (the
      implementation deduplicates by command id), so the merged sequence holds it once;
    * **acknowledged**: every acknowledged command is in the merged sequence (the
      implementation acknowledges only after the proposing replica applied it);
    * with ``linearizable``, **real time**: if a command was acknowledged before another was
      first invoked, it is at a lower index. A retried command counts from its first
      invocation and its first acknowledgement.

    ``show`` writes an index in the messages (e.g. as ``address.position`` when the caller
    combined the two into one int).
    """
    props = [_proposal(p, k) for k, p in enumerate(proposals)]
    out: list[str] = []
    merged: dict[int, Hashable] = {}
    where: dict[int, Hashable] = {}  # index -> the first replica seen applying there
    for r, seq in applies.items():
        last = -1
        for n, entry in enumerate(seq):
            i, cmd = _entry(r, n, entry)
            if i <= last:
                out.append(f"order: replica {r!r} applied index {show(i)} after index "
                           f"{show(last)}")
            last = max(last, i)
            if i in merged and merged[i] != cmd:
                out.append(f"agreement: index {show(i)} is {merged[i]!r} at replica {where[i]!r} "
                           f"but {cmd!r} at replica {r!r}")
            merged.setdefault(i, cmd)
            where.setdefault(i, r)
    out += _prefix_violations(applies, merged, show)
    proposed = {p.command for p in props}
    index_of: dict[Hashable, int] = {}
    for i in sorted(merged):
        cmd = merged[i]
        if cmd not in proposed:
            out.append(f"proposed: {cmd!r} applied at index {show(i)} was never proposed")
        if cmd in index_of:
            out.append(f"once: {cmd!r} applied at index {show(index_of[cmd])} and again at "
                       f"{show(i)}")
        else:
            index_of[cmd] = i
    acked = sorted({p.command for p in props if p.acknowledged} - set(index_of), key=repr)
    out += [f"acknowledged: {c!r} was acknowledged but no replica applied it" for c in acked]
    if linearizable:
        out += _real_time_violations(props, index_of, show)
    return out


def _proposal(p: ProposalLike, k: int) -> Proposal:
    if isinstance(p, Proposal):
        q = p
    elif isinstance(p, Mapping):
        unknown = set(p) - {"client", "command", "invoke", "response", "result"}
        if unknown or not {"client", "command", "invoke"} <= set(p):
            raise ValueError(f"proposal {k}: needs keys client, command, invoke (and optional "
                             f"response, result); got {sorted(map(str, p))}")
        q = Proposal(p["client"], p["command"], p["invoke"], p.get("response"), p.get("result"))
    else:
        raise ValueError(f"proposal {k}: a Proposal or a mapping, not {type(p).__name__}")
    if not isinstance(q.invoke, (int, float)) or isinstance(q.invoke, bool):
        raise ValueError(f"proposal {k}: invoke time must be a number, not {q.invoke!r}")
    if q.response is not None and (not isinstance(q.response, (int, float))
                                   or q.response < q.invoke):
        raise ValueError(f"proposal {k}: response time {q.response!r} is not a number at or "
                         f"after its invoke time {q.invoke!r}")
    try:
        hash(q.command)
    except TypeError:
        raise ValueError(f"proposal {k}: command {q.command!r} is not hashable") from None
    return q


def _entry(r: Hashable, n: int, entry: Any) -> tuple[int, Hashable]:
    if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
        raise ValueError(f"replica {r!r}, entry {n}: expected (index, command), got {entry!r}")
    i, cmd = entry
    if not isinstance(i, int) or isinstance(i, bool) or i < 0:
        raise ValueError(f"replica {r!r}, entry {n}: index must be an int >= 0, not {i!r}")
    try:
        hash(cmd)
    except TypeError:
        raise ValueError(f"replica {r!r}, entry {n}: command {cmd!r} is not hashable") from None
    return i, cmd


def _prefix_violations(applies: Mapping[Hashable, Sequence[tuple[int, Hashable]]],
                       merged: Mapping[int, Hashable],
                       show: Callable[[int], str] = str) -> list[str]:
    """A replica that applied up to index ``j`` must have applied every merged index below
    ``j`` (one sorted pass per replica over the merged indices)."""
    order = sorted(merged)
    out = []
    for r, seq in applies.items():
        if not seq:
            continue
        mine = {i for i, _c in seq}
        top = max(mine)
        for i in order[:bisect.bisect_left(order, top)]:
            if i not in mine:
                out.append(f"prefix: replica {r!r} applied index {show(top)} but skipped index "
                           f"{show(i)} "
                           f"({merged[i]!r}, applied elsewhere)")
                break
    return out


def _real_time_violations(props: Sequence[Proposal], index_of: Mapping[Hashable, int],
                          show: Callable[[int], str] = str) -> list[str]:
    """If ``c1`` was acknowledged before ``c2`` was first invoked, ``c1``'s index is lower.

    Acknowledgements sorted by time with a running maximum of their indices: for each
    command, one binary search finds the highest index acknowledged before it was invoked.
    """
    first_invoke: dict[Hashable, float] = {}
    first_ack: dict[Hashable, float] = {}
    for p in props:
        first_invoke[p.command] = min(first_invoke.get(p.command, p.invoke), p.invoke)
        if p.acknowledged and p.command in index_of:
            assert p.response is not None
            first_ack[p.command] = min(first_ack.get(p.command, p.response), p.response)
    acks = sorted(((t, c) for c, t in first_ack.items()), key=lambda tc: tc[0])
    times = [t for t, _c in acks]
    best: list[tuple[int, Hashable, float]] = []  # running max of (index, command, time)
    for t, c in acks:
        cand = (index_of[c], c, t)
        best.append(cand if not best or cand[0] > best[-1][0] else best[-1])
    out = []
    for c2, i2 in sorted(index_of.items(), key=lambda ci: ci[1]):
        if c2 not in first_invoke:
            continue  # never proposed: reported above
        k = bisect.bisect_left(times, first_invoke[c2])
        if k and best[k - 1][0] > i2:
            i1, c1, t1 = best[k - 1]
            out.append(f"real time: {c1!r} was acknowledged at {t1:g} before {c2!r} was invoked "
                       f"at {first_invoke[c2]:g}, but is at index {show(i1)}, above {c2!r} at "
                       f"{show(i2)}")
    return out

"""Implementation-level model checking: the real ``impl/core`` Paxos-WOR code in a modelled network.

Stateright checks its actors by running their real code under the model checker; this module
does the same for the sans-IO cores. Every step of :class:`CoreWOR` decodes the parts of the
state it touches into real objects (:class:`Acceptor` over an :class:`AcceptorState` rebuilt by
``records.replay``, the client's :class:`CaptureWriteOp` or :class:`ReadOp`, its
:class:`BallotCounter`, messages through ``codec.from_plain``), calls the real code
(``handle``, ``start``, ``on_reply``, ``next``) and encodes the result again. Nothing of the
protocol is re-implemented here: what is modelled is only what ``impl/net`` does around the cores.

* **Network**: requests are a set of sent messages, never emptied (as in ``model/wor/paxos.py``),
  so any request may reach its acceptor late, twice, or never. Each is tagged with its client
  and *attempt*, as the real driver's per-request futures are: a reply reaches only the op
  instance that sent the request. A reply reaches that op *in the step its acceptor produces it,
  or is lost*. This drops no behaviour that matters: the cores' ops keep their replies in dicts
  keyed by acceptor, so what an op does depends on which replies it has received, not in which
  order; a reply held back while other steps happen is the same as a reply delivered at once
  whose consequences (the op's next requests, which stay in the set, and its result, see
  ``Return``) are held back; and answering a caller later only widens its operation's interval.
  It keeps replies out of the state, where they multiplied the states by the subsets received.
* **Acceptors** keep a durable log (the snapshot records, ``record_to_plain``) and the records
  not yet persisted. A correct acceptor persists before it replies (one step); under the planted
  bug ``ack_before_persist`` the reply goes out at once, ``Persist`` happens later, and
  ``Restart`` (a crash) rebuilds the acceptor from its durable records (``records.replay``),
  losing the rest. A restart that loses nothing is a stutter: it costs no crash budget.
* **Clients** (``impl/net/client.py``) run the ``workload`` (or ``ops`` operations from a free
  menu): "write v" is ``write(w, v)`` without a capture id, a :class:`CaptureWriteOp`; "read" is
  a :class:`ReadOp`. As in ``_preemptible``, an attempt that ends PREEMPTED is retried with a
  fresh op at ``ballots.next(above=rival)``, up to ``rounds`` attempts per operation. With
  ``timeouts``, an attempt may also end early as PREEMPTED once a rival ballot refused it (the
  driver's rule when the other requests failed), and a pending operation may give up
  (``Unavailable``); its requests stay in the set.
* **Two steps where the real client takes one**, so that each step is at most one step of the
  atomic WOR: when a ``CaptureWriteOp``'s capture completes, ``on_reply`` returns the write's
  Accepts at once; the model holds them in the client's outbox and sends them in ``SendWrite``
  (the spec's ``CaptureReturns`` then ``InvokeWrite``; a held message is a delayed one). And
  when an op is done, the caller sees its result in a later ``Return`` step (the reply that
  completes a write also makes its value chosen: ``WriteTakesEffect``, then ``Respond``).
* **Ghost variables** (never read by the code under test): the votes ``(acceptor, ballot,
  value)`` that are durable, or that a reply (an acknowledgement, or a promise or read reply
  showing the accepted value) has shown to a client, so a vote shown and then lost in a crash
  stays counted; the latest completed capture, the proposed values, the values reads returned
  and writes returned OK for; per client the bit the refinement mapping needs (as in
  ``paxos.py``). "Chosen" is a quorum of votes for one (ballot, value).
* **Reductions that change no verdict** (each can be switched off; the tests compare): steps of
  the real code are pure functions of their encoded inputs, so each is computed once and
  recalled (``cache``); op state the op's code never reads again is cleared before encoding
  (``prune``, :func:`forget_spent`); a step that changes nothing is not generated, and a
  finished workload stutters (``Finished``) rather than deadlocks.

States are plain ints and tuples: :class:`PlainCodec` encodes core objects reversibly (bytes
values as small ints, strings through a fixed vocabulary, dicts and sets sorted), so two equal
objects have one encoding. The refinement mapping onto the atomic WOR (``spec/wor.py``) is
that of ``model/wor/paxos.py``; a planted bug shows up as an invariant or refinement violation
with a shortest trace.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from wormspace.checker.model import Action, Model, ModelError, ParameterError, Refinement
from wormspace.impl.core import codec
from wormspace.impl.core.acceptor import Acceptor
from wormspace.impl.core.ballots import BallotCounter
from wormspace.impl.core.bugs import Bugs
from wormspace.impl.core.messages import (
    Accept,
    Accepted,
    Ballot,
    Kind,
    Prepare,
    Promise,
    Read,
    ReadReply,
    Status,
    WorId,
)
from wormspace.impl.core.ops import CaptureOp, CaptureWriteOp, OpResult, Outcome, ReadOp, WriteOp
from wormspace.impl.core.records import AcceptorState, record_from_plain, record_to_plain, replay
from wormspace.spec import wor as spec

#: The planted bugs this model can exercise (``serve_trimmed`` needs trims, which it has none of).
BUGS = {
    "ack_before_persist": "an acceptor replies before its records are persisted",
    "arbitrary_adopt": "a capture adopts the lowest-ballot accepted value, not the highest",
    "read_without_repair": "a read returns a half-written value without completing it",
    "reuse_capture_id": "a client's new capture reuses its previous capture id",
}

#: The one WOR every client works on.
WOR = WorId(1, Kind.DATA, 0)

# Client phases.
IDLE, CAPTURING, CAPTURED, WRITING, READING, RETRY = range(6)
PHASE_NAMES = ("idle", "capturing", "captured", "writing", "reading", "retry")

# State layout: (acceptors, network, clients, ghost)
#   acceptors  per acceptor (durable records, unpersisted records), each record the frozen
#              ``record_to_plain`` form; the durable part is the acceptor's snapshot
#   network    frozenset of requests (client, attempt, acceptor, frozen request)
#   clients    per client, indexed by the constants below:
#     PH        phase (IDLE ... RETRY)
#     WANT      the value the current operation writes (0: a read)
#     ARG, RET  the atomic WOR's view of an idle client: last argument and response code
#     E         ghost bit, by phase: capturing, a later capture completed meanwhile; writing,
#               the capture was still the latest when the write was sent; reading, nothing
#               was chosen when the read was invoked
#     F         ghost bit while reading: a write had returned OK when the read was invoked
#     DONE_OPS  operations invoked; TRIES attempts of the current one
#     ROUND     the client's BallotCounter.round; ATTEMPT the tag of its current attempt
#     BALLOT    the current attempt's ballot as an int (ghost, for the mapping)
#     RIVAL     the highest ballot that refused the attempt (the driver's rival), or ()
#     OP        the frozen op; OUTBOX the held Accepts; RESULT the frozen OpResult to return
#   ghost      (crashes used, latest capture ballot, its client + 1, proposed-values bitmask,
#               votes, values reads returned (bitmask), values writes returned OK for, a read
#               invoked after an OK write returned EMPTY)
(PH, WANT, ARG, RET, E, F, DONE_OPS, TRIES, ROUND, ATTEMPT, BALLOT, RIVAL, OP, OUTBOX,
 RESULT) = range(15)
G_CRASHES, G_TOP, G_OWNER, G_PROP, G_VOTES, G_READS, G_OKS, G_LATE_EMPTY = range(8)

Client = tuple[Any, ...]
Ghost = tuple[Any, ...]
#: (acceptors: per acceptor (durable records, unpersisted records), network, clients, ghost)
State = tuple[tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...], frozenset[Any],
              tuple[Client, ...], Ghost]

IDLE_CLIENT: Client = (IDLE, 0, 0, spec.NONE, 0, 0, 0, 0, 0, 0, 0, (), (), (), ())


# -- a reversible, canonical encoding of core objects as ints and tuples -------------------------

_NONE, _BOOL, _BYTES, _STR, _TUPLE, _LIST, _DICT, _SET, _ENUM, _MSG, _OBJ = range(11)


class PlainCodec:
    """Core objects <-> hashable tuples of non-negative ints (no str, bytes, None: see
    ``checker/fingerprint.py``).

    Messages go through ``codec.to_plain`` / ``codec.from_plain`` (so every decoded message is
    validated by the real codec); ops and other objects by their attributes, whose names are
    taken from template instances so an attribute added to an op is noticed, not dropped.
    Dicts and sets are sorted, so equal objects encode equally. ``bugs`` attributes are not
    encoded: decoding sets them to the model's switches.
    """

    def __init__(self, values: Sequence[bytes], bugs: Bugs,
                 constants: Mapping[str, Any] | None = None) -> None:
        self.values = tuple(values)
        self.value_index = {v: i + 1 for i, v in enumerate(self.values)}
        self.bugs = bugs
        self.enums: tuple[type[enum.Enum], ...] = (Status, Kind, Outcome)
        self.members = {cls: tuple(cls) for cls in self.enums}
        self.messages: tuple[type, ...] = tuple(codec.TAGS)
        self.message_fields = {cls: tuple(f.name for f in fields(cls)) for cls in self.messages}
        probe = WorId(0, Kind.DATA, 0)
        templates: dict[type, Any] = {
            CaptureOp: CaptureOp(probe, (1, 1), 3),
            WriteOp: WriteOp(probe, b"x", (1, 1), 3),
            CaptureWriteOp: CaptureWriteOp(probe, b"x", (1, 1), 3),
            ReadOp: ReadOp(probe, (1, 1), 3),
        }
        self.classes: tuple[type, ...] = (*templates, OpResult, WorId)
        self.attrs: dict[type, tuple[str, ...]] = {
            cls: tuple(sorted(a for a in vars(t) if a != "bugs")) for cls, t in templates.items()
        }
        self.has_bugs = {cls: "bugs" in vars(t) for cls, t in templates.items()}
        for cls in (OpResult, WorId):
            self.attrs[cls] = tuple(f.name for f in fields(cls))
        words = {"t", "w", "s", *codec.CLASSES, *(m.value for e in self.enums for m in e)}
        words.update(name for names in self.message_fields.values() for name in names)
        self.words = tuple(sorted(words))
        self.word_index = {w: i for i, w in enumerate(self.words)}
        self.enum_index = {cls: i for i, cls in enumerate(self.enums)}
        self.message_index = {cls: i for i, cls in enumerate(self.messages)}
        self.class_index = {cls: i for i, cls in enumerate(self.classes)}
        # Messages are immutable, so decoded ones may be shared: each encoding is decoded (and
        # validated by the codec) once.
        self._messages: dict[Any, Any] = {}
        #: Attributes every op of this model has with the same value: left out of encodings
        #: (checked on the way in, restored on the way out).
        self.constants = dict(constants or {})
        self.stored = {cls: tuple(a for a in names if is_dataclass(cls) or a not in self.constants)
                       for cls, names in self.attrs.items()}

    def freeze(self, x: Any) -> Any:
        """The encoding of ``x``; raises :class:`ModelError` on a value it cannot encode."""
        t = type(x)
        if t is int:
            if x < 0:
                raise ModelError(f"core model: cannot encode the negative int {x}")
            return x
        if x is None:
            return (_NONE,)
        if t is bool:
            return (_BOOL, int(x))
        if t is bytes:
            idx = self.value_index.get(x)
            if idx is None:
                raise ModelError(f"core model: value {x!r} is not one of the model's values "
                                 f"{list(self.values)}")
            return (_BYTES, idx)
        if t is str:
            if x not in self.word_index:
                raise ModelError(f"core model: string {x!r} is not in the encoding vocabulary")
            return (_STR, self.word_index[x])
        if t is tuple:
            return (_TUPLE, *map(self.freeze, x))
        if t is list:
            return (_LIST, *map(self.freeze, x))
        if t is dict:
            return (_DICT, *_sorted((self.freeze(k), self.freeze(v)) for k, v in x.items()))
        if t is set or t is frozenset:
            return (_SET, *_sorted(self.freeze(v) for v in x))
        if t in self.enum_index:
            return (_ENUM, self.enum_index[t], self.members[t].index(x))
        if t in self.message_index:
            plain = codec.to_plain(x)
            return (_MSG, self.message_index[t], *(self.freeze(plain[f]) for f in self.message_fields[t]))
        if t in self.class_index:
            names = self.attrs[t]
            if not is_dataclass(x):
                extra = set(vars(x)) - set(names) - {"bugs"}
                if extra:
                    raise ModelError(f"core model: {t.__name__} has attributes {sorted(extra)} "
                                     "the encoding does not know (rebuild the templates)")
                for a, want in self.constants.items():
                    if getattr(x, a, want) != want:
                        raise ModelError(f"core model: {t.__name__}.{a} is {getattr(x, a)!r}, "
                                         f"not the model's constant {want!r}")
                names = self.stored[t]
            return (_OBJ, self.class_index[t], *(self.freeze(getattr(x, a)) for a in names))
        raise ModelError(f"core model: cannot encode a {t.__name__}: {x!r:.80}")

    def thaw(self, code: Any) -> Any:
        """Inverse of :meth:`freeze` (messages are re-validated by ``codec.from_plain``)."""
        if type(code) is int:
            return code
        tag = code[0]
        if tag == _NONE:
            return None
        if tag == _BOOL:
            return bool(code[1])
        if tag == _BYTES:
            return self.values[code[1] - 1]
        if tag == _STR:
            return self.words[code[1]]
        if tag == _TUPLE:
            return tuple(map(self.thaw, code[1:]))
        if tag == _LIST:
            return list(map(self.thaw, code[1:]))
        if tag == _DICT:
            return {self.thaw(k): self.thaw(v) for k, v in code[1:]}
        if tag == _SET:
            return set(map(self.thaw, code[1:]))
        if tag == _ENUM:
            return self.members[self.enums[code[1]]][code[2]]
        if tag == _MSG:
            msg = self._messages.get(code)
            if msg is None:
                cls = self.messages[code[1]]
                plain: dict[str, Any] = {"t": codec.TAGS[cls]}
                plain.update(zip(self.message_fields[cls], map(self.thaw, code[2:])))
                msg = self._messages[code] = codec.from_plain(plain)
            return msg
        if tag == _OBJ:
            kind: type = self.classes[code[1]]
            if kind in (OpResult, WorId):  # frozen dataclasses: built (and validated) by __init__
                return kind(**dict(zip(self.attrs[kind], map(self.thaw, code[2:]))))
            obj: Any = object.__new__(kind)  # an op: its attributes are set below
            obj.__dict__.update(zip(self.stored[kind], map(self.thaw, code[2:])))
            obj.__dict__.update((a, v) for a, v in self.constants.items() if a in self.attrs[kind])
            if self.has_bugs[kind]:
                obj.bugs = self.bugs
            return obj
        raise ModelError(f"core model: not an encoding: {code!r:.80}")

    # -- acceptor state: the durable log in snapshot form ---------------------------------------

    def freeze_state(self, state: AcceptorState) -> tuple[Any, ...]:
        """An acceptor state as its snapshot records, each in plain (``record_to_plain``) form."""
        return tuple(self.freeze(record_to_plain(r)) for r in state.snapshot())

    def thaw_state(self, durable: tuple[Any, ...], pending: tuple[Any, ...] = ()) -> AcceptorState:
        """Recovery: replay the durable records, then (in memory) the unpersisted ones."""
        state = replay([record_from_plain(self.thaw(r)) for r in durable])
        for r in pending:
            state.apply(record_from_plain(self.thaw(r)))
        return state


def _sorted(items: Iterable[Any]) -> tuple[Any, ...]:
    items = list(items)
    try:
        return tuple(sorted(items))
    except TypeError:  # keys of mixed shapes (an int and a tuple): any fixed order will do
        return tuple(sorted(items, key=repr))


# -- the model -----------------------------------------------------------------------------------


@dataclass
class CoreWOR(Model[State]):
    """The real Paxos-WOR cores: ``acceptors`` acceptors, ``clients`` clients running the
    ``workload`` scripts (or, with ``workload=""``, ``ops`` operations each chosen from writing
    one of ``values`` values and reading), ``rounds`` attempts (ballots) per operation, at most
    ``crashes`` crashes that lose something, and at most one planted ``bug`` (see :data:`BUGS`)."""

    acceptors: int = 3
    clients: int = 2
    values: int = 2
    rounds: int = 1
    crashes: int = 1
    ops: int = 1
    workload: str = "write1/write2|read"
    timeouts: bool = True
    bug: str = ""
    #: Remember each (encoded input -> encoded output) step of the cores. They are pure, so a
    #: step recalled is the step the code computed; ``cache=False`` re-runs the code every time
    #: (the tests check both give the same search).
    cache: bool = True
    #: Clear op state the op never reads again before encoding it (see :func:`forget_spent`);
    #: ``prune=False`` keeps it (the tests check both give the same verdicts).
    prune: bool = True
    plain: PlainCodec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("acceptors", "clients", "values", "rounds", "ops"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ParameterError(f"impl.core: {name} must be an integer >= 1, got {value!r}")
        if type(self.crashes) is not int or self.crashes < 0:
            raise ParameterError(f"impl.core: crashes must be an integer >= 0, got {self.crashes!r}")
        if self.values > 26:
            raise ParameterError(f"impl.core: at most 26 values (b'a'..b'z'), got {self.values}")
        if self.bug == "serve_trimmed":
            raise ParameterError("impl.core: bug serve_trimmed needs trimmed segments, which this "
                                 f"model never trims; one of {sorted(BUGS)}")
        if self.bug and self.bug not in BUGS:
            raise ParameterError(f"impl.core: unknown bug {self.bug!r}; one of {sorted(BUGS)}")
        self.name = "impl.core"
        self.script = parse_workload(self.workload, self.clients, self.values)
        self.params = {"acceptors": self.acceptors, "clients": self.clients,
                       "values": self.values, "rounds": self.rounds, "crashes": self.crashes,
                       "ops": self.ops, "workload": self.workload, "timeouts": self.timeouts,
                       "bug": self.bug}
        self.bugs = Bugs(**({self.bug: True} if self.bug else {}))
        self.value_bytes = tuple(bytes([ord("a") + i]) for i in range(self.values))
        self.quorum = self.acceptors // 2 + 1
        #: The free menu (``workload=""``): write any value (1..values), or read (0).
        self.menu = (*range(1, self.values + 1), 0)
        self.plain = PlainCodec(self.value_bytes, self.bugs, {
            "n": self.acceptors, "epoch": 0, "quorum": self.quorum, "wor": WOR})
        self._client_steps: dict[Any, Any] = {}
        self._acceptor_steps: dict[Any, Any] = {}
        self._labels: dict[Any, str] = {}
        self._recoveries: dict[Any, tuple[Any, Any]] = {}
        self._chosen: dict[frozenset[Any], frozenset[tuple[int, int]]] = {}

    # -- model interface ---------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        empty = (self.plain.freeze_state(AcceptorState()), ())
        ghost: Ghost = (0, 0, 0, 0, frozenset(), 0, 0, 0)
        return [((empty,) * self.acceptors, frozenset(), (IDLE_CLIENT,) * self.clients, ghost)]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("Invoke", self._invoke, ("c", "op", "ballot")),
            Action("SendWrite", self._send_write, ("c",)),
            Action("Return", self._return, ("c", "result")),
            Action("EndPreempted", self._end_preempted, ("c", "rival")),
            Action("Retry", self._retry, ("c", "ballot")),
            Action("Timeout", self._timeout, ("c",)),
            Action("Deliver", self._deliver, ("a", "request", "reply")),
            Action("Persist", self._persist, ("a",)),
            Action("Restart", self._restart, ("a",)),
            Action("Finished", self._finished),
        ]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "OneValueChosen": lambda s: len(self.chosen_values(s)) <= 1,
            "ReadsAgree": self._reads_agree,
            "OkWritesReadBack": self._ok_writes_read_back,
        }

    def refinement(self) -> Refinement[State, spec.State]:
        return Refinement(spec.WOR(self.clients, self.values), self.to_spec,
                          "register = the chosen value; a write takes effect when its value is "
                          "chosen at its ballot; a capture at its completion (as wor.paxos)")

    # -- derived predicates ------------------------------------------------------------------

    def chosen(self, s: State) -> frozenset[tuple[int, int]]:
        """``(ballot, value)`` pairs a quorum of acceptors acknowledged a vote for."""
        votes = s[3][G_VOTES]
        out = self._chosen.get(votes)
        if out is None:
            voters: dict[tuple[int, int], set[int]] = {}
            for a, b, v in votes:
                voters.setdefault((b, v), set()).add(a)
            out = self._chosen[votes] = frozenset(
                bv for bv, ns in voters.items() if len(ns) >= self.quorum)
        return out

    def chosen_values(self, s: State) -> set[int]:
        return {v for _b, v in self.chosen(s)}

    def _reads_agree(self, s: State) -> bool:
        """Reads never return two different values, and only a chosen one."""
        reads = _bits(s[3][G_READS])
        return len(reads) <= 1 and set(reads) <= self.chosen_values(s)

    def _ok_writes_read_back(self, s: State) -> bool:
        """A value a write returned OK for is chosen, is the value reads return, and no read
        invoked after that OK returned EMPTY."""
        g = s[3]
        oks = _bits(g[G_OKS])
        return (set(oks) <= self.chosen_values(s) and len(_bits(g[G_OKS] | g[G_READS])) <= 1
                and not g[G_LATE_EMPTY])

    # -- encoding helpers --------------------------------------------------------------------

    def ballot_int(self, b: Ballot) -> int:
        """A ballot ``(round, client_id)`` as one int with the same order (ghosts only)."""
        return int(b[0] * (self.clients + 1) + b[1])

    def _counter(self, c: int, rnd: int) -> BallotCounter:
        counter = BallotCounter(c + 1, bugs=self.bugs)
        counter.round = rnd
        return counter

    def _new_op(self, want: int, ballot: Ballot) -> CaptureWriteOp | ReadOp:
        """A fresh op for one attempt, as ``WormSpaceClient`` builds them."""
        if want:
            return CaptureWriteOp(WOR, self.value_bytes[want - 1], ballot, self.acceptors,
                                  bugs=self.bugs)
        return ReadOp(WOR, ballot, self.acceptors, bugs=self.bugs)

    def _requests(self, c: int, k: int, sends: Iterable[tuple[int, Any]]) -> set[tuple[Any, ...]]:
        return {(c, k, a, self.plain.freeze(req)) for a, req in sends}

    # -- client actions ----------------------------------------------------------------------

    def _invoke(self, s: State) -> Iterator[tuple[tuple[int, str, str], State]]:
        accs, net, cls, g = s
        for c, x in enumerate(cls):
            if x[PH] != IDLE:
                continue
            if self.script is None:
                menu: Sequence[int] = () if x[DONE_OPS] >= self.ops else self.menu
            else:
                steps = self.script[c]
                menu = steps[x[DONE_OPS]] if x[DONE_OPS] < len(steps) else ()
            for want in menu:
                counter = self._counter(c, x[ROUND])
                ballot = counter.next()
                op = self._new_op(want, ballot)
                k = x[ATTEMPT] + 1
                sends = op.start()
                y: Client
                if want:
                    y = (CAPTURING, want, 0, spec.NONE, 0, 0)
                else:
                    empty = int(not self.chosen(s))
                    y = (READING, 0, 0, spec.NONE, empty, int(g[G_OKS] != 0))
                y += (x[DONE_OPS] + 1, 1, counter.round, k, self.ballot_int(ballot), (),
                      self.plain.freeze(op), (), ())
                label = f"write {self.value_bytes[want - 1]!r}" if want else "read"
                yield (c, label, str(ballot)), (accs, net | self._requests(c, k, sends),
                                                _put(cls, c, y), g)

    def _client_step(self, op_enc: Any, a: int, reply_enc: Any) -> tuple[str, Any, Any]:
        """Feed one reply to the real op: ``("done", result, ())``, ``("captured", op, sends)``
        when a capture-then-write finished its capture, else ``("running", op, sends)``."""
        key = (op_enc, a, reply_enc)
        hit = self._client_steps.get(key) if self.cache else None
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        op = self.plain.thaw(op_enc)
        capturing = isinstance(op, CaptureWriteOp) and op.write is None
        sends = op.on_reply(a, self.plain.thaw(reply_enc))
        out: tuple[str, Any, Any]
        if op.done:
            if op.result is None:
                raise ModelError("core model: an op is done without a result")
            out = ("done", op.result, ())
        else:
            if self.prune:
                forget_spent(op)
            frozen = tuple(sorted((i, self.plain.freeze(r)) for i, r in sends))
            out = ("captured" if capturing and op.write is not None else "running",
                   self.plain.freeze(op), frozen)
        if self.cache:
            self._client_steps[key] = out
        return out

    def _capture_completed(self, accs: Any, net: frozenset[Any], cls: tuple[Client, ...],
                           g: Ghost, c: int) -> State:
        """Ghost: a completed capture with the highest ballot so far becomes the latest one and
        marks the captures still pending (they may take their place before it)."""
        b = cls[c][BALLOT]
        if b <= g[G_TOP]:
            return accs, net, cls, g
        marked = tuple(_with(x, {E: 1}) if x[PH] == CAPTURING else x for x in cls)
        return accs, net, marked, _with(g, {G_TOP: b, G_OWNER: c + 1})

    def _return(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        """The op is done: the driver's future resolves and the caller sees the result."""
        for c, x in enumerate(s[2]):
            if x[RESULT]:
                result = self.plain.thaw(x[RESULT])
                shown = result.outcome.value
                if result.value is not None:
                    shown += f" {self._show_value(result.value)}"
                yield (c, shown), self._end_attempt(s, c, result, x[RIVAL])

    def _end_attempt(self, s: State, c: int, result: OpResult | None, rival: Ballot | tuple[()]
                     ) -> State:
        """The current attempt of client ``c`` ended with ``result``: respond, or wait to retry."""
        accs, net, cls, g = s
        x = cls[c]
        if result is None:
            raise ModelError("core model: an op is done without a result")
        out = result.outcome
        base = _with(x, {OP: (), OUTBOX: (), E: 0, F: 0, RESULT: (), RIVAL: ()})
        want = x[WANT]
        if out is Outcome.PREEMPTED:
            rival = result.ballot if result.ballot is not None else rival
            arg = want if (want and x[PH] == WRITING) else 0
            if x[TRIES] < self.rounds:
                keep = {E: x[E], F: x[F]} if not want else {}
                y = _with(base, {PH: RETRY, ARG: arg, RET: spec.PREEMPTED, RIVAL: rival, **keep})
            elif want:
                y = _with(base, {PH: IDLE, ARG: arg, RET: spec.PREEMPTED})
            else:  # the read gives up (Contention): a timeout for the caller
                y = _with(base, {PH: IDLE, ARG: 0, RET: spec.TIMEOUT})
            return accs, net, _put(cls, c, y), g
        if want and out in (Outcome.OK, Outcome.ALREADY_WRITTEN):
            ret = spec.OK if out is Outcome.OK else spec.ALREADY_WRITTEN
            oks = g[G_OKS] | (1 << want if out is Outcome.OK else 0)
            return (accs, net, _put(cls, c, _with(base, {PH: IDLE, ARG: want, RET: ret})),
                    _with(g, {G_OKS: oks}))
        if not want and out is Outcome.OK:
            v = self.plain.value_index.get(result.value) if result.value is not None else None
            if v is None:
                raise ModelError(f"core model: a read returned {result.value!r}, not a value")
            return (accs, net, _put(cls, c, _with(base, {PH: IDLE, RET: spec.VALUE + v})),
                    _with(g, {G_READS: g[G_READS] | 1 << v}))
        if not want and out is Outcome.EMPTY:
            late = g[G_LATE_EMPTY] | x[F]
            return (accs, net, _put(cls, c, _with(base, {PH: IDLE, RET: spec.EMPTY})),
                    _with(g, {G_LATE_EMPTY: late}))
        raise ModelError(f"core model: client c{c}'s {'write' if want else 'read'} ended "
                         f"{out.value}, which this model cannot produce (no trims, no seals)")

    def _send_write(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        accs, net, cls, g = s
        for c, x in enumerate(cls):
            if x[PH] == CAPTURED:
                sent = {(c, x[ATTEMPT], a, r) for a, r in x[OUTBOX]}
                live = int(g[G_OWNER] == c + 1)  # ghost: was this capture still the latest?
                y = _with(x, {PH: WRITING, E: live, OUTBOX: ()})
                yield (c,), (accs, net | sent, _put(cls, c, y),
                             _with(g, {G_PROP: g[G_PROP] | 1 << x[WANT]}))

    def _end_preempted(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        """The driver's rule: a refused attempt whose other requests failed ends PREEMPTED."""
        if not self.timeouts:
            return
        for c, x in enumerate(s[2]):
            if x[PH] in (CAPTURING, WRITING, READING) and x[RIVAL] and not x[RESULT]:
                yield (c, str(x[RIVAL])), self._end_attempt(
                    s, c, OpResult(Outcome.PREEMPTED, ballot=x[RIVAL]), x[RIVAL])

    def _retry(self, s: State) -> Iterator[tuple[tuple[int, str], State]]:
        accs, net, cls, g = s
        for c, x in enumerate(cls):
            if x[PH] != RETRY:
                continue
            counter = self._counter(c, x[ROUND])
            ballot = counter.next(above=x[RIVAL] or None)
            op = self._new_op(x[WANT], ballot)
            k = x[ATTEMPT] + 1
            sends = op.start()
            y = _with(x, {PH: CAPTURING if x[WANT] else READING, TRIES: x[TRIES] + 1,
                          ROUND: counter.round, ATTEMPT: k, BALLOT: self.ballot_int(ballot),
                          RIVAL: (), OP: self.plain.freeze(op), RET: spec.NONE})
            if x[WANT]:
                y = _with(y, {E: 0, ARG: 0})
            yield (c, str(ballot)), (accs, net | self._requests(c, k, sends), _put(cls, c, y), g)

    def _timeout(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        """A pending operation gives up (``Unavailable``): its value, if a write, stays proposed."""
        if not self.timeouts:
            return
        accs, net, cls, g = s
        for c, x in enumerate(cls):
            if x[PH] in (CAPTURING, WRITING, READING) and not x[RESULT]:
                arg = x[WANT] if x[PH] == WRITING else 0
                y = _with(x, {PH: IDLE, ARG: arg, RET: spec.TIMEOUT, E: 0, F: 0, RIVAL: (),
                              OP: (), OUTBOX: ()})
                yield (c,), (accs, net, _put(cls, c, y), g)

    # -- acceptor actions --------------------------------------------------------------------

    def _deliver(self, s: State) -> Iterator[tuple[tuple[int, str, str], State]]:
        """An acceptor handles a request (still in the set: it may come again); its reply
        reaches the op that sent it at once, or is lost (see the module docstring). Steps that
        change nothing (a duplicate handled the same way, a reply the op ignores) are left out:
        they are stutters."""
        accs, net, cls, g = s
        for c, k, a, enc in net:
            acc, reply, vote, deferred = self._acceptor_step(accs[a], enc)
            # Ghost: a vote counts once it is durable, or once a reply showing it is seen.
            g_seen = self._vote(g, a, vote)
            g_lost = g if deferred else g_seen
            lost = s if acc == accs[a] and g_lost is g else (_put(accs, a, acc), net, cls, g_lost)
            label = f"c{c}#{k} {self._label(enc)}"
            if lost is not s:
                yield (a, label, "lost"), lost
            x = cls[c]
            # Only a running attempt takes replies. While a capture-then-write holds its write
            # (CAPTURED), the only replies are its capture's, which the op ignores once its
            # write exists: that reply is the "lost" step.
            if x[ATTEMPT] == k and x[PH] in (CAPTURING, WRITING, READING) and not x[RESULT]:
                t = self._client_receive((_put(accs, a, acc), net, cls, g_seen), c, a, reply)
                if t != lost:
                    yield (a, label, self._label(reply)), t

    def _vote(self, g: Ghost, a: int, vote: tuple[int, int] | None) -> Ghost:
        if vote is None or (a, *vote) in g[G_VOTES]:
            return g
        return _with(g, {G_VOTES: g[G_VOTES] | {(a, *vote)}})

    def _finished(self, s: State) -> Iterator[tuple[tuple[()], State]]:
        """The stutter step of a finished workload, so that its end is not a deadlock."""
        if all(x[PH] == IDLE and not self._has_next(x, c) for c, x in enumerate(s[2])):
            yield (), s

    def _has_next(self, x: Client, c: int) -> bool:
        if self.script is None:
            return bool(x[DONE_OPS] < self.ops)
        return bool(x[DONE_OPS] < len(self.script[c]))

    def _label(self, enc: Any) -> str:
        shown = self._labels.get(enc)
        if shown is None:
            shown = self._labels[enc] = self._show_msg(self.plain.thaw(enc))
        return shown

    def _client_receive(self, s: State, c: int, a: int, enc: Any) -> State:
        """The driver feeds acceptor ``a``'s reply to client ``c``'s op and sends what it returns."""
        accs, net, cls, g = s
        x = cls[c]
        rival = _rival(self.plain.thaw(enc), x[RIVAL])
        kind, out, sends = self._client_step(x[OP], a, enc)
        if kind == "done":  # the caller learns the result in a later step (Return)
            y = _with(x, {RIVAL: rival, OP: (), RESULT: self.plain.freeze(out)})
            return accs, net, _put(cls, c, y), g
        if kind == "captured":  # hold the write's Accepts (see the module docstring)
            y = _with(x, {PH: CAPTURED, RIVAL: rival, OP: out, OUTBOX: sends})
            return self._capture_completed(accs, net, _put(cls, c, y), g, c)
        y = _with(x, {RIVAL: rival, OP: out})
        sent = {(c, x[ATTEMPT], i, r) for i, r in sends}
        return accs, net | sent, _put(cls, c, y), g

    def _acceptor_step(self, acc: tuple[Any, Any], request_enc: Any
                       ) -> tuple[Any, Any, tuple[int, int] | None, bool]:
        """The real acceptor handles one request: its new (durable, unpersisted) records, the
        reply, the vote ``(ballot, value)`` it acknowledges or reveals (a promise or a read reply
        carrying the acceptor's accepted value), if any, and whether the reply goes out before
        the records are persisted (``ack_before_persist``)."""
        key = (acc, request_enc)
        hit = self._acceptor_steps.get(key) if self.cache else None
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        durable, pending = acc
        acceptor = Acceptor(self.plain.thaw_state(durable, pending), bugs=self.bugs)
        request = self.plain.thaw(request_enc)
        reply, persist = acceptor.handle(request)
        if persist.deferred:  # planted bug: reply now, persist later
            new = (durable, pending + tuple(self.plain.freeze(record_to_plain(r)) for r in persist))
        elif pending:
            raise ModelError("core model: a persisted reply behind unpersisted records")
        else:
            new = (self.plain.freeze_state(acceptor.state), ())
        vote = None  # the acceptance this reply acknowledges or reveals
        if isinstance(request, Accept) and reply.status is Status.OK:
            vote = (self.ballot_int(request.ballot), self.plain.value_index[request.value])
        elif isinstance(reply, (Promise, ReadReply)) and reply.accepted is not None:
            assert reply.value is not None
            vote = (self.ballot_int(reply.accepted), self.plain.value_index[reply.value])
        out = (new, self.plain.freeze(reply), vote, persist.deferred)
        if self.cache:
            self._acceptor_steps[key] = out
        return out

    def _persist(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        accs, net, cls, g = s
        for a, (durable, pending) in enumerate(accs):
            if pending:
                state = self.plain.thaw_state(durable, pending)
                st = state.get(WOR)
                if st.accepted is not None and st.value is not None:  # the vote is durable now
                    g = self._vote(s[3], a, (self.ballot_int(st.accepted),
                                             self.plain.value_index[st.value]))
                else:
                    g = s[3]
                yield (a,), (_put(accs, a, (self.plain.freeze_state(state), ())), net, cls, g)

    def _restart(self, s: State) -> Iterator[tuple[tuple[int], State]]:
        """A crash and restart: recovery replays the durable records; unpersisted ones are lost."""
        accs, net, cls, g = s
        if g[G_CRASHES] >= self.crashes:
            return
        for a, (durable, pending) in enumerate(accs):
            recovered = self._recover(durable)
            if recovered != (durable, pending):  # else nothing volatile to lose: a stutter
                yield (a,), (_put(accs, a, recovered), net, cls,
                             _with(g, {G_CRASHES: g[G_CRASHES] + 1}))

    def _recover(self, durable: tuple[Any, ...]) -> tuple[Any, Any]:
        """The acceptor a restart rebuilds from its durable records (``records.replay``)."""
        hit = self._recoveries.get(durable) if self.cache else None
        if hit is None:
            hit = (self.plain.freeze_state(self.plain.thaw_state(durable)), ())
            if self.cache:
                self._recoveries[durable] = hit
        return hit

    # -- refinement mapping ------------------------------------------------------------------

    def to_spec(self, s: State) -> spec.State:
        """The refinement mapping onto ``spec.WOR`` (that of ``model/wor/paxos.py``)."""
        ch = self.chosen(s)
        reg = min(v for _b, v in ch) if ch else 0
        g = s[3]
        out = []
        for x in s[2]:
            ph = x[PH]
            if ph == IDLE or (ph == RETRY and x[WANT]):
                out.append((spec.IDLE, x[ARG], 0, 0, x[RET]))
            elif ph == CAPTURING:
                out.append((spec.CAPTURE, 0, x[E], 0, spec.NONE))
            elif ph == CAPTURED:
                out.append((spec.IDLE, 0, 0, 1, spec.CAPTURED))
            elif ph == WRITING:
                done = spec.OK if (x[BALLOT], x[WANT]) in ch else 0
                out.append((spec.WRITE, x[WANT], done, x[E], spec.NONE))
            else:  # READING, or a read waiting to retry its repair
                res = spec.EMPTY if x[E] else spec.read_result(reg)
                out.append((spec.READ, 0, res, 0, spec.NONE))
        return (reg, g[G_OWNER], g[G_PROP], tuple(out))

    # -- display -----------------------------------------------------------------------------

    def _show_ballot(self, b: int) -> str:
        return f"({b // (self.clients + 1)},{b % (self.clients + 1)})" if b else "-"

    def _show_value(self, v: bytes | None) -> str:
        return "-" if v is None else v.decode("ascii", "replace")

    def _show_msg(self, msg: Any) -> str:
        """A message in a few words (``prepare (1,1)``, ``promise ok (1,1) acc (1,2)=b``)."""
        if isinstance(msg, Prepare):
            return f"prepare {msg.ballot}"
        if isinstance(msg, Accept):
            return f"accept {msg.ballot}={self._show_value(msg.value)}"
        if isinstance(msg, Read):
            return "read"
        if isinstance(msg, Promise):
            acc = f" acc {msg.accepted}={self._show_value(msg.value)}" if msg.accepted else ""
            return f"promise {msg.status.value} {msg.ballot}{acc}"
        if isinstance(msg, Accepted):
            return f"accepted {msg.status.value} {msg.ballot}"
        if isinstance(msg, ReadReply):
            acc = f" acc {msg.accepted}={self._show_value(msg.value)}" if msg.accepted else ""
            return f"read_reply {msg.status.value}{acc}"
        return type(msg).__name__

    def variables(self, s: State) -> Mapping[str, Any]:
        accs, net, cls, g = s
        shown_accs = {}
        for a, (durable, pending) in enumerate(accs):
            st = self.plain.thaw_state(durable, pending).get(WOR)
            acc = f"{st.accepted}={self._show_value(st.value)}" if st.accepted else "-"
            text = f"promised {st.promised} accepted {acc}"
            if pending:
                text += f" ({len(pending)} record(s) not persisted)"
            shown_accs[f"a{a}"] = text
        msgs = []
        for c, k, a, enc in net:
            msgs.append(f"c{c}#{k} -> a{a}: {self._show_msg(self.plain.thaw(enc))}")
        shown_cls = {}
        for c, x in enumerate(cls):
            what = f"write {self._show_value(self.value_bytes[x[WANT] - 1])}" if x[WANT] else "read"
            text = f"{PHASE_NAMES[x[PH]]}"
            if x[PH] != IDLE:
                text += f" {what} attempt {x[TRIES]} ballot {self._show_ballot(x[BALLOT])}"
            total = self.ops if self.script is None else len(self.script[c])
            text += f" ops {x[DONE_OPS]}/{total} ret {spec.ret_name(x[RET])}"
            shown_cls[f"c{c}"] = text
        return {
            "acceptors": shown_accs,
            "network": sorted(msgs),
            "clients": shown_cls,
            "chosen": sorted(f"{self._show_ballot(b)}={self._show_value(self.value_bytes[v - 1])}"
                             for b, v in self.chosen(s)),
            "latest_capture": f"c{g[G_OWNER] - 1} at {self._show_ballot(g[G_TOP])}"
            if g[G_OWNER] else "-",
            "crashes": g[G_CRASHES],
        }


def forget_spent(op: Any) -> None:
    """Clear the parts of an op that its code never reads again (dead variables), so that
    states differing only there are one state (a 4-9x reduction on two clients).

    * A :class:`CaptureWriteOp` whose ``write`` exists reads its ``capture`` only in
      ``retry(new_ballot)``, which clears the capture's promises and rejects first.
    * A :class:`ReadOp` whose ``repair`` exists reads ``replies`` only in ``retry(new_ballot)``,
      which clears them first.

    The tests run small configurations with and without this and compare the verdicts.
    """
    if isinstance(op, CaptureWriteOp) and op.write is not None:
        op.capture.promises.clear()
        op.capture.rejects.clear()
    elif isinstance(op, ReadOp) and op.repair is not None:
        op.replies.clear()


def parse_workload(text: str, clients: int, values: int
                   ) -> tuple[tuple[tuple[int, ...], ...], ...] | None:
    """Per client, separated by ``/``, its operations in order, separated by ``,``: ``writeV``
    (capture, then write value V, 1-based: ``write1`` writes ``b"a"``) or ``read``; ``|``
    separates alternatives for one operation (``write2|read``: the client writes b"b" or reads,
    both explored). ``""`` means no script: each client runs ``ops`` operations chosen from
    every write and the read. Returns per client per operation the choices (value written, 0
    for a read)."""
    if not text.strip():
        return None
    progs = text.split("/")
    if len(progs) != clients:
        raise ParameterError(f"impl.core: workload {text!r} has {len(progs)} client scripts "
                             f"for clients={clients}")
    out = []
    for prog in progs:
        steps = []
        for step in (t.strip() for t in prog.split(",") if t.strip()):
            steps.append(tuple(_parse_op(tok.strip(), values) for tok in step.split("|")))
        if not steps:
            raise ParameterError(f"impl.core: workload {text!r} gives a client no operation")
        out.append(tuple(steps))
    return tuple(out)


def _parse_op(tok: str, values: int) -> int:
    if tok == "read":
        return 0
    digits = tok.removeprefix("write")
    if digits == tok or not digits.isdigit() or not 1 <= int(digits) <= values:
        raise ParameterError(f"impl.core: workload operation {tok!r} is not read or "
                             f"write1..write{values}")
    return int(digits)


def _rival(reply: Any, seen: Ballot | tuple[()]) -> Ballot | tuple[()]:
    """The driver's rival ballot: the highest that refused this attempt (``impl/net/driver.py``)."""
    if isinstance(reply, (Promise, Accepted)) and reply.status is Status.PREEMPTED:
        if not seen or reply.promised > seen:
            return reply.promised
    return seen


def _bits(mask: int) -> list[int]:
    return [v for v in range(1, mask.bit_length()) if mask >> v & 1]


def _put(xs: tuple[Any, ...], i: int, x: Any) -> tuple[Any, ...]:
    return xs[:i] + (x,) + xs[i + 1:]


def _with(x: tuple[Any, ...], changes: Mapping[int, Any]) -> tuple[Any, ...]:
    out = list(x)
    for i, v in changes.items():
        out[i] = v
    return tuple(out)

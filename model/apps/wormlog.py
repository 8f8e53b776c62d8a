"""WormLog: a CORFU/Tango-style shared log over the atomic WormSpace, refining ``spec/sharedlog.py``.

Processes are sequencers and clients; every WormSpace call is one step of ``model/apps/space.py``
(range operations one address per step), so the model explores every interleaving of the
protocol over the WOS interface, not over Paxos (WORMSPACE.md section 4).

* **Sequencers** (soft state). A sequencer starts at any time: it ``alloc``\\s segment 0, 1, ...
  with its own id as metadata until one allocation is its own (the first allocation wins, so this
  is also **failover**: a new sequencer takes the next free segment, and the old one may keep
  serving its current segment for a while). It **pre-captures** its segment one address per
  step and hands out captured addresses in order. When the segment is used up it allocates the
  next one; if someone else got it first, it has been deposed and stops. A segment trimmed
  under it counts as used up.
* **Capture ids are the sequencer's.** The WOR contract lets a capture id be handed to another
  process (WORMSPACE.md section 1), and that is what a grant is: ``(address, sequencer)``. The
  client then writes *with the sequencer's capture id* (``space.write(..., p=sequencer)``), one
  WOS call; a later capture of the address by anyone (a filler) preempts it. Modelling the
  client as the capture holder would need a capture per append, which is the round trip the
  pre-capture exists to save.
* **append(v)**: get a grant, write ``v`` with it. ``OK``: the address is the answer.
  ``PREEMPTED`` (a filler captured it), ``ALREADY_WRITTEN`` (filled) or ``TRIMMED``: retry with
  a fresh grant (the preempted value stays proposed and may still land: the spec allows it). A
  client waiting for a grant may give up (``FAILED``: a timeout).
* **read(a)**: one WOS read of any address; an unallocated segment reads ``EMPTY``. A reader
  that meets a hole (allocated, ``EMPTY``) fills it after a timeout: the timeout is simply that
  the ``fill`` runs at any later point of the interleaving.
* **fill(a)**: capture ``a`` (as the reader), write ``JUNK``. ``OK``: ``JUNK``. ``PREEMPTED``:
  capture again. Otherwise (``ALREADY_WRITTEN``, ``TRIMMED``), read ``a`` and answer what it
  holds: a value that got there first survives.
* **check_tail()**: ``check`` segments 0, 1, ... up to the first unallocated one, then ask the
  sequencer named by the last allocated segment's metadata for its counter (if that segment was
  trimmed, its end). Allocation is in segment order, so that sequencer has handed out every
  address of every append completed before the call.
* **trim(p)**: ``p`` is a number of whole segments; trim segment 0, 1, ... in order; an
  unallocated segment ends it with ``NOT_ALLOCATED`` (the WOS contract's answer; ``space.trim``
  itself does not check allocation).
* **Silent steps**: ``Settle``, a preempted write's proposed value landing later.

Ghost variables (read only by invariants and the refinement mapping): ``given``, the addresses
returned by appends; ``dup``, a monitor set when an append returns an address already given;
per client ``lo``, the lowest tail it may answer (fixed when it invoked ``check_tail``).

``bug`` seeds one mistake (``BUGS``) for the mutation tests; ``wormlog_z3`` has its counterparts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError, Refinement
from wormspace.model.apps import space as W
from wormspace.spec import sharedlog as spec
from wormspace.spec.sharedlog import APPEND, EMPTY, FAILED, FILL, JUNK, NO_ANSWER, READ, TAIL

BUGS = {
    "duplicate_address": "a new sequencer that lost the alloc of a segment serves it anyway, "
                         "counting from offset 0 (a stale counter, no allocation)",
    "fill_overwrites": "a fill that meets ALREADY_WRITTEN answers JUNK, as if it had overwritten",
    "append_ignores_preempted": "an append whose write was PREEMPTED reports success",
    "stale_tail": "check_tail asks the first sequencer (q0) for its counter instead of finding "
                  "the current one (not in the Z3 encoding: caught by the refinement check)",
}

# Sequencer stages: (stage, seg, next, cap).
WAIT, SERVE, STOP = range(3)
SEQ_STAGES = ("waiting", "serving", "stopped")
# Client stages: (pc, stage, addr, q, lo, ret).
IDLE, GRANT, WRITE, HOLE, FCAP, FWRITE, FREAD, SCAN, ASK, TRIMMING = range(10)
STAGE_NAMES = ("idle", "waiting for a grant", "writing", "saw a hole", "fill: capturing",
               "fill: writing JUNK", "fill: reading", "check_tail: scanning",
               "check_tail: asking", "trimming")
OPS = ("append", "read", "tail", "trim")
DO_APPEND, DO_READ, DO_TAIL, DO_TRIM = range(4)

Seq = tuple[int, int, int, int]
Client = tuple[int, int, int, int, int, tuple[int, int, int]]
State = tuple[W.Space, tuple[Seq, ...], tuple[Client, ...], int, int]
Step = list[tuple[tuple[Any, ...], State]]


def parse_workload(text: str, segments: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """``"append,append/read,tail,trim"`` -> per client (``/``) its operations in order: ``append``,
    ``read`` (any address; a hole is then filled), ``tail`` (check_tail), ``trim`` or ``trimK``
    (the prefix of K whole segments, default 1). Returns ``(op, K)`` pairs."""
    out = []
    for prog in text.split("/"):
        steps = []
        for tok in (t.strip() for t in prog.split(",") if t.strip()):
            base = tok.rstrip("0123456789")
            k = int(tok[len(base):] or 1)
            if base not in OPS or (base != "trim" and tok != base) or not 1 <= k <= segments:
                raise ParameterError(f"apps.wormlog: bad workload operation {tok!r}; use "
                                     f"append, read, tail, trim or trimK (1 <= K <= {segments})")
            steps.append((OPS.index(base), k))
        out.append(tuple(steps))
    if not any(out):
        raise ParameterError("apps.wormlog: the workload has no operation")
    return tuple(out)


@dataclass
class WormLog(Model[State]):
    """WormLog with ``sequencers`` sequencers over ``segments`` segments of ``size`` addresses;
    one client per ``/``-separated script of ``workload``; client c appends value
    ``c % values + 1``."""

    segments: int = 2
    size: int = 2
    sequencers: int = 2
    values: int = 1
    workload: str = "append,append/read,tail,trim"
    bug: str = ""
    script: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if min(self.segments, self.size, self.sequencers, self.values) < 1:
            raise ParameterError("apps.wormlog: segments, size, sequencers, values must be >= 1")
        if self.segments * self.size > 30 or self.values >= JUNK:
            raise ParameterError("apps.wormlog: at most 30 addresses and 28 values")
        if self.bug and self.bug not in BUGS:
            raise ParameterError(f"apps.wormlog: unknown bug {self.bug!r}; one of {sorted(BUGS)}")
        self.script = parse_workload(self.workload, self.segments)
        self.clients = len(self.script)
        self.name = "apps.wormlog"
        self.params = {"segments": self.segments, "size": self.size,
                       "sequencers": self.sequencers, "values": self.values,
                       "workload": self.workload, "bug": self.bug}
        self.addresses = self.segments * self.size
        self.spec = spec.SharedLog(self.clients, self.values, self.addresses)
        # Per client and program counter: the value bit of its appends if one was invoked, and
        # the highest trim prefix invoked (what the spec's vprop and prefix are made of).
        self._vbit = [[(1 << self.value(c)) * any(op == DO_APPEND for op, _ in prog[:pc])
                       for pc in range(len(prog) + 1)] for c, prog in enumerate(self.script)]
        self._prefix = [[max([k * self.size for op, k in prog[:pc] if op == DO_TRIM], default=0)
                         for pc in range(len(prog) + 1)] for prog in self.script]

    def value(self, c: int) -> int:
        """The value client ``c`` appends."""
        return c % self.values + 1

    # -- model interface -----------------------------------------------------------------------

    def init_states(self) -> Iterable[State]:
        return [(W.empty(self.segments, self.size), ((WAIT, 0, 0, 0),) * self.sequencers,
                 ((0, IDLE, 0, 0, 0, NO_ANSWER),) * self.clients, 0, 0)]

    def actions(self) -> Sequence[Action[State]]:
        return [
            Action("SeqAlloc", self._seq_alloc, ("q", "s", "ret")),
            Action("SeqCapture", self._seq_capture, ("q", "s", "off")),
            Action("InvokeAppend", lambda st: self._invoke(st, DO_APPEND, GRANT), ("c",)),
            Action("Grant", self._grant, ("c", "q", "a")),
            Action("Write", self._write, ("c", "a", "ret")),
            Action("GiveUp", self._give_up, ("c",)),
            Action("Read", self._read, ("c", "a", "ret")),
            Action("FillCapture", self._fill_capture, ("c", "a", "ret")),
            Action("FillWrite", self._fill_write, ("c", "a", "ret")),
            Action("FillRead", self._fill_read, ("c", "a", "ret")),
            Action("TailCheck", self._tail_check, ("c", "s", "ret")),
            Action("TailAsk", self._tail_ask, ("c", "t")),
            Action("InvokeTrim", lambda st: self._invoke(st, DO_TRIM, TRIMMING), ("c",)),
            Action("TrimSegment", self._trim_segment, ("c", "s", "ret")),
            Action("Settle", self._settle, ("s", "off", "v")),
            Action("Terminated", self._terminated, ()),
        ]

    def invariants(self) -> Mapping[str, Callable[[State], bool]]:
        return {
            "UniqueAddresses": lambda st: not st[4],
            "GrantsFresh": self.grants_fresh,
            "OneSequencerPerSegment": lambda st: all(
                stage != SERVE or st[0][seg][0] == q + 1
                for q, (stage, seg, _n, _c) in enumerate(st[1])),
            "AllocationInOrder": lambda st: all(  # what check_tail's scan relies on
                st[0][s - 1][0] for s in range(1, self.segments) if st[0][s][0]),
            "AppendIsWritten": self.append_is_written,
            "ReadsAreStable": lambda st: spec.answers_hold(
                *self.log(st[0]), (x[5] for x in st[2] if x[5][0] != APPEND)),
        }

    def refinement(self) -> Refinement[State, spec.State]:
        return Refinement(self.spec, self.to_spec,
                          "log = the data WORs; an append takes effect when its write is OK, a "
                          "fill when its JUNK lands; trim when the segment is trimmed")

    def variables(self, st: State) -> Mapping[str, Any]:
        sp, seqs, cl, given, dup = st
        out: dict[str, Any] = {}
        for s, (meta, trimmed, regs) in enumerate(sp):
            out[f"seg{s}"] = {"meta": self._proc(meta - 1) if meta else "-",
                              "trimmed": bool(trimmed),
                              "regs": [self._show_reg(r) for r in regs]}
        out["sequencers"] = {f"q{q}": f"{SEQ_STAGES[x[0]]} seg={x[1]} next={x[2]} captured={x[3]}"
                             for q, x in enumerate(seqs)}
        out["clients"] = {f"c{c}": self._show_client(c, x) for c, x in enumerate(cl)}
        out["given"] = list(_bits(given))
        out["duplicate_given"] = bool(dup)
        return out

    # -- invariants and the mapping ------------------------------------------------------------

    def log(self, sp: W.Space) -> tuple[tuple[int, ...], int]:
        """Per address its WOR's value (0 = EMPTY), and the bitmask of trimmed addresses."""
        log = tuple(v for _m, _t, regs in sp for v, _o, _p in regs)
        trimmed = 0
        for s, seg in enumerate(sp):
            if seg[1]:
                trimmed |= ((1 << self.size) - 1) << (s * self.size)
        return log, trimmed

    def grants_fresh(self, st: State) -> bool:
        """No two clients hold a grant for one address, and no grant is of a given address."""
        held = [x[2] for x in st[2] if x[1] == WRITE]
        return len(set(held)) == len(held) and not any(st[3] >> a & 1 for a in held)

    def append_is_written(self, st: State) -> bool:
        """Every given address holds a data value (unless trimmed), and every append answer
        still holds."""
        log, trimmed = self.log(st[0])
        if any(not trimmed >> a & 1 and not 1 <= log[a] <= self.values for a in _bits(st[3])):
            return False
        return spec.answers_hold(log, trimmed, (x[5] for x in st[2] if x[5][0] == APPEND))

    def to_spec(self, st: State) -> spec.State:
        """The refinement mapping onto ``spec.SharedLog``."""
        sp, _seqs, cl, given, _dup = st
        log, trimmed = self.log(sp)
        prefix = vprop = fprop = 0
        clients = []
        for c, (pc, stage, a, _q, lo, ret) in enumerate(cl):
            prefix = max(prefix, self._prefix[c][pc])
            vprop |= self._vbit[c][pc]
            if stage in (IDLE, HOLE):
                clients.append((spec.IDLE, 0, 0, ret))
            elif stage in (GRANT, WRITE):
                clients.append((APPEND, self.value(c), 0, NO_ANSWER))
            elif stage in (FCAP, FWRITE, FREAD):
                clients.append((FILL, a, 0, NO_ANSWER))
                if log[a] == EMPTY and not trimmed >> a & 1:
                    fprop |= 1 << a
            elif stage in (SCAN, ASK):
                clients.append((TAIL, 0, lo, NO_ANSWER))
            else:
                clients.append((spec.TRIM, self.script[c][pc - 1][1] * self.size, 0, NO_ANSWER))
        return (log, trimmed, prefix, vprop, fprop, given, tuple(clients))

    # -- sequencers ------------------------------------------------------------------------------

    def _seq_alloc(self, st: State) -> Step:
        out: Step = []
        for q, (stage, seg, nxt, cap) in enumerate(st[1]):
            if stage == WAIT:
                s = seg
            elif stage == SERVE and nxt == self.size:
                s = seg + 1  # used up: allocate the next segment
            else:
                continue
            if s >= self.segments:  # the address space is used up
                out.append(((q, s, "none left"), _seq(st, q, (STOP, seg, nxt, cap))))
                continue
            for code, sp in W.alloc(st[0], s, q + 1):
                stale = self.bug == "duplicate_address" and stage == WAIT and code != W.TRIMMED
                if code == W.META + q + 1 or stale:
                    new = (SERVE, s, 0, 0)
                elif stage == WAIT:
                    new = (WAIT, s + 1, 0, 0)  # someone else's: try the next one
                else:
                    new = (STOP, seg, nxt, cap)  # deposed
                out.append(((q, s, _code(code)), _seq((sp, *st[1:]), q, new)))
        return out

    def _seq_capture(self, st: State) -> Step:
        out: Step = []
        for q, (stage, seg, nxt, cap) in enumerate(st[1]):
            if stage == SERVE and cap < self.size:
                for code, sp in W.capture(st[0], seg, cap, q):
                    new = (SERVE, seg, nxt, cap + 1) if code == W.CAPTURED else \
                        (SERVE, seg, self.size, self.size)  # trimmed under it: used up
                    out.append(((q, seg, cap), _seq((sp, *st[1:]), q, new)))
        return out

    # -- clients ---------------------------------------------------------------------------------

    def _ready(self, st: State, op: int) -> list[int]:
        """Idle clients whose next operation is ``op``."""
        return [c for c, (pc, stage, *_r) in enumerate(st[2])
                if stage == IDLE and pc < len(self.script[c]) and self.script[c][pc][0] == op]

    def _invoke(self, st: State, op: int, stage: int) -> Step:
        return [((c,), _client(st, c, (st[2][c][0] + 1, stage, 0, 0, 0, NO_ANSWER)))
                for c in self._ready(st, op)]

    def _in(self, st: State, *stages: int) -> list[tuple[int, Client]]:
        return [(c, x) for c, x in enumerate(st[2]) if x[1] in stages]

    def _grant(self, st: State) -> Step:
        out: Step = []
        for c, x in self._in(st, GRANT):
            for q, (stage, seg, nxt, cap) in enumerate(st[1]):
                if stage == SERVE and nxt < cap:
                    a = seg * self.size + nxt
                    t = _seq(st, q, (SERVE, seg, nxt + 1, cap))
                    out.append(((c, q, a), _client(t, c, (x[0], WRITE, a, q, 0, NO_ANSWER))))
        return out

    def _write(self, st: State) -> Step:
        out: Step = []
        for c, (pc, _stage, a, q, _lo, _ret) in self._in(st, WRITE):
            s, off = divmod(a, self.size)
            v = self.value(c)
            for code, sp in W.write(st[0], s, off, q, v):  # with the sequencer's capture id
                bad = self.bug == "append_ignores_preempted" and code == W.PREEMPTED
                if code == W.OK or bad:
                    bit = 1 << a
                    dup = st[4] | int(bool(st[3] & bit))  # the monitor: given twice
                    t: State = (sp, st[1], st[2], st[3] | bit, dup)
                    out.append(((c, a, _code(code)),
                                _client(t, c, (pc, IDLE, 0, 0, 0, (APPEND, a, v)))))
                else:  # retry with a fresh grant
                    out.append(((c, a, _code(code)),
                                _client((sp, *st[1:]), c, (pc, GRANT, 0, 0, 0, NO_ANSWER))))
        return out

    def _give_up(self, st: State) -> Step:
        return [((c,), _client(st, c, (x[0], IDLE, 0, 0, 0, (APPEND, 0, FAILED))))
                for c, x in self._in(st, GRANT)]

    def _read(self, st: State) -> Step:
        out: Step = []
        for c in self._ready(st, DO_READ):
            pc = st[2][c][0] + 1
            for a in range(self.addresses):
                for code, sp in W.read(st[0], *divmod(a, self.size)):
                    x = _entry(code)
                    stage = HOLE if code == W.EMPTY else IDLE  # a hole: fill it (later)
                    out.append(((c, a, _code(code)),
                                _client((sp, *st[1:]), c, (pc, stage, a, 0, 0, (READ, a, x)))))
        return out

    def _fill_capture(self, st: State) -> Step:
        out: Step = []
        for c, (pc, _stage, a, _q, _lo, _ret) in self._in(st, HOLE, FCAP):
            for code, sp in W.capture(st[0], *divmod(a, self.size), self.sequencers + c):
                nxt = FWRITE if code == W.CAPTURED else FREAD
                out.append(((c, a, _code(code)),
                            _client((sp, *st[1:]), c, (pc, nxt, a, 0, 0, NO_ANSWER))))
        return out

    def _fill_write(self, st: State) -> Step:
        out: Step = []
        for c, (pc, _stage, a, _q, _lo, _ret) in self._in(st, FWRITE):
            s, off = divmod(a, self.size)
            for code, sp in W.write(st[0], s, off, self.sequencers + c, JUNK):
                lie = self.bug == "fill_overwrites" and code == W.ALREADY_WRITTEN
                if code == W.OK or lie:
                    new = (pc, IDLE, 0, 0, 0, (FILL, a, JUNK))
                else:  # PREEMPTED: capture again; otherwise read what is there
                    new = (pc, FCAP if code == W.PREEMPTED else FREAD, a, 0, 0, NO_ANSWER)
                out.append(((c, a, _code(code)), _client((sp, *st[1:]), c, new)))
        return out

    def _fill_read(self, st: State) -> Step:
        out: Step = []
        for c, (pc, _stage, a, _q, _lo, _ret) in self._in(st, FREAD):
            for code, sp in W.read(st[0], *divmod(a, self.size)):
                new = (pc, IDLE, 0, 0, 0, (FILL, a, _entry(code))) if code != W.EMPTY else \
                    (pc, FCAP, a, 0, 0, NO_ANSWER)  # unreachable: the WOR was written or trimmed
                out.append(((c, a, _code(code)), _client((sp, *st[1:]), c, new)))
        return out

    def _tail_check(self, st: State) -> Step:
        """check(s): scan the allocated segments (the invocation checks segment 0)."""
        out: Step = []
        starts = [(c, (st[2][c][0] + 1, SCAN, 0, 0, st[3].bit_length(), NO_ANSWER))
                  for c in self._ready(st, DO_TAIL)]
        if self.bug == "stale_tail":  # no scan: ask q0
            return [((c, 0, "-"), _client(st, c, (x[0], ASK, 0, 1, x[4], NO_ANSWER)))
                    for c, x in starts]
        for c, (pc, _stage, s, m, lo, _ret) in starts + self._in(st, SCAN):
            for code, sp in W.check(st[0], s):
                if code == W.NOT_ALLOCATED:
                    new = (pc, ASK, s, m, lo, NO_ANSWER)
                else:  # allocated: remember its sequencer (unknown if trimmed), go on
                    m2 = code - W.META if code >= W.META else 0
                    new = (pc, SCAN if s + 1 < self.segments else ASK, s + 1, m2, lo, NO_ANSWER)
                out.append(((c, s, _code(code)), _client((sp, *st[1:]), c, new)))
        return out

    def _tail_ask(self, st: State) -> Step:
        out: Step = []
        for c, (pc, _stage, s, m, _lo, _ret) in self._in(st, ASK):
            if m:  # the sequencer of the last allocated segment: its counter
                _stg, seg, nxt, _cap = st[1][m - 1]
                t = seg * self.size + nxt
            else:  # nothing allocated, or the last allocated segment is trimmed: its end
                t = s * self.size
            out.append(((c, t), _client(st, c, (pc, IDLE, 0, 0, 0, (TAIL, t, 0)))))
        return out

    def _trim_segment(self, st: State) -> Step:
        out: Step = []
        for c, (pc, _stage, s, _q, _lo, _ret) in self._in(st, TRIMMING):
            k = self.script[c][pc - 1][1]
            if W.gate(st[0], s) == W.NOT_ALLOCATED:
                done = (pc, IDLE, 0, 0, 0, (spec.TRIM, k * self.size, spec.NOT_ALLOCATED))
                out.append(((c, s, "NOT_ALLOCATED"), _client(st, c, done)))
                continue
            for code, sp in W.trim(st[0], s):
                new = (pc, IDLE, 0, 0, 0, (spec.TRIM, k * self.size, spec.TRIMMED)) \
                    if s + 1 == k else (pc, TRIMMING, s + 1, 0, 0, NO_ANSWER)
                out.append(((c, s, _code(code)), _client((sp, *st[1:]), c, new)))
        return out

    def _settle(self, st: State) -> Step:
        return [((s, off, spec.entry_name(v)), (sp, st[1], st[2], st[3], st[4]))
                for (s, off, v), sp in W.settle(st[0])]

    def _terminated(self, st: State) -> Step:
        if all(x[1] == IDLE and x[0] == len(self.script[c]) for c, x in enumerate(st[2])):
            return [((), st)]
        return []

    # -- display ---------------------------------------------------------------------------------

    def _proc(self, p: int) -> str:
        """Process ``p`` by name: sequencers ``q0..``, clients ``c0..``."""
        return f"q{p}" if p < self.sequencers else f"c{p - self.sequencers}"

    def _show_reg(self, reg: tuple[int, int, int]) -> str:
        val, own, prop = reg
        text = spec.entry_name(val)
        if own:
            text += f" captured-by={self._proc(own - 1)}"
        if prop:
            text += f" proposed={[spec.entry_name(v) for v in _bits(prop)]}"
        return text

    def _show_client(self, c: int, x: Client) -> str:
        pc, stage, a, q, lo, ret = x
        prog = ",".join(OPS[op] + (str(k) if op == DO_TRIM else "") for op, k in self.script[c])
        text = f"[{prog}] done={pc} {STAGE_NAMES[stage]}"
        if stage in (WRITE, HOLE, FCAP, FWRITE, FREAD):
            text += f" @{a}" + (f" grant of q{q}" if stage == WRITE else "")
        elif stage in (SCAN, ASK):
            text += f" segment={a} last_meta={f'q{q - 1}' if q else '-'} answer>={lo}"
        if ret != NO_ANSWER:
            text += f" last {spec.show_answer(ret)}"
        return text


def _entry(code: int) -> int:
    """A WOS read code as a log entry: the value (JUNK included), EMPTY, or TRIMMED."""
    if code == W.TRIMMED:
        return spec.TRIMMED
    return code - W.VALUE if W.VALUE <= code < W.META else EMPTY


def _code(code: int) -> str:
    """A WOS answer, readably (JUNK by name)."""
    return spec.entry_name(code - W.VALUE) if W.VALUE <= code < W.META else W.code_name(code)


def _seq(st: State, q: int, x: Seq) -> State:
    seqs = st[1]
    return (st[0], seqs[:q] + (x,) + seqs[q + 1:], st[2], st[3], st[4])


def _client(st: State, c: int, x: Client) -> State:
    cl = st[2]
    return (st[0], st[1], cl[:c] + (x,) + cl[c + 1:], st[3], st[4])


def _bits(mask: int) -> Iterable[int]:
    return (i for i in range(mask.bit_length()) if mask >> i & 1)

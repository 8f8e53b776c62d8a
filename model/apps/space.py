"""The atomic WormSpace as an application sees it: every WOS operation is one step.

The application models (``wormpaxos``, ``wormlog``, ``wormtx``) are written over the *atomic*
WOS interface (``spec/wos.py``), not over its protocol module: that is the layering that keeps
their state spaces small (WORMSPACE.md section 4). This module is that interface in the form
an application model uses: pure functions from a space state and an operation to the list of
``(code, new_space)`` outcomes the interface allows.

Why one step per operation is enough. Each application process runs one WOS operation at a
time and observes nothing but its response. The interface is linearizable (its contract,
``docs/layers/wos.md``), and for a linearizable object every behaviour a client program can
observe is one it could observe with the operation executed atomically at its linearization
point (observational refinement: Filipović, O'Hearn, Rinetzky, Yang, *Abstraction for
concurrent objects*, 2010). So an application step "invoke op, take its response" is modelled as
one atomic transition, with every response the contract allows at that point. Two things of the
WOR contract survive the collapse and are kept here:

* a write that did not take effect (``PREEMPTED``, or ``TIMEOUT`` with ``flaky``) leaves its value
  *proposed* in the register, and a proposed value may still be written later, by a silent step
  (:func:`settle`, the spec's ``ProposedTakesEffect``), for as long as the register is empty: a
  Paxos capture that finds the value at a minority of acceptors finishes it;
* with ``flaky``, any operation may time out, either before or after taking effect.

A write carries the capture id of the process's *preceding* operation on that register (the
WOR contract, ``docs/layers/wor.md``): a process writes a register right after capturing it, with
no read of that register in between (a read may repair the register with a higher ballot and so
preempt its own reader's capture). To learn what a predecessor left in a register, capture it and
write: ``ALREADY_WRITTEN`` says it holds a value, which a read then returns. :func:`write` cannot
see this rule (it has no per-process memory); application models keep it, and the tests of this
module check one-step histories that keep it against ``spec/wor.py``.

Range operations (``capture_range``, ``write_range``) are *not* atomic in the interface: each
register of the range behaves on its own. Application models therefore issue them as one step
per address, so every interleaving of two ranges is explored.

State (plain ints and tuples)::

    space     per segment (meta, trimmed, regs)
      meta      0, or the winning metadata 1..
      trimmed   0/1: every operation on the segment answers TRIMMED
      regs      per offset (val, owner, prop)
        val       0 (EMPTY) or the written value 1..
        owner     0, or p+1 when process p holds the latest capture of the register
        prop      bitmask of values written by writes that have not taken effect (0 once
                  the register is written)

Codes are the interface's (``spec/wos.py``): ``CAPTURED``, ``PREEMPTED``, ``OK``,
``ALREADY_WRITTEN``, ``EMPTY``, ``TIMEOUT``, ``VALUE + v``, ``NOT_ALLOCATED``, ``TRIMMED``,
``META + m``. Values must stay below ``META - VALUE`` (30).
"""

from __future__ import annotations

from collections.abc import Iterable

from wormspace.spec.wos import (
    ALREADY_WRITTEN,
    CAPTURED,
    EMPTY,
    META,
    NOT_ALLOCATED,
    OK,
    PREEMPTED,
    TIMEOUT,
    TRIMMED,
    VALUE,
    code_name,
)

__all__ = [
    "ALREADY_WRITTEN",
    "CAPTURED",
    "EMPTY",
    "META",
    "NOT_ALLOCATED",
    "OK",
    "PREEMPTED",
    "TIMEOUT",
    "TRIMMED",
    "VALUE",
    "alloc",
    "capture",
    "check",
    "code_name",
    "empty",
    "gate",
    "owner",
    "read",
    "settle",
    "trim",
    "value",
    "write",
]

Reg = tuple[int, int, int]
Seg = tuple[int, int, tuple[Reg, ...]]
Space = tuple[Seg, ...]
Outcomes = list[tuple[int, Space]]

EMPTY_REG: Reg = (0, 0, 0)


def empty(segments: int, size: int) -> Space:
    """A fresh address space: ``segments`` unallocated segments of ``size`` empty registers."""
    if segments < 1 or size < 1:
        raise ValueError("space: at least one segment of at least one address")
    return ((0, 0, (EMPTY_REG,) * size),) * segments


def value(sp: Space, s: int, off: int) -> int:
    """The value written at ``(s, off)`` (0 if empty): what the WOR has decided."""
    return sp[s][2][off][0]


def owner(sp: Space, s: int, off: int) -> int:
    """The process holding the latest capture of ``(s, off)``, or -1."""
    return sp[s][2][off][1] - 1


def gate(sp: Space, s: int) -> int | None:
    """The code every operation on segment ``s`` answers regardless of its arguments, if any."""
    meta, trimmed, _ = sp[s]
    if trimmed:
        return TRIMMED
    if meta == 0:
        return NOT_ALLOCATED
    return None


def _timeouts(flaky: bool, before: Space, after: Space) -> Outcomes:
    """The TIMEOUT outcomes: the operation took effect (``after``) or not yet (``before``)."""
    if not flaky:
        return []
    return [(TIMEOUT, before)] if before == after else [(TIMEOUT, before), (TIMEOUT, after)]


def _seg(sp: Space, s: int, seg: Seg) -> Space:
    return sp[:s] + (seg,) + sp[s + 1:]


def _reg(sp: Space, s: int, off: int, reg: Reg) -> Space:
    meta, trimmed, regs = sp[s]
    return _seg(sp, s, (meta, trimmed, regs[:off] + (reg,) + regs[off + 1:]))


# -- segment operations --------------------------------------------------------------------------


def alloc(sp: Space, s: int, m: int, *, flaky: bool = False) -> Outcomes:
    """``alloc(s, m)``: the first allocation wins; the answer names the winner (``META + w``)."""
    if m < 1:
        raise ValueError("alloc: metadata values are 1..")
    meta, trimmed, regs = sp[s]
    if trimmed:
        return [(TRIMMED, sp)] + _timeouts(flaky, sp, sp)
    after = sp if meta else _seg(sp, s, (m, 0, regs))
    return [(META + (meta or m), after)] + _timeouts(flaky, sp, after)


def check(sp: Space, s: int, *, flaky: bool = False) -> Outcomes:
    """``check(s)``: ``META + m``, ``NOT_ALLOCATED`` or ``TRIMMED``."""
    meta, trimmed, _ = sp[s]
    code = TRIMMED if trimmed else META + meta if meta else NOT_ALLOCATED
    return [(code, sp)] + _timeouts(flaky, sp, sp)


def trim(sp: Space, s: int, *, flaky: bool = False) -> Outcomes:
    """``trim(s)``: afterwards every operation on the segment answers ``TRIMMED``
    (``NOT_ALLOCATED`` if nobody allocated it).

    The segment's registers are dropped (reset), as the servers drop a trimmed segment's state.
    """
    meta, trimmed, regs = sp[s]
    if not meta and not trimmed:  # only allocated segments serve (docs/layers/wos.md, 2)
        return [(NOT_ALLOCATED, sp)] + _timeouts(flaky, sp, sp)
    after = _seg(sp, s, (meta, 1, (EMPTY_REG,) * len(regs)))
    return [(TRIMMED, after)] + _timeouts(flaky, sp, after)


# -- register operations -------------------------------------------------------------------------


def capture(sp: Space, s: int, off: int, p: int, *, flaky: bool = False) -> Outcomes:
    """Process ``p`` captures ``(s, off)``: it now holds the latest capture id."""
    g = gate(sp, s)
    if g is not None:
        return [(g, sp)] + _timeouts(flaky, sp, sp)
    val, _own, prop = sp[s][2][off]
    after = _reg(sp, s, off, (val, p + 1, prop))
    return [(CAPTURED, after)] + _timeouts(flaky, sp, after)


def write(sp: Space, s: int, off: int, p: int, v: int, *, flaky: bool = False) -> Outcomes:
    """Process ``p`` writes ``v`` to ``(s, off)`` with its capture id.

    * the register holds another value: ``ALREADY_WRITTEN`` (the WOR finished that one);
    * ``p`` holds the latest capture: the write takes effect (``OK``; ``OK`` too if ``v`` is
      already there);
    * someone captured since: ``PREEMPTED``, and ``v`` stays proposed (it may be written later).
    """
    if not 1 <= v < META - VALUE:
        raise ValueError(f"write: values are 1..{META - VALUE - 1}")
    g = gate(sp, s)
    if g is not None:
        return [(g, sp)] + _timeouts(flaky, sp, sp)
    val, own, prop = sp[s][2][off]
    if val not in (0, v):
        return [(ALREADY_WRITTEN, sp)] + _timeouts(flaky, sp, sp)
    # Once a register is written its proposals no longer matter: they are cleared (fewer states).
    proposed = sp if val else _reg(sp, s, off, (val, own, prop | 1 << v))
    if own != p + 1:
        return [(PREEMPTED, proposed)] + _timeouts(flaky, proposed, proposed)
    after = _reg(sp, s, off, (v, own, 0))
    return [(OK, after)] + _timeouts(flaky, proposed, after)


def read(sp: Space, s: int, off: int, *, flaky: bool = False) -> Outcomes:
    """Read ``(s, off)``: ``VALUE + v`` or ``EMPTY`` (or the segment's gate code)."""
    g = gate(sp, s)
    if g is not None:
        return [(g, sp)] + _timeouts(flaky, sp, sp)
    val = sp[s][2][off][0]
    return [(VALUE + val if val else EMPTY, sp)] + _timeouts(flaky, sp, sp)


def settle(sp: Space) -> Iterable[tuple[tuple[int, int, int], Space]]:
    """The silent steps: a proposed value of an empty register takes effect.

    Yields ``((s, off, v), new_space)``. Application models add an action for it (the spec's
    ``ProposedTakesEffect``) so a preempted or timed-out write may still land later.
    """
    for s, (_meta, trimmed, regs) in enumerate(sp):
        if trimmed:
            continue
        for off, (val, own, prop) in enumerate(regs):
            if val or not prop:
                continue
            v = 1
            while prop >> v:
                if prop >> v & 1:
                    yield (s, off, v), _reg(sp, s, off, (v, own, 0))
                v += 1

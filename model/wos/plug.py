"""The plug: how a module drives instances of the layer below it, whatever implements that layer.

A :class:`WorPlug` wraps one lower WOR model (the atomic spec ``wor``, or the protocol
``wor.paxos``) and offers the upper module exactly what a client of a WOR can do and see:

* ``init()``: the register's initial state;
* ``invoke(w, c, op, arg)``: the successors of running the lower model's *own* invocation action
  for client ``c`` (``InvokeCapture``/``InvokeWrite``/... of the spec, ``Capture``/``Write``/...
  of Paxos), so the lower model stays the one authority on what an invocation does;
* ``view(w)``: the state seen through the lower model's refinement mapping to the WOR spec
  (the identity for the spec itself). ``idle``, ``ret``, ``holds`` and ``reg`` read a client's
  slot and the register from that view: a client knows whether its operation returned, what it
  returned and whether it holds a capture id; ``reg`` is for invariants and mappings only;
* ``internal``: the lower model's other actions (effects, messages, responses, time-outs),
  which the upper module runs as its own "WOR[i] internal step" actions.

The plug also checks the one assumption the WOR contract puts on its users
(``docs/layers/wor.md``): *at most one unsafe write per register*. The atomic spec serializes
two unsafe writes harmlessly, so a module explored over the spec would never notice breaking
it; the plug records which clients invoked an unsafe write on each register (a ghost bitmask)
and the module turns "at most one such client" into an invariant.

An instance's state is ``(lower state, bitmask of clients that invoked an unsafe write)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from wormspace.checker.model import Action, Model, ParameterError
from wormspace.spec import wor as spec

#: The lower models a plug knows: invocation action per WOR operation, the actions that are
#: not client invocations, and the lower model's give-up action.
LOWERS: dict[str, dict[str, Any]] = {
    "wor": {
        "invoke": {spec.CAPTURE: "InvokeCapture", spec.WRITE: "InvokeWrite",
                   spec.UWRITE: "InvokeUnsafeWrite", spec.READ: "InvokeRead"},
        "internal": ("WriteTakesEffect", "ProposedTakesEffect", "CaptureReturns", "Respond",
                     "GiveUp"),
        "give_up": "GiveUp",
    },
    "wor.paxos": {
        "invoke": {spec.CAPTURE: "Capture", spec.WRITE: "Write", spec.UWRITE: "UnsafeWrite",
                   spec.READ: "Read"},
        # Restart is left out: without a seeded bug it is the identity (durable state).
        "internal": ("CaptureDone", "WriteDone", "ReadDecide", "ReadRepaired", "Timeout",
                     "Promise", "Accept"),
        "give_up": "Timeout",
    },
}

Inst = tuple[Any, int]


def make_lower(lower: str, clients: int, values: int, **extra: Any) -> Model[Any]:
    """The lower model named ``lower`` for ``clients`` clients and ``values`` values."""
    if lower == "wor":
        return spec.WOR(clients, values)
    if lower == "wor.paxos":
        from wormspace.model.wor.paxos import PaxosWOR

        return PaxosWOR(clients=clients, values=values, unsafe=True, **extra)
    raise ParameterError(f"lower must be one of {', '.join(LOWERS)}, not {lower!r}")


class WorPlug:
    """Drives instances of one lower WOR model for a module above it (see the module doc)."""

    def __init__(self, lower: str, clients: int, values: int, *, give_up: bool = True,
                 **extra: Any) -> None:
        self.lower = lower
        self.model = make_lower(lower, clients, values, **extra)
        table = LOWERS[lower]
        acts = {a.name: a for a in self.model.actions()}
        self._invoke = {op: acts[name] for op, name in table["invoke"].items()}
        self.internal: list[Action[Any]] = [
            acts[n] for n in table["internal"] if give_up or n != table["give_up"]]
        ref = self.model.refinement()
        if ref is None:
            self.view: Callable[[Any], spec.State] = lambda w: w
        else:
            # The mapping is a pure function of the state; the same register state recurs in
            # many composite states, so remember recent views.
            self.view = lru_cache(maxsize=1 << 16)(ref.mapping)

    def init(self) -> Inst:
        """An instance's initial state."""
        return (next(iter(self.model.init_states())), 0)

    def invoke(self, inst: Inst, c: int, op: int, arg: int = 0) -> list[Inst]:
        """Client ``c`` invokes ``op`` (``spec.CAPTURE``, ``WRITE``, ``UWRITE``, ``READ``)."""
        w, uw = inst
        want = (c,) if op in (spec.CAPTURE, spec.READ) else (c, arg)
        if op == spec.UWRITE:
            uw |= 1 << c
        return [(t, uw) for p, t in self._invoke[op].successors(w) if p == want]

    def slot(self, inst: Inst, c: int) -> spec.Client:
        """Client ``c``'s slot in the spec view."""
        return self.view(inst[0])[3][c]

    def idle(self, inst: Inst, c: int) -> bool:
        """Client ``c`` has no operation pending on this register."""
        return self.view(inst[0])[3][c][0] == spec.IDLE

    def ret(self, inst: Inst, c: int) -> int:
        """Client ``c``'s last answer from this register."""
        return self.view(inst[0])[3][c][4]

    def holds(self, inst: Inst, c: int) -> bool:
        """Client ``c`` is idle and holds the capture id of its last capture."""
        x = self.view(inst[0])[3][c]
        return x[0] == spec.IDLE and bool(x[3])

    def reg(self, inst: Inst) -> int:
        """The register's value in the spec view (0: EMPTY). For invariants and mappings."""
        return self.view(inst[0])[0]

    def contract_respected(self, inst: Inst) -> bool:
        """The WOR's usage assumption: at most one unsafe write per register."""
        return inst[1] & (inst[1] - 1) == 0

    def steps(self, action: Action[Any], inst: Inst) -> list[tuple[tuple[Any, ...], Inst]]:
        """One internal ``action`` of the lower model, applied to an instance."""
        uw = inst[1]
        return [(p, (t, uw)) for p, t in action.successors(inst[0])]

    def invariants(self) -> Mapping[str, Callable[[Any], bool]]:
        """The lower model's invariants, on an instance's lower state."""
        return self.model.invariants()

    def names(self) -> Sequence[str]:
        """The lower internal actions' names."""
        return [a.name for a in self.internal]

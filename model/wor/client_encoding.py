"""Formula helpers shared by the WOR layer's Z3 encodings (``paxos_z3``, ``chain_z3``).

Both encodings keep, per client, the symbols ``phase``, ``retc`` (and others) as functions of
the client, define each action's post-state mypyvy-style with :meth:`step`, and use a ``none``
value and a ballot/capture order ``le``. A subclass sets ``V`` (the vocabulary), ``le``,
``none``, ``ph`` (phase constants), ``rc`` (response constants) and ``sym`` (symbols by name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wormspace.checker.prove import Formula


class ClientEncoding:
    """Helpers over an encoding's vocabulary (see the module docstring)."""

    V: Any
    le: Any
    none: Any
    phase: Any
    ph: dict[str, Any]
    rc: dict[str, Any]
    sym: dict[str, Any]

    def lt(self, a: Any, b: Any) -> Formula:
        """Strictly below in the order ``le``."""
        return self.V.And(self.le(a, b), self.V.Not(self.V.eq(a, b)))

    def real(self, v: Any) -> Formula:
        """``v`` is a value, not ``none``."""
        return self.V.Not(self.V.eq(v, self.none))

    def in_phase(self, c: Any, *names: str) -> Formula:
        """Client ``c`` is in one of the named phases (pre-state)."""
        return self.V.Or(*[self.V.eq(self.phase.pre(c), self.ph[n]) for n in names])

    def step(self, modifies: tuple[str, ...], **bodies: Callable[..., Any]) -> Formula:
        """The definitions of every modified symbol's post-state; a symbol of ``modifies``
        without a body keeps its value in this branch of the action."""
        V = self.V
        return V.And(*[V.define(self.sym[m], bodies.get(m, self.sym[m].pre)) for m in modifies])

    def field_value(self, name: str, val: Any) -> Any:
        """A client field's value as a term (phase and response names become constants)."""
        if name == "phase":
            return self.ph[val]
        if name == "retc" and isinstance(val, str):
            return self.rc[val]
        return val

    def client(self, c: Any, **fields: Any) -> dict[str, Callable[..., Any]]:
        """Bodies setting client ``c``'s fields, every other client keeping its own."""
        V = self.V
        out: dict[str, Callable[..., Any]] = {}
        for name, val in fields.items():
            f, term = self.sym[name], self.field_value(name, val)
            out[name] = lambda x, f=f, term=term: V.If(V.eq(x, c), term, f.pre(x))
        return out

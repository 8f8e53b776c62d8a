"""The model interface: what the checker explores.

A model is a small object, in the spirit of Stateright's ``Model`` trait:

* ``name``: a short name used in output;
* ``init_states()``: the initial states;
* ``actions()``: named actions, each a function from a state to its successors with the
  parameters that produced them: a list or tuple of ``(params, next_state)`` pairs (a generator
  function is accepted too, and wrapped);
* ``invariants()``: named state predicates.

Optional methods (the base class :class:`Model` gives defaults):

* ``canonical(s)``: the exact representative of ``s``'s symmetry orbit (used with ``--symmetry``);
* ``within_bounds(s)``: a state constraint; a state outside it is counted as generated but is
  neither stored nor expanded, as TLC does with ``CONSTRAINT``;
* ``variables(s)``: readable names and values for traces, reports and ITF files;
* ``refinement()``: a :class:`Refinement`, the specification this model implements and the
  mapping from its states to the specification's states.

**States are plain immutable values**: ints, bools, tuples and frozensets of those. They are
fingerprinted with Python's built-in hash, which is stable across processes for exactly those
types (strings are salted per process by ``PYTHONHASHSEED`` and ``None`` hashes by address on
Python 3.11), so models use small-integer index constants and give readable names through
``variables``. The checker validates this on the first states it sees.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

S = TypeVar("S")
T = TypeVar("T")

#: The parameters of one action step, for display only (they are never part of a state).
Params = tuple[Any, ...]
#: A successor function: the successors of a state, each with the parameters that produced it.
SuccessorFn = Callable[[Any], Iterable[tuple[Params, Any]]]


@dataclass(frozen=True)
class Action(Generic[S]):
    """A named action: ``successors(s)`` yields ``(params, t)`` for every step ``s -> t``.

    ``param_names`` name the entries of ``params`` (for traces: ``RMPrepare(rm=r1)``).
    """

    name: str
    successors: Callable[[S], Iterable[tuple[Params, S]]]
    param_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The checker's loop takes len() of each batch of successors (TLC counts a batch at
        # once); a generator function is wrapped so it returns a list.
        if inspect.isgeneratorfunction(self.successors):
            gen = self.successors
            object.__setattr__(self, "successors", lambda s: list(gen(s)))

    def describe(self, params: Params) -> str:
        """``Name(p1=v1, ...)``, the way a step is shown in traces."""
        if not params:
            return self.name
        if self.param_names and len(self.param_names) == len(params):
            inner = ", ".join(f"{k}={_show(v)}" for k, v in zip(self.param_names, params))
        else:
            inner = ", ".join(_show(v) for v in params)
        return f"{self.name}({inner})"

    def params_dict(self, params: Params) -> dict[str, Any]:
        """Parameters as a name -> value mapping (for JSON traces)."""
        if self.param_names and len(self.param_names) == len(params):
            return dict(zip(self.param_names, params))
        return {f"p{i}": v for i, v in enumerate(params)}


def _show(v: Any) -> str:
    return v if isinstance(v, str) else repr(v)


@dataclass(frozen=True)
class Refinement(Generic[S, T]):
    """A refinement claim: every behaviour of the module, seen through ``mapping``, is a
    behaviour of ``spec`` (each step maps to a spec step or to a stutter)."""

    spec: Model[T]
    mapping: Callable[[S], T]
    description: str = ""


@dataclass
class Model(Generic[S]):
    """Base class for models: subclass it and override the methods that apply.

    The checker calls only the methods listed in this module's docstring; everything about
    *how* to search (BFS, simulation, symmetry, deadlock checking) is chosen by the checker.
    """

    name: str = field(default="model", init=False)
    #: The parameters the model was built with, for output and reports.
    params: dict[str, Any] = field(default_factory=dict, init=False)

    def init_states(self) -> Iterable[S]:
        """The initial states."""
        raise NotImplementedError

    def actions(self) -> Sequence[Action[S]]:
        """The named actions."""
        raise NotImplementedError

    def invariants(self) -> Mapping[str, Callable[[S], bool]]:
        """Named state invariants (every reachable state must satisfy each)."""
        return {}

    def canonical(self, s: S) -> S:
        """The exact orbit representative of ``s`` under the model's symmetry.

        The default is the identity (no symmetry). An override must be *exact*: two states
        get the same representative if and only if one is a permutation of the other.
        """
        return s

    def has_symmetry(self) -> bool:
        """Whether ``canonical`` is overridden (so ``--symmetry`` means something)."""
        return type(self).canonical is not Model.canonical

    def within_bounds(self, s: S) -> bool:
        """The state constraint: states outside it are not stored or expanded."""
        return True

    def has_bounds(self) -> bool:
        """Whether ``within_bounds`` is overridden."""
        return type(self).within_bounds is not Model.within_bounds

    def variables(self, s: S) -> Mapping[str, Any]:
        """Readable variable names and values of a state (for traces and reports)."""
        return {"state": s}

    def refinement(self) -> Refinement[S, Any] | None:
        """The specification this model refines, with the mapping, or ``None``."""
        return None


class ModelError(Exception):
    """A model is malformed or misbehaved (raised inside an action, bad state, ...).

    The message names the model, and where known the action and the state.
    """


class ParameterError(Exception):
    """A model was asked for with an unknown or ill-typed parameter."""

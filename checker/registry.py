"""Named, parameterised models: how a name and ``-p KEY=VALUE`` become a model instance.

The checker knows nothing of WormSpace: the project's catalog (``wormspace.catalog``) lists
its entries with this module's :class:`Entry`; a user may also name any
``package.module:attribute`` (a model instance, or a class/factory taking keyword parameters).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Model, ModelError, ParameterError


@dataclass(frozen=True)
class Param:
    """A model parameter: its default (which also fixes its type) and what it means."""

    default: Any
    help: str = ""
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Entry:
    """A registered model or specification.

    ``target`` is ``"package.module:attribute"``, imported only when the entry is used (so
    listing the catalog imports nothing heavy). ``proof`` optionally names the function that
    builds the entry's Z3 proof suite.
    """

    name: str
    kind: str  # "spec" or "model"
    target: str
    description: str
    params: Mapping[str, Param] = field(default_factory=dict)
    refines: str | None = None
    proof: str | None = None
    conformance: str | None = None


def load_attr(target: str) -> Any:
    """Import ``package.module:attribute``."""
    if ":" not in target:
        raise ModelError(f"{target!r} is not a registered name nor of the form package.module:attribute")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ModelError(f"module {module_name!r} has no attribute {attr!r}") from exc
    return obj


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """``["rm=3", "bug=x"]`` -> ``{"rm": "3", "bug": "x"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter {pair!r} is not of the form KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def convert(name: str, raw: str, default: Any) -> Any:
    """Convert a command-line string to the type of the parameter's default."""
    if isinstance(default, bool):
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ParameterError(f"parameter {name} must be true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ParameterError(f"parameter {name} must be an integer, not {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ParameterError(f"parameter {name} must be a number, not {raw!r}") from None
    return raw


def instantiate(target: str, params: Mapping[str, Param], raw: Mapping[str, str],
                name: str) -> Model[Any]:
    """Build the model ``target`` with defaults overridden by ``raw`` (strings)."""
    obj = load_attr(target)
    if isinstance(obj, Model):
        if raw:
            raise ParameterError(f"{name} is a model instance and takes no parameters")
        return obj
    if not callable(obj):
        raise ModelError(f"{target} is neither a model nor a factory of models")
    known = dict(params)
    if not known:  # not registered: take the factory's own signature
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            for pname, p in sig.parameters.items():
                if p.default is not inspect.Parameter.empty:
                    known[pname] = Param(p.default)
    # Registered defaults are authoritative (they may differ from the factory's own).
    kwargs: dict[str, Any] = {k: p.default for k, p in params.items()}
    for key, value in raw.items():
        if key not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise ParameterError(f"{name} has no parameter {key!r} (parameters: {listed})")
        spec = known[key]
        kwargs[key] = convert(key, value, spec.default)
        if spec.choices and kwargs[key] not in spec.choices:
            allowed = ", ".join(repr(c) for c in spec.choices)
            raise ParameterError(f"parameter {key} of {name} must be one of {allowed}")
    try:
        model = obj(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"{name}: {exc}") from exc
    if not isinstance(model, Model):
        raise ModelError(f"{target} did not return a Model (got {type(model).__name__})")
    return model

"""Command-line subcommands of the implementation (``wormspace server``, ``cluster``, ...).

``register(subparsers)`` is called by ``wormspace.main`` to add them; each subcommand sets
``func`` to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    """Add the implementation's subcommands to the ``wormspace`` parser."""

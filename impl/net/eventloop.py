"""Which asyncio event loop the servers and clients run on.

uvloop (libuv under asyncio's API) when it is installed, else the standard loop. uvloop is a
plain dependency on Linux and macOS (see docs/architecture.md, "Dependencies"); setting
``WORMSPACE_LOOP=asyncio`` forces the standard loop (to compare, or to debug with asyncio's
debug mode). Everything in :mod:`wormspace.impl.net` is written against the asyncio API only,
so both loops run the same code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop :func:`run` will use."""
    if os.environ.get("WORMSPACE_LOOP", "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_name` names."""
    if loop_name() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)

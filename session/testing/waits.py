"""Waiting in tests for a condition instead of for a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: how long :func:`until` polls at the most (seconds): far above any loaded machine's delay
UNTIL_BOUND_S = 5.0
_STEP_S = 0.01


async def until(pred: Callable[[], bool], what: str = "condition") -> None:
    """Return once ``pred()`` holds, checking every 10 ms; AssertionError after
    :data:`UNTIL_BOUND_S` seconds naming ``what``."""
    for _ in range(int(UNTIL_BOUND_S / _STEP_S)):
        if pred():
            return
        await asyncio.sleep(_STEP_S)
    if not pred():
        raise AssertionError(f"{what} not reached within {UNTIL_BOUND_S:.0f} s")

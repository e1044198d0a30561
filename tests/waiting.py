"""Waiting for an event in tests: poll its condition until it holds or a deadline passes.

A fixed sleep is too short on a busy machine (a flaky failure) and too long everywhere else;
polling waits as long as the event takes, and the deadline keeps the test able to fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(probe: Callable[[], object], timeout: float, *, every: float = 0.05) -> bool:
    """True as soon as ``probe()`` is truthy; False if it still is not after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


async def async_wait_until(
    probe: Callable[[], object], timeout: float, *, every: float = 0.02
) -> bool:
    """``wait_until`` for async tests: the event loop keeps running meanwhile."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)
    return True
